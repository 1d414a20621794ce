"""Reading shell: a small POSIX-sh parser and an abstract interpreter that never runs anything.

The interpreter walks a script the way the shell would, with what it can know statically:
variables and their defaults (`${X:-1}`, `: ${X:=1}`, Dockerfile `ENV`), `[ ... ]` / `test` /
`[[ ... ]]` guards, `case`, functions (only bodies that are called), `exit` / `exec` (nothing
after them runs), `&&` / `||`. A guard it cannot decide is assumed to possibly pass, and the
finding says so. Every command is looked up in the migration table (commands.py); scripts,
`sh -c` strings, Makefile targets and package.json scripts it calls are followed (bounded);
Python entry points (servers, scripts, `python -m`, `python -c`) go to startup.py.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from gonogo.detect import commands
from gonogo.detect._base import (
    MAX_SCRIPT_DEPTH,
    Ctx,
    Env,
    EnvVal,
    Trail,
    env_lookup,
    short,
)

Tri = bool | None  # True / False / unknown

# --------------------------------------------------------------------------------------------
# lexer


class ShellSyntaxError(ValueError):
    pass


@dataclass
class Tok:
    kind: str  # "w" word, "op", "nl", "eof"
    text: str
    line: int
    body: str | None = None  # heredoc body (on the `<<` operator)
    body_line: int = 0


_OPS = (
    "<<<",
    "<<-",
    ";;&",
    "&&",
    "||",
    ";;",
    ";&",
    "<<",
    ">>",
    "<&",
    ">&",
    "&>",
    ">|",
    "|&",
    "<>",
    ";",
    "&",
    "|",
    "<",
    ">",
    "(",
    ")",
)
_REDIR_OPS = frozenset({"<<<", "<<-", "<<", ">>", "<&", ">&", "&>", ">|", "<>", "<", ">"})
_WORD_END = frozenset(" \t\r\n;&|<>()")


def _scan_balanced(src: str, i: int, open_: str, close: str) -> int:
    """I is just past OPEN_; return the index just past the matching CLOSE."""
    depth = 1
    n = len(src)
    while i < n:
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == "'" and open_ == "(":
            end = src.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quote")
            i = end + 1
            continue
        if c == '"':
            i = _scan_dquote(src, i + 1)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ShellSyntaxError(f"unterminated {open_}")


def _scan_dquote(src: str, i: int) -> int:
    """I is just past the opening double quote; return the index past the closing one."""
    n = len(src)
    while i < n:
        c = src[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if c == "$" and i + 1 < n and src[i + 1] in "({":
            i = _scan_balanced(src, i + 2, src[i + 1], ")" if src[i + 1] == "(" else "}")
            continue
        if c == "`":
            end = src.find("`", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated backquote")
            i = end + 1
            continue
        i += 1
    raise ShellSyntaxError("unterminated double quote")


def _read_word(src: str, i: int) -> int:
    n = len(src)
    while i < n and src[i] not in _WORD_END:
        c = src[i]
        if c == "\\":
            i += 2
        elif c == "'":
            end = src.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated single quote")
            i = end + 1
        elif c == '"':
            i = _scan_dquote(src, i + 1)
        elif c == "$" and i + 1 < n and src[i + 1] in "({":
            i = _scan_balanced(src, i + 2, src[i + 1], ")" if src[i + 1] == "(" else "}")
        elif c == "`":
            end = src.find("`", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated backquote")
            i = end + 1
        else:
            i += 1
    return i


def _unquote_simple(word: str) -> str:
    return word.replace('"', "").replace("'", "").replace("\\", "")


def lex(src: str) -> list[Tok]:
    toks: list[Tok] = []
    i = 0
    n = len(src)
    line = 1
    pending: list[tuple[Tok, str, bool]] = []  # heredoc operator, delimiter, strip tabs
    want_delim: Tok | None = None
    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] == "\n":
            i += 2
            line += 1
            continue
        if c in " \t\r":
            i += 1
            continue
        if c == "\n":
            toks.append(Tok("nl", "\n", line))
            i += 1
            line += 1
            if pending:
                i, line = _read_heredocs(src, i, line, pending)
                pending = []
            continue
        if c == "#":
            end = src.find("\n", i)
            i = n if end < 0 else end
            continue
        op = next((o for o in _OPS if src.startswith(o, i)), None)
        if op is not None:
            tok = Tok("op", op, line)
            toks.append(tok)
            i += len(op)
            if op in ("<<", "<<-"):
                want_delim = tok
            continue
        start = i
        i = _read_word(src, i)
        word = src[start:i]
        newlines = word.count("\n")
        if word.isdigit() and i < n and src[i] in "<>":
            continue  # a file-descriptor number in front of a redirection
        tok = Tok("w", word, line)
        toks.append(tok)
        line += newlines
        if want_delim is not None:
            pending.append((want_delim, _unquote_simple(word), want_delim.text == "<<-"))
            want_delim = None
    if pending:
        _read_heredocs(src, n, line, pending)
    toks.append(Tok("eof", "", line))
    return toks


def _read_heredocs(
    src: str, i: int, line: int, pending: list[tuple[Tok, str, bool]]
) -> tuple[int, int]:
    for tok, delim, strip in pending:
        body: list[str] = []
        tok.body_line = line
        while i < len(src):
            end = src.find("\n", i)
            raw = src[i:] if end < 0 else src[i:end]
            i = len(src) if end < 0 else end + 1
            line += 1
            check = raw.lstrip("\t") if strip else raw
            if check.rstrip("\r") == delim:
                break
            body.append(check)
        tok.body = "\n".join(body)
    return i, line


# --------------------------------------------------------------------------------------------
# parser


@dataclass
class Word:
    raw: str
    line: int


@dataclass
class Redir:
    op: str
    target: Word | None
    line: int
    body: str | None = None
    body_line: int = 0


@dataclass
class Simple:
    assigns: list[Word]
    words: list[Word]
    redirs: list[Redir]
    line: int


@dataclass
class Pipeline:
    cmds: list[Node]
    negated: bool
    line: int


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]]


@dataclass
class Seq:
    items: list[AndOr]


@dataclass
class If:
    arms: list[tuple[Seq, Seq]]
    orelse: Seq | None
    line: int


@dataclass
class Loop:
    kind: str  # while, until, for
    cond: Seq | None
    body: Seq
    line: int
    var: str | None = None
    items: list[Word] | None = None


@dataclass
class Case:
    subject: Word
    arms: list[tuple[list[Word], Seq]]
    line: int


@dataclass
class FuncDef:
    name: str
    body: Node
    line: int


@dataclass
class Group:
    body: Seq
    subshell: bool
    line: int


Node = Simple | If | Loop | Case | FuncDef | Group

_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\+?=")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self, k: int = 0) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Tok:
        tok = self.peek()
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def at_word(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "w" and tok.text in words

    def at_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text in ops

    def skip_nl(self) -> None:
        while self.peek().kind == "nl":
            self.advance()

    def expect_word(self, word: str) -> None:
        if not self.at_word(word):
            tok = self.peek()
            raise ShellSyntaxError(f"line {tok.line}: expected {word!r}, found {tok.text!r}")
        self.advance()

    def expect_op(self, op: str) -> None:
        if not self.at_op(op):
            tok = self.peek()
            raise ShellSyntaxError(f"line {tok.line}: expected {op!r}, found {tok.text!r}")
        self.advance()

    def parse(self) -> Seq:
        seq = self.parse_seq(frozenset())
        if self.peek().kind != "eof":
            tok = self.peek()
            raise ShellSyntaxError(f"line {tok.line}: unexpected {tok.text!r}")
        return seq

    def parse_seq(self, stop: frozenset[str]) -> Seq:
        items: list[AndOr] = []
        while True:
            while self.peek().kind == "nl" or self.at_op(";"):
                self.advance()
            tok = self.peek()
            if tok.kind == "eof" or (tok.kind in ("w", "op") and tok.text in stop):
                return Seq(items)
            items.append(self.parse_andor())
            if self.at_op("&", ";") or self.peek().kind == "nl":
                self.advance()

    def parse_andor(self) -> AndOr:
        first = self.parse_pipeline()
        rest: list[tuple[str, Pipeline]] = []
        while self.at_op("&&", "||"):
            op = self.advance().text
            self.skip_nl()
            rest.append((op, self.parse_pipeline()))
        return AndOr(first, rest)

    def parse_pipeline(self) -> Pipeline:
        line = self.peek().line
        negated = False
        if self.at_word("!"):
            self.advance()
            negated = True
        cmds = [self.parse_command()]
        while self.at_op("|", "|&"):
            self.advance()
            self.skip_nl()
            cmds.append(self.parse_command())
        return Pipeline(cmds, negated, line)

    def parse_command(self) -> Node:
        tok = self.peek()
        node: Node
        if tok.kind == "op" and tok.text == "(":
            self.advance()
            body = self.parse_seq(frozenset({")"}))
            self.expect_op(")")
            node = Group(body, True, tok.line)
        elif tok.kind == "w" and tok.text == "if":
            node = self.parse_if()
        elif tok.kind == "w" and tok.text in ("while", "until"):
            self.advance()
            cond = self.parse_seq(frozenset({"do"}))
            self.expect_word("do")
            body = self.parse_seq(frozenset({"done"}))
            self.expect_word("done")
            node = Loop(tok.text, cond, body, tok.line)
        elif tok.kind == "w" and tok.text == "for":
            node = self.parse_for()
        elif tok.kind == "w" and tok.text == "case":
            node = self.parse_case()
        elif tok.kind == "w" and tok.text == "{":
            self.advance()
            body = self.parse_seq(frozenset({"}"}))
            self.expect_word("}")
            node = Group(body, False, tok.line)
        elif tok.kind == "w" and tok.text == "function":
            self.advance()
            name = self.advance().text
            if self.at_op("("):
                self.advance()
                self.expect_op(")")
            self.skip_nl()
            node = FuncDef(name, self.parse_command(), tok.line)
        elif (
            tok.kind == "w"
            and _NAME.match(tok.text)
            and self.peek(1).kind == "op"
            and self.peek(1).text == "("
            and self.peek(2).kind == "op"
            and self.peek(2).text == ")"
        ):
            self.advance()
            self.advance()
            self.advance()
            self.skip_nl()
            node = FuncDef(tok.text, self.parse_command(), tok.line)
        elif tok.kind == "w" and tok.text == "[[":
            words: list[Word] = []
            while not self.at_word("]]"):
                t = self.advance()
                if t.kind == "eof":
                    raise ShellSyntaxError(f"line {tok.line}: unterminated [[")
                if t.kind in ("w", "op"):
                    words.append(Word(t.text, t.line))
            words.append(Word(self.advance().text, tok.line))
            return Simple([], words, [], tok.line)
        else:
            return self.parse_simple()
        # redirections after a compound command
        while self.at_op(*_REDIR_OPS):
            self.advance()
            if self.peek().kind == "w":
                self.advance()
        return node

    def parse_if(self) -> If:
        line = self.advance().line
        arms: list[tuple[Seq, Seq]] = []
        orelse: Seq | None = None
        stop = frozenset({"elif", "else", "fi"})
        cond = self.parse_seq(frozenset({"then"}))
        self.expect_word("then")
        arms.append((cond, self.parse_seq(stop)))
        while True:
            if self.at_word("elif"):
                self.advance()
                cond = self.parse_seq(frozenset({"then"}))
                self.expect_word("then")
                arms.append((cond, self.parse_seq(stop)))
                continue
            if self.at_word("else"):
                self.advance()
                orelse = self.parse_seq(frozenset({"fi"}))
            self.expect_word("fi")
            return If(arms, orelse, line)

    def parse_for(self) -> Loop:
        line = self.advance().line
        if self.at_op("("):
            raise ShellSyntaxError(f"line {line}: arithmetic for loops are not read")
        var = self.advance().text
        self.skip_nl()
        items: list[Word] | None = None
        if self.at_word("in"):
            self.advance()
            items = []
            while self.peek().kind == "w":
                tok = self.advance()
                items.append(Word(tok.text, tok.line))
        while self.at_op(";") or self.peek().kind == "nl":
            self.advance()
        self.expect_word("do")
        body = self.parse_seq(frozenset({"done"}))
        self.expect_word("done")
        return Loop("for", None, body, line, var, items)

    def parse_case(self) -> Case:
        line = self.advance().line
        subject_tok = self.advance()
        subject = Word(subject_tok.text, subject_tok.line)
        self.skip_nl()
        self.expect_word("in")
        arms: list[tuple[list[Word], Seq]] = []
        while True:
            self.skip_nl()
            if self.at_word("esac"):
                self.advance()
                return Case(subject, arms, line)
            if self.peek().kind == "eof":
                raise ShellSyntaxError(f"line {line}: unterminated case")
            if self.at_op("("):
                self.advance()
            patterns = [Word(self.advance().text, line)]
            while self.at_op("|"):
                self.advance()
                patterns.append(Word(self.advance().text, line))
            self.expect_op(")")
            body = self.parse_seq(frozenset({"esac", ";;", ";&", ";;&"}))
            if self.at_op(";;", ";&", ";;&"):
                self.advance()
            arms.append((patterns, body))

    def parse_simple(self) -> Simple:
        line = self.peek().line
        assigns: list[Word] = []
        words: list[Word] = []
        redirs: list[Redir] = []
        while True:
            tok = self.peek()
            if tok.kind == "w":
                self.advance()
                if not words and _ASSIGN.match(tok.text):
                    assigns.append(Word(tok.text, tok.line))
                else:
                    words.append(Word(tok.text, tok.line))
            elif tok.kind == "op" and tok.text in _REDIR_OPS:
                op = self.advance()
                target: Word | None = None
                if self.peek().kind == "w":
                    t = self.advance()
                    target = Word(t.text, t.line)
                redirs.append(Redir(op.text, target, op.line, op.body, op.body_line))
            else:
                break
        if not (words or assigns or redirs):
            tok = self.peek()
            raise ShellSyntaxError(f"line {tok.line}: unexpected {tok.text!r}")
        return Simple(assigns, words, redirs, line)


def parse(src: str) -> Seq:
    return Parser(lex(src)).parse()


# --------------------------------------------------------------------------------------------
# where things are


class View(Protocol):
    """Maps the paths a command sees (absolute, in the dyno/container) back to repo files."""

    def to_repo(self, vpath: str) -> str | None: ...

    def fallback(self, name: str) -> str | None: ...


@dataclass(frozen=True)
class SlugView:
    """A Heroku slug (or any checkout): the repository is mounted at BASE (default /app)."""

    base: str = "/app"

    def to_repo(self, vpath: str) -> str | None:
        vpath = posixpath.normpath(vpath)
        if vpath == self.base:
            return "."
        if vpath.startswith(self.base.rstrip("/") + "/"):
            return vpath[len(self.base.rstrip("/")) + 1 :]
        return None

    def fallback(self, name: str) -> str | None:
        return None


@dataclass(frozen=True)
class Loc:
    """Where findings in a piece of shell text land: a script file, or one fixed line."""

    file: str
    source: str  # finding source label
    base: int = 1
    fixed: bool = False

    def line(self, tok_line: int) -> int:
        return self.base if self.fixed else self.base + tok_line - 1


@dataclass(frozen=True)
class Exp:
    """An expanded word: its text, and whether that text is certain."""

    text: str
    known: bool = True
    from_args: bool = False  # spliced from "$@"


@dataclass
class State:
    view: View
    cwd: str  # virtual absolute path
    env: dict[str, EnvVal] = field(default_factory=dict)
    exported: set[str] = field(default_factory=set)
    args: list[Exp] | None = field(default_factory=list)  # None: unknown
    args_loc: Loc | None = None  # where "$@" came from (a Dockerfile CMD line)
    funcs: dict[str, tuple[FuncDef, Loc]] = field(default_factory=dict)  # with where defined
    scripts: tuple[str, ...] = ()  # the chain of files being followed (no recursion)

    def child(self, args: list[Exp] | None, extra: Sequence[tuple[str, str]] = ()) -> State:
        env = {k: v for k, v in self.env.items() if k in self.exported}
        exported = set(env)
        for key, value in extra:
            env[key] = EnvVal(value, "set on the command line")
            exported.add(key)
        return State(self.view, self.cwd, env, exported, args, None, {}, self.scripts)

    def exported_env(self) -> Env:
        return {k: v for k, v in self.env.items() if k in self.exported}

    def lookup(self, name: str) -> EnvVal:
        return env_lookup(self.env, name)


class _Flow:
    NORMAL = 0
    BREAK = 1
    RETURN = 2
    EXIT = 3


_BUILTIN_TRUE = frozenset(
    {
        "echo",
        "printf",
        "cat",
        "sleep",
        "trap",
        "wait",
        "umask",
        "ulimit",
        "mkdir",
        "chmod",
        "chown",
        "touch",
        "ls",
        "pwd",
        "read",
        "hash",
        "type",
        "alias",
        "unalias",
        "logger",
        "tee",
        "rm",
        "cp",
        "mv",
        "ln",
        "true",
        ":",
    }
)
_FILE_TESTS = frozenset({"-f", "-e", "-d", "-x", "-s", "-r", "-w", "-L", "-h", "-p", "-S"})


def _fmt_val(val: EnvVal) -> str:
    if val.unknown:
        return "set by the platform"
    if val.value is None:
        return "unset"
    return repr(val.value)


class Interp:
    """Walks shell text; records findings in the scan context."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.reads: list[tuple[str, str]] | None = None  # (shown, source) of variables read

    # ---- entry points --------------------------------------------------------------------

    def run_text(self, text: str, loc: Loc, st: State, trail: Trail) -> int:
        try:
            seq = parse(text)
        except (ShellSyntaxError, RecursionError) as exc:
            return self._run_lines(text, loc, st, trail, str(exc))
        flow, _ = self.exec_seq(seq, loc, st, trail)
        return flow

    def _run_lines(self, text: str, loc: Loc, st: State, trail: Trail, error: str) -> int:
        """Fallback for text the parser does not handle: every line may run."""
        trail = trail.note(
            f"{loc.file} could not be fully parsed ({error}); assumed every line may run"
        )
        for n, raw in enumerate(text.splitlines(), start=1):
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            for part in re.split(r"&&|\|\||;", stripped):
                try:
                    seq = parse(part)
                except (ShellSyntaxError, RecursionError):
                    continue
                sub = Loc(loc.file, loc.source, loc.line(n), True)
                self.exec_seq(seq, sub, st, trail)
        return _Flow.NORMAL

    def run_argv(
        self,
        argv: Sequence[Exp],
        loc: Loc,
        st: State,
        trail: Trail,
        redirs: Sequence[Redir] = (),
        tail: tuple[int, Loc] | None = None,
    ) -> None:
        """Analyse one command (program + arguments) as the shell would run it."""
        self._external(list(argv), loc, st, trail, redirs, tail)

    # ---- structure -----------------------------------------------------------------------

    def exec_seq(self, seq: Seq, loc: Loc, st: State, trail: Trail) -> tuple[int, Tri]:
        status: Tri = True
        for item in seq.items:
            flow, status, trail = self.exec_andor(item, loc, st, trail)
            if flow != _Flow.NORMAL:
                return flow, status
        return _Flow.NORMAL, status

    def exec_andor(self, ao: AndOr, loc: Loc, st: State, trail: Trail) -> tuple[int, Tri, Trail]:
        """Run `a && b || c`; returns the trail for what follows (with the guard noted)."""
        if ao.rest:
            outer = self.reads
            self.reads = []
            try:
                flow, status = self.exec_pipeline(ao.first, loc, st, trail)
                reads = self.reads
            finally:
                self.reads = outer
        else:
            flow, status = self.exec_pipeline(ao.first, loc, st, trail)
            reads = []
        after = trail
        prev = ao.first
        for op, pipe in ao.rest:
            if flow != _Flow.NORMAL:
                return flow, status, after
            where = f"{loc.file}:{loc.line(prev.line)}"
            if (op == "&&" and status is False) or (op == "||" and status is True):
                if reads and prev is ao.first and _stops(pipe):
                    shown = ", ".join(r for r, _ in reads)
                    after = trail.note(
                        f"guard `{_pipe_text(prev)}` ({where}) is {str(status).lower()}: {shown}"
                    )
                continue
            branch = trail
            if status is None:
                if op == "||":
                    branch = trail.note(f"runs only if `{_pipe_text(prev)}` ({where}) fails")
                elif reads:
                    branch = trail.note(
                        f"guard `{_pipe_text(prev)}` ({where}) could not be evaluated; "
                        "assumed it may run"
                    )
            elif reads and prev is ao.first:
                shown = ", ".join(r for r, _ in reads)
                branch = trail.note(
                    f"guard `{_pipe_text(prev)}` ({where}) is {str(status).lower()}: {shown}"
                )
            flow, status = self.exec_pipeline(pipe, loc, st, branch)
            prev = pipe
        return flow, status, after

    def exec_pipeline(self, pipe: Pipeline, loc: Loc, st: State, trail: Trail) -> tuple[int, Tri]:
        flow = _Flow.NORMAL
        status: Tri = True
        for cmd in pipe.cmds:
            flow, status = self.exec_node(cmd, loc, st, trail)
            if flow == _Flow.EXIT and len(pipe.cmds) > 1:
                flow = _Flow.NORMAL  # each part of a pipeline is its own subshell
        if pipe.negated and status is not None:
            status = not status
        return flow, status

    def exec_node(self, node: Node, loc: Loc, st: State, trail: Trail) -> tuple[int, Tri]:
        if isinstance(node, Simple):
            return self.exec_simple(node, loc, st, trail)
        if isinstance(node, If):
            return self.exec_if(node, loc, st, trail)
        if isinstance(node, Loop):
            return self.exec_loop(node, loc, st, trail)
        if isinstance(node, Case):
            return self.exec_case(node, loc, st, trail)
        if isinstance(node, FuncDef):
            st.funcs[node.name] = (node, loc)
            return _Flow.NORMAL, True
        # Group
        if node.subshell:
            sub = replace(st, env=dict(st.env), exported=set(st.exported), funcs=dict(st.funcs))
            flow, status = self.exec_seq(node.body, loc, sub, trail)
            return (_Flow.NORMAL if flow == _Flow.EXIT else flow), status
        return self.exec_seq(node.body, loc, st, trail)

    def _guard(
        self, seq: Seq, loc: Loc, st: State, trail: Trail
    ) -> tuple[int, Tri, list[tuple[str, str]]]:
        outer = self.reads
        self.reads = []
        try:
            flow, status = self.exec_seq(seq, loc, st, trail)
            return flow, status, self.reads
        finally:
            self.reads = outer

    def exec_if(self, node: If, loc: Loc, st: State, trail: Trail) -> tuple[int, Tri]:
        flows: list[int] = []  # how each branch that may run ends
        any_unknown = False
        certain = False
        for cond, body in node.arms:
            flow, status, reads = self._guard(cond, loc, st, trail)
            if flow != _Flow.NORMAL:
                return flow, status
            if status is False:
                continue
            text = _seq_text(cond)
            where = f"{loc.file}:{loc.line(_seq_line(cond, node.line))}"
            if status is True:
                branch = trail
                if reads:
                    shown = ", ".join(r for r, _ in reads)
                    branch = trail.note(f"guard `{text}` ({where}) is true: {shown}")
                flow, _ = self.exec_seq(body, loc, st, branch)
                flows.append(flow)
                certain = True
                break
            any_unknown = True
            branch = trail.note(
                f"guard `{text}` ({where}) could not be evaluated; assumed it may run"
            )
            flow, _ = self.exec_seq(body, loc, st, branch)
            flows.append(flow)
        if not certain:
            if node.orelse is not None:
                flow, _ = self.exec_seq(node.orelse, loc, st, trail)
                flows.append(flow)
            else:
                flows.append(_Flow.NORMAL)
        if all(f != _Flow.NORMAL for f in flows):
            return min(flows), None
        return _Flow.NORMAL, None if any_unknown else True

    def exec_loop(self, node: Loop, loc: Loc, st: State, trail: Trail) -> tuple[int, Tri]:
        if node.kind == "for":
            if node.var and node.items is not None:
                values = [e for w in node.items for e in self.expand(w, st, loc)]
                if not values:
                    return _Flow.NORMAL, True
                first = values[0]
                st.env[node.var] = EnvVal(
                    first.text if first.known else None, "loop variable", unknown=not first.known
                )
            flow, status = self.exec_seq(node.body, loc, st, trail)
            return (flow if flow in (_Flow.EXIT, _Flow.RETURN) else _Flow.NORMAL), status
        assert node.cond is not None
        flow, status, _ = self._guard(node.cond, loc, st, trail)
        if flow != _Flow.NORMAL:
            return flow, status
        runs = status if node.kind == "while" else (None if status is None else not status)
        if runs is False:
            return _Flow.NORMAL, True
        flow, status = self.exec_seq(node.body, loc, st, trail)
        return (flow if flow in (_Flow.EXIT, _Flow.RETURN) else _Flow.NORMAL), status

    def exec_case(self, node: Case, loc: Loc, st: State, trail: Trail) -> tuple[int, Tri]:
        outer = self.reads
        self.reads = []
        subject = self.join(self.expand(node.subject, st, loc))
        reads, self.reads = self.reads, outer
        where = f"{loc.file}:{loc.line(node.line)}"
        flows: list[int] = []
        matched_default = False
        for patterns, body in node.arms:
            pats = [self.join(self.expand(p, st, loc)) for p in patterns]
            if subject.known and all(p.known for p in pats):
                if not any(fnmatch.fnmatchcase(subject.text, p.text) for p in pats):
                    continue
                branch = trail
                if reads:
                    branch = trail.note(
                        f"case `{node.subject.raw}` ({where}) matches "
                        f"`{'|'.join(p.text for p in pats)}`: " + ", ".join(r for r, _ in reads)
                    )
                flow, status = self.exec_seq(body, loc, st, branch)
                return flow, status
            branch = trail.note(
                f"case `{node.subject.raw}` ({where}) could not be evaluated; "
                f"assumed branch `{'|'.join(p.raw for p in patterns)}` may run"
            )
            flow, _ = self.exec_seq(body, loc, st, branch)
            flows.append(flow)
            if any(p.raw == "*" for p in patterns):
                matched_default = True
        if flows and matched_default and all(f != _Flow.NORMAL for f in flows):
            return max(flows), None
        return _Flow.NORMAL, None

    # ---- simple commands -----------------------------------------------------------------

    def exec_simple(self, node: Simple, loc: Loc, st: State, trail: Trail) -> tuple[int, Tri]:
        line = loc.line(node.line)
        assigns: list[tuple[str, EnvVal]] = []
        for word in node.assigns:
            name, _, raw = word.raw.partition("=")
            name = name.rstrip("+")
            outer = self.reads
            self.reads = []
            value = self.join(self.expand(Word(raw, word.line), st, loc, split=False))
            reads, self.reads = self.reads, outer
            if outer is not None:
                outer.extend(reads)
            assigns.append((name, self._assigned(value, reads, loc, line)))
        argv: list[Exp] = []
        for word in node.words:
            argv.extend(self.expand(word, st, loc))
        if not argv:
            for name, val in assigns:
                st.env[name] = val
            return _Flow.NORMAL, True
        name = argv[0].text if argv[0].known else ""
        args = argv[1:]
        if name in st.funcs:
            func, func_loc = st.funcs[name]
            step = f"{loc.file}:{line} {name}()"
            return self._call_function(func, func_loc, args, st, trail.step(step))
        if name in ("export", "readonly", "declare", "typeset", "local"):
            for arg in args:
                if arg.text.startswith("-"):
                    continue
                key, eq, assigned = arg.text.partition("=")
                if not _NAME.match(key):
                    continue
                if eq:
                    st.env[key] = EnvVal(
                        assigned if arg.known else None,
                        f"set at {loc.file}:{line}",
                        unknown=not arg.known,
                    )
                if name != "local":
                    st.exported.add(key)
            return _Flow.NORMAL, True
        if name == "unset":
            for arg in args:
                st.env.pop(arg.text, None)
            return _Flow.NORMAL, True
        if name in ("cd", "pushd"):
            target = args[0] if args else Exp("~")
            if target.known and target.text not in ("-", "~"):
                st.cwd = posixpath.normpath(posixpath.join(st.cwd, target.text))
            return _Flow.NORMAL, True
        if name == "set":
            if "--" in [a.text for a in args]:
                st.args = args[[a.text for a in args].index("--") + 1 :]
            return _Flow.NORMAL, True
        if name == "shift":
            count = int(args[0].text) if args and args[0].text.isdigit() else 1
            if st.args is not None:
                st.args = st.args[count:]
            return _Flow.NORMAL, True
        if name == "exit":
            return _Flow.EXIT, None
        if name == "return":
            return _Flow.RETURN, None
        if name in ("break", "continue"):
            return _Flow.BREAK, True
        if name == "false":
            return _Flow.NORMAL, False
        if name in ("[", "test", "[["):
            return _Flow.NORMAL, self.eval_test(name, args, node, loc, st)
        if name in ("source", "."):
            if args:
                self._follow(args[0], args[1:], loc, line, st, trail, source_into=True)
            return _Flow.NORMAL, None
        if name == "eval":
            text = " ".join(a.text for a in args)
            self.run_text(text, Loc(loc.file, loc.source, line, True), st, trail)
            return _Flow.NORMAL, None
        if name == "exec":
            if not args:
                return _Flow.NORMAL, True
            self._command(args, assigns, node, loc, st, trail)
            return _Flow.EXIT, None
        if name in _BUILTIN_TRUE:
            return _Flow.NORMAL, True  # `: ${X:=1}` assigned while expanding
        self._command(argv, assigns, node, loc, st, trail)
        return _Flow.NORMAL, None

    def _assigned(self, value: Exp, reads: list[tuple[str, str]], loc: Loc, line: int) -> EnvVal:
        if not value.known:
            return EnvVal(None, f"computed at {loc.file}:{line}", unknown=True)
        if len(reads) == 1:
            return EnvVal(value.text, reads[0][1])
        return EnvVal(value.text, f"set at {loc.file}:{line}")

    def _call_function(
        self, func: FuncDef, loc: Loc, args: list[Exp], st: State, trail: Trail
    ) -> tuple[int, Tri]:
        if func.name in [s.partition("()")[0] for s in st.scripts[-8:]] or len(st.scripts) > 40:
            return _Flow.NORMAL, None
        saved = st.args
        st.args = args
        st.scripts = (*st.scripts, f"{func.name}()")
        try:
            flow, status = self.exec_node(func.body, loc, st, trail)
        finally:
            st.args = saved
            st.scripts = st.scripts[:-1]
        if flow in (_Flow.RETURN, _Flow.BREAK):
            flow = _Flow.NORMAL
        return flow, status

    def _command(
        self,
        argv: list[Exp],
        assigns: list[tuple[str, EnvVal]],
        node: Simple,
        loc: Loc,
        st: State,
        trail: Trail,
    ) -> None:
        line = loc.line(node.line)
        here = Loc(loc.file, loc.source, line, True)
        tail: tuple[int, Loc] | None = None
        if st.args_loc is not None:
            idx = next((i for i, e in enumerate(argv) if e.from_args), None)
            if idx is not None:
                tail = (idx, st.args_loc)
        sub = st
        if assigns:
            sub = replace(st, env=dict(st.env), exported=set(st.exported))
            for name, val in assigns:
                sub.env[name] = val
                sub.exported.add(name)
        self._external(argv, here, sub, trail, node.redirs, tail)

    # ---- external commands ---------------------------------------------------------------

    def _external(
        self,
        argv: list[Exp],
        loc: Loc,
        st: State,
        trail: Trail,
        redirs: Sequence[Redir],
        tail: tuple[int, Loc] | None,
    ) -> None:
        texts = [e.text for e in argv]
        unwrapped = commands.unwrap(texts)
        words = list(unwrapped.argv)
        if not words:
            return
        offset = len(texts) - len(words)
        if tail is not None and offset >= tail[0]:
            loc = tail[1]
        if unwrapped.env:
            st = st.child(st.args, unwrapped.env)
        redirects = [
            (r.op, r.target.raw if r.target is not None else "") for r in redirs if r.op in ("<",)
        ]
        what = commands.migration(words, redirects)
        if what is not None:
            what = " ".join(texts) + "".join(f" {op} {target}" for op, target in redirects)
        else:
            what = self._heredoc_migration(words, redirs)
        if what is not None:
            self.ctx.out.add(loc.file, loc.base, what, trail, loc.source)
            return
        cmd_text = short(" ".join(texts), 80)
        step = f"{loc.file}:{loc.base} `{cmd_text}`"
        name = commands.prog(words[0])
        server = commands.server(words)
        if server is not None:
            from gonogo.detect import startup

            startup.run_server(self.ctx, server, self._launch(st), trail.step(step))
            return
        if name in commands.SHELLS:
            self._shell_invocation(words, loc, st, trail, step, redirs)
            return
        inv = commands.python_invocation(words)
        if inv is not None:
            self._python(inv, loc, st, trail, step, redirs)
            return
        if name in ("make", "gmake"):
            self._make(words[1:], st, trail.step(step))
            return
        if name in ("npm", "yarn", "pnpm", "bun"):
            if not self._package_script(name, words[1:], st, trail.step(step)) and name != "npm":
                # `yarn prisma migrate deploy`: no script of that name runs the package's binary
                rest = words[1:]
                while rest and (rest[0].startswith("-") or rest[0] == "run"):
                    rest = rest[1:]
                if rest and rest[0] not in ("install", "add", "build", "exec", "dlx", "x"):
                    self._external([Exp(w) for w in rest], loc, st, trail, redirs, None)
            return
        args = [Exp(w) for w in words[1:]]
        if "/" in words[0]:
            self._follow(Exp(words[0]), args, loc, loc.base, st, trail)
            return
        for directory in ("/usr/local/bin", "/usr/bin", "/bin", "/app/bin", "/app"):
            rel = self._resolve(posixpath.join(directory, words[0]), st)
            if rel is not None:
                self._follow(
                    Exp(posixpath.join(directory, words[0])), args, loc, loc.base, st, trail
                )
                return

    def _heredoc_migration(self, words: list[str], redirs: Sequence[Redir]) -> str | None:
        name = commands.prog(words[0])
        for redir in redirs:
            if redir.op in ("<<", "<<-", "<<<") and name in ("psql", "mysql", "mariadb"):
                body = (
                    redir.body
                    if redir.body is not None
                    else (redir.target.raw if redir.target else "")
                )
                if commands.ddl(body):
                    return " ".join(words) + " <<SQL (schema change)"
        return None

    def _launch(self, st: State) -> Launch:
        return Launch(st.view, st.cwd, st.exported_env())

    def _shell_invocation(
        self,
        words: list[str],
        loc: Loc,
        st: State,
        trail: Trail,
        step: str,
        redirs: Sequence[Redir],
    ) -> None:
        i = 1
        while i < len(words):
            word = words[i]
            if word == "-c" and i + 1 < len(words):
                rest = [Exp(w) for w in words[i + 2 :]]
                child = st.child(rest[1:] if rest else [])
                self.run_text(words[i + 1], Loc(loc.file, loc.source, loc.base, True), child, trail)
                return
            if word in ("-o", "+o"):
                i += 2
                continue
            if word.startswith(("-", "+")) and word not in ("-", "--"):
                if "c" in word[1:] and i + 1 < len(words):
                    rest = [Exp(w) for w in words[i + 2 :]]
                    child = st.child(rest[1:] if rest else [])
                    self.run_text(
                        words[i + 1], Loc(loc.file, loc.source, loc.base, True), child, trail
                    )
                    return
                i += 1
                continue
            if word == "--":
                i += 1
                continue
            break
        if i < len(words):
            self._follow(Exp(words[i]), [Exp(w) for w in words[i + 1 :]], loc, loc.base, st, trail)
            return
        for redir in redirs:  # sh <<EOF ... EOF
            if redir.body is not None and redir.op in ("<<", "<<-"):
                self.run_text(
                    redir.body,
                    Loc(loc.file, loc.source, redir.body_line, False),
                    st.child([]),
                    trail.step(step),
                )

    def _python(
        self,
        inv: commands.PyInvocation,
        loc: Loc,
        st: State,
        trail: Trail,
        step: str,
        redirs: Sequence[Redir],
    ) -> None:
        from gonogo.detect import startup

        launch = self._launch(st)
        if inv.kind == "script":
            rel = self._resolve(inv.value, st)
            if rel is None or trail.depth >= MAX_SCRIPT_DEPTH:
                return
            startup.run_script(
                self.ctx, rel, launch, trail.step(step).deeper(), args=list(inv.args)
            )
        elif inv.kind == "module":
            startup.run_module_main(self.ctx, inv.value, launch, trail.step(step).deeper())
        elif inv.kind == "code":
            startup.run_code(self.ctx, inv.value, loc.file, loc.base, launch, trail)
        else:
            for redir in redirs:
                if redir.body is not None:
                    startup.run_code(
                        self.ctx, redir.body, loc.file, redir.body_line, launch, trail, fixed=False
                    )

    # ---- following files -----------------------------------------------------------------

    def _resolve(self, path: str, st: State) -> str | None:
        vpath = path if path.startswith("/") else posixpath.join(st.cwd, path)
        rel = st.view.to_repo(posixpath.normpath(vpath))
        if rel is not None and self.ctx.repo.is_file(rel):
            return rel
        fb = st.view.fallback(posixpath.basename(path))
        if fb is not None and self.ctx.repo.is_file(fb):
            return fb
        return None

    def _follow(
        self,
        target: Exp,
        args: list[Exp],
        loc: Loc,
        line: int,
        st: State,
        trail: Trail,
        *,
        source_into: bool = False,
    ) -> None:
        if not target.known:
            return
        rel = self._resolve(target.text, st)
        if rel is None:
            return
        if rel in st.scripts:
            return
        cmd_text = short(" ".join([target.text, *(a.text for a in args)]), 80)
        step = f"{loc.file}:{line} `{cmd_text}`"
        if trail.depth >= MAX_SCRIPT_DEPTH:
            self.ctx.repo.problem(
                rel, f"not followed: scripts nested deeper than {MAX_SCRIPT_DEPTH} ({step})"
            )
            return
        text = self.ctx.repo.read(rel)
        if text is None:
            return
        first = text.split("\n", 1)[0]
        if rel.endswith(".py") or (first.startswith("#!") and "python" in first):
            from gonogo.detect import startup

            startup.run_script(
                self.ctx,
                rel,
                self._launch(st),
                trail.step(step).deeper(),
                args=[a.text for a in args],
            )
            return
        if not _looks_like_shell(rel, first):
            return
        sub_trail = trail.step(step).deeper()
        script_loc = Loc(rel, "script")
        if source_into:
            st.scripts = (*st.scripts, rel)
            saved = st.args
            if args:
                st.args = args
            try:
                self.run_text(text, script_loc, st, sub_trail)
            finally:
                st.scripts = st.scripts[:-1]
                st.args = saved
            return
        child = st.child(args)
        child.scripts = (*st.scripts, rel)
        if st.args_loc is not None and args and all(a.from_args for a in args):
            child.args_loc = st.args_loc
        self.run_text(text, script_loc, child, sub_trail)

    def follow_file(
        self, rel: str, args: list[Exp], st: State, trail: Trail, args_loc: Loc | None
    ) -> None:
        """Run a repo script as a program (used for Dockerfile ENTRYPOINT scripts)."""
        text = self.ctx.repo.read(rel)
        if text is None:
            return
        first = text.split("\n", 1)[0]
        if rel.endswith(".py") or (first.startswith("#!") and "python" in first):
            from gonogo.detect import startup

            startup.run_script(self.ctx, rel, self._launch(st), trail, args=[a.text for a in args])
            return
        child = st.child(args)
        child.scripts = (rel,)
        child.args_loc = args_loc
        self.run_text(text, Loc(rel, "script"), child, trail)

    # ---- make and package.json -----------------------------------------------------------

    def _make(self, args: list[str], st: State, trail: Trail) -> None:
        directory = st.cwd
        files: list[str] = []
        targets: list[str] = []
        overrides: dict[str, str] = {}
        i = 0
        while i < len(args):
            word = args[i]
            if word in ("-C", "--directory") and i + 1 < len(args):
                directory = posixpath.normpath(posixpath.join(directory, args[i + 1]))
                i += 2
                continue
            if word in ("-f", "--file", "--makefile") and i + 1 < len(args):
                files.append(args[i + 1])
                i += 2
                continue
            if word.startswith("-"):
                i += 1
                continue
            if "=" in word and _NAME.match(word.partition("=")[0]):
                key, _, value = word.partition("=")
                overrides[key] = value
            else:
                targets.append(word)
            i += 1
        candidates = files or ["GNUmakefile", "makefile", "Makefile"]
        rel = None
        for cand in candidates:
            rel = st.view.to_repo(posixpath.normpath(posixpath.join(directory, cand)))
            if rel is not None and self.ctx.repo.is_file(rel):
                break
            rel = None
        if rel is None:
            return
        text = self.ctx.repo.read(rel)
        if text is None:
            return
        mk = Makefile.parse(text)
        mk.vars.update(overrides)
        todo = targets or ([mk.default] if mk.default else [])
        seen: set[str] = set()
        sub = st.child(st.args)
        sub.cwd = directory
        for target in todo:
            self._make_target(mk, rel, target, sub, trail, seen, 0)

    def _make_target(
        self,
        mk: Makefile,
        rel: str,
        target: str,
        st: State,
        trail: Trail,
        seen: set[str],
        depth: int,
    ) -> None:
        if target in seen or depth > 20 or target not in mk.rules:
            return
        seen.add(target)
        rule = mk.rules[target]
        step = f"{rel}:{rule.line} make {target}"
        for dep in rule.deps:
            self._make_target(mk, rel, dep, st, trail.step(step), seen, depth + 1)
        for line, recipe in rule.recipe:
            text = mk.expand(recipe, target, rule.deps).lstrip("@-+ \t")
            self.run_text(text, Loc(rel, "script", line, True), st.child(st.args), trail.step(step))

    def _package_script(self, tool: str, args: list[str], st: State, trail: Trail) -> bool:
        """Run a package.json script (with npm's pre/post scripts); False if there is none."""
        pos = [a for a in args if not a.startswith("-")]
        if not pos:
            return False
        if pos[0] in ("run", "run-script"):
            if len(pos) < 2:
                return False
            name = pos[1]
        elif pos[0] in ("start", "test", "stop", "restart") or (
            tool in ("yarn", "pnpm") and pos[0] not in ("install", "add", "build", "exec", "dlx")
        ):
            name = pos[0]
        else:
            return False
        rel = st.view.to_repo(posixpath.join(st.cwd, "package.json"))
        if rel is None or not self.ctx.repo.is_file(rel):
            return False
        text = self.ctx.repo.read(rel)
        if text is None:
            return True  # unreadable: recorded as a problem
        try:
            data = json.loads(text)
        except ValueError as exc:
            self.ctx.repo.problem(rel, f"invalid JSON: {exc}")
            return True
        scripts = data.get("scripts") if isinstance(data, dict) else None
        if not isinstance(scripts, dict) or not isinstance(scripts.get(name), str):
            return False
        names = [f"pre{name}", name, f"post{name}"] if tool == "npm" else [name]
        for key in names:
            value = scripts.get(key)
            if not isinstance(value, str):
                continue
            line = _json_key_line(text, key)
            self.run_text(
                value,
                Loc(rel, "script", line, True),
                st.child(st.args),
                trail.step(f"{rel}:{line} scripts.{key}"),
            )
        return True

    # ---- words ---------------------------------------------------------------------------

    def join(self, parts: list[Exp]) -> Exp:
        return Exp(" ".join(p.text for p in parts), all(p.known for p in parts))

    def _read(self, name: str, val: EnvVal, how: str = "") -> None:
        if self.reads is None:
            return
        source = how or val.source
        text = f"{name} {_fmt_val(val)}" if val.value is None else f"{name}={val.value!r}"
        if not val.unknown and val.value is not None:
            text += f" ({source})"
        if all(text != r for r, _ in self.reads):
            self.reads.append((text, source))

    def expand(self, word: Word, st: State, loc: Loc, *, split: bool = True) -> list[Exp]:
        raw = word.raw
        if raw in ('"${@}"', "${@}"):
            raw = raw.replace("${@}", "$@")
        if raw in ('"$@"', "$@", "$*", '"$*"'):
            if st.args is None:
                return [Exp(raw, False, True)]
            if raw == '"$*"':
                return [Exp(" ".join(a.text for a in st.args), all(a.known for a in st.args), True)]
            return [replace(a, from_args=True) for a in st.args]
        single_var = split and bool(re.fullmatch(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", raw))
        text, known = self._expand_raw(raw, st, loc, word.line)
        if single_var and known:
            return [Exp(w) for w in text.split()]
        return [Exp(text, known)]

    def _expand_raw(self, raw: str, st: State, loc: Loc, line: int) -> tuple[str, bool]:
        out: list[str] = []
        known = True
        i = 0
        n = len(raw)
        in_dq = False
        while i < n:
            c = raw[i]
            if c == "'" and not in_dq:
                end = raw.find("'", i + 1)
                end = n if end < 0 else end
                out.append(raw[i + 1 : end])
                i = end + 1
                continue
            if c == '"':
                in_dq = not in_dq
                i += 1
                continue
            if c == "\\" and i + 1 < n:
                nxt = raw[i + 1]
                if not in_dq or nxt in '$`"\\\n':
                    out.append(nxt)
                    i += 2
                    continue
                out.append(c)
                i += 1
                continue
            if c == "`":
                end = raw.find("`", i + 1)
                end = n if end < 0 else end
                out.append(raw[i : end + 1])
                known = False
                i = end + 1
                continue
            if c == "$" and i + 1 < n:
                nxt = raw[i + 1]
                if nxt == "(":
                    end = _scan_balanced(raw, i + 2, "(", ")")
                    out.append(raw[i:end])
                    known = False
                    i = end
                    continue
                if nxt == "{":
                    end = _scan_balanced(raw, i + 2, "{", "}")
                    text, ok = self._param(raw[i + 2 : end - 1], st, loc, line)
                    out.append(text)
                    known = known and ok
                    i = end
                    continue
                m = re.match(r"[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-]", raw[i + 1 :])
                if m:
                    text, ok = self._var(m.group(0), st)
                    out.append(text)
                    known = known and ok
                    i += 1 + len(m.group(0))
                    continue
            out.append(c)
            i += 1
        return "".join(out), known

    def _var(self, name: str, st: State) -> tuple[str, bool]:
        if name.isdigit():
            idx = int(name)
            if idx == 0:
                return "$0", False
            if st.args is None:
                return f"${name}", False
            if idx <= len(st.args):
                arg = st.args[idx - 1]
                return arg.text, arg.known
            return "", True
        if name in ("@", "*"):
            if st.args is None:
                return f"${name}", False
            return " ".join(a.text for a in st.args), all(a.known for a in st.args)
        if name == "#":
            return (str(len(st.args)), True) if st.args is not None else ("$#", False)
        if not _NAME.match(name):
            return f"${name}", False
        val = st.lookup(name)
        self._read(name, val)
        if val.unknown:
            return f"${name}", False
        return val.value or "", True

    def _param(self, expr: str, st: State, loc: Loc, line: int) -> tuple[str, bool]:
        if expr.startswith("#") and _NAME.match(expr[1:]):
            val = st.lookup(expr[1:])
            if val.unknown:
                return f"${{{expr}}}", False
            return str(len(val.value or "")), True
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?])(.*)$", expr, re.S)
        if not m:
            return f"${{{expr}}}", False
        name, rest = m.group(1), m.group(2)
        if not rest:
            return self._var(name, st)
        op_m = re.match(r"(:-|:=|:\+|:\?|-|=|\+|\?)(.*)$", rest, re.S)
        if not op_m:
            return f"${{{expr}}}", False  # ${X%suffix}, ${X/a/b}, ...: not evaluated
        op, default = op_m.group(1), op_m.group(2)
        if _NAME.match(name):
            val = st.lookup(name)
        else:
            text, ok = self._var(name, st)
            if not ok:
                return f"${{{expr}}}", False
            present = name.isdigit() and st.args is not None and 0 < int(name) <= len(st.args)
            val = EnvVal(text if present else None, f"argument ${name}")
        if val.unknown:
            self._read(name, val)
            return f"${{{expr}}}", False
        empty = not val.value
        use_default = (val.value is None) if not op.startswith(":") else empty
        if op in (":+", "+"):
            self._read(name, val)
            return ("", True) if use_default else self._expand_raw(default, st, loc, line)
        if not use_default:
            self._read(name, val)
            return val.value or "", True
        if op in (":?", "?"):
            self._read(name, val)
            return "", False
        text, ok = self._expand_raw(default, st, loc, line)
        how = f"default `${{{expr}}}` at {loc.file}:{loc.line(line)}"
        dval = EnvVal(text if ok else None, how, unknown=not ok)
        self._read(name, dval, how)
        if op in (":=", "=") and _NAME.match(name):
            st.env[name] = dval
        return text, ok

    # ---- test / [ / [[ -------------------------------------------------------------------

    def eval_test(self, name: str, args: list[Exp], node: Simple, loc: Loc, st: State) -> Tri:
        words = list(args)
        if name == "[" and words and words[-1].text == "]":
            words = words[:-1]
        if name == "[[" and words and words[-1].text == "]]":
            words = words[:-1]
        raw = [w.raw for w in node.words[1:]]
        try:
            value, rest = self._test_or(words, raw[: len(words)], st, name == "[[")
        except (IndexError, ValueError):
            return None
        return value if not rest else None

    def _test_or(
        self, words: list[Exp], raw: list[str], st: State, dbl: bool
    ) -> tuple[Tri, list[Exp]]:
        left, rest = self._test_and(words, raw, st, dbl)
        while rest and rest[0].text in ("-o", "||"):
            cut = len(words) - len(rest) + 1
            right, rest = self._test_and(rest[1:], raw[cut:], st, dbl)
            left = (
                True
                if (left is True or right is True)
                else (False if (left is False and right is False) else None)
            )
        return left, rest

    def _test_and(
        self, words: list[Exp], raw: list[str], st: State, dbl: bool
    ) -> tuple[Tri, list[Exp]]:
        left, rest = self._test_not(words, raw, st, dbl)
        while rest and rest[0].text in ("-a", "&&"):
            cut = len(words) - len(rest) + 1
            right, rest = self._test_not(rest[1:], raw[cut:], st, dbl)
            left = (
                False
                if (left is False or right is False)
                else (True if (left is True and right is True) else None)
            )
        return left, rest

    def _test_not(
        self, words: list[Exp], raw: list[str], st: State, dbl: bool
    ) -> tuple[Tri, list[Exp]]:
        if words and words[0].text == "!" and len(words) > 1:
            value, rest = self._test_not(words[1:], raw[1:], st, dbl)
            return (None if value is None else not value), rest
        if words and words[0].text == "(":
            value, rest = self._test_or(words[1:], raw[1:], st, dbl)
            if rest and rest[0].text == ")":
                rest = rest[1:]
            return value, rest
        return self._test_primary(words, raw, st, dbl)

    def _test_primary(
        self, words: list[Exp], raw: list[str], st: State, dbl: bool
    ) -> tuple[Tri, list[Exp]]:
        if not words:
            return False, []
        binops = ("=", "==", "!=", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "=~", "<", ">")
        if len(words) >= 3 and words[1].text in binops:
            a, op, b = words[0], words[1].text, words[2]
            return self._binary(a, op, b, raw[2] if len(raw) > 2 else b.text, dbl), words[3:]
        first = words[0].text
        if first in ("-n", "-z") and len(words) >= 2:
            value = words[1]
            if not value.known:
                val = self._unknown_nonempty(raw[1] if len(raw) > 1 else "", st)
                if val is None:
                    return None, words[2:]
                return (val if first == "-n" else not val), words[2:]
            return (bool(value.text) if first == "-n" else not value.text), words[2:]
        if first in _FILE_TESTS and len(words) >= 2:
            path = words[1]
            if path.known and self._resolve(path.text, st) is not None:
                return True, words[2:]
            return None, words[2:]
        value = words[0]
        if not value.known:
            return self._unknown_nonempty(raw[0] if raw else "", st), words[1:]
        return bool(value.text), words[1:]

    def _unknown_nonempty(self, raw: str, st: State) -> Tri:
        m = re.fullmatch(r'"?\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?"?', raw)
        if m and st.lookup(m.group(1)).unknown:
            return True  # platform variables are set
        return None

    def _binary(self, a: Exp, op: str, b: Exp, b_raw: str, dbl: bool) -> Tri:
        if not (a.known and b.known):
            return None
        if op in ("=", "=="):
            if dbl and not (b_raw.startswith(("'", '"'))):
                return fnmatch.fnmatchcase(a.text, b.text)
            return a.text == b.text
        if op == "!=":
            if dbl and not (b_raw.startswith(("'", '"'))):
                return not fnmatch.fnmatchcase(a.text, b.text)
            return a.text != b.text
        if op == "=~":
            try:
                return re.search(b.text, a.text) is not None
            except re.error:
                return None
        if op in ("<", ">"):
            return a.text < b.text if op == "<" else a.text > b.text
        try:
            x, y = int(a.text or "0"), int(b.text or "0")
        except ValueError:
            return None
        return {
            "-eq": x == y,
            "-ne": x != y,
            "-lt": x < y,
            "-le": x <= y,
            "-gt": x > y,
            "-ge": x >= y,
        }[op]


# --------------------------------------------------------------------------------------------
# helpers


@dataclass(frozen=True)
class Launch:
    """How a program is started: the file view, working directory and environment."""

    view: View
    cwd: str
    env: Env

    def repo_dir(self) -> str | None:
        return self.view.to_repo(self.cwd)


def _looks_like_shell(rel: str, first_line: str) -> bool:
    if first_line.startswith("#!"):
        return any(s in first_line for s in ("sh", "bash", "dash", "zsh", "ksh", "ash"))
    return rel.endswith((".sh", ".bash")) or "." not in posixpath.basename(rel)


def _stops(pipe: Pipeline) -> bool:
    """Whether a pipeline is `exit` / `return` (a guard that ends the script)."""
    cmd = pipe.cmds[-1]
    if isinstance(cmd, Group):
        items = cmd.body.items
        return bool(items) and _stops(items[-1].first) if not items[-1].rest else False
    return isinstance(cmd, Simple) and bool(cmd.words) and cmd.words[0].raw in ("exit", "return")


def _word_text(node: Node) -> str:
    if isinstance(node, Simple):
        return " ".join(w.raw for w in [*node.assigns, *node.words])
    if isinstance(node, If):
        return "if …"
    if isinstance(node, Loop):
        return f"{node.kind} …"
    if isinstance(node, Case):
        return f"case {node.subject.raw} …"
    if isinstance(node, FuncDef):
        return f"{node.name}()"
    return "( … )" if node.subshell else "{ … }"


def _pipe_text(pipe: Pipeline) -> str:
    text = " | ".join(_word_text(c) for c in pipe.cmds)
    return short(("! " if pipe.negated else "") + text, 80)


def _seq_text(seq: Seq) -> str:
    parts: list[str] = []
    for ao in seq.items:
        text = _pipe_text(ao.first)
        for op, pipe in ao.rest:
            text += f" {op} {_pipe_text(pipe)}"
        parts.append(text)
    return short("; ".join(parts), 100)


def _seq_line(seq: Seq, default: int) -> int:
    return seq.items[0].first.line if seq.items else default


def _json_key_line(text: str, key: str) -> int:
    m = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


@dataclass
class Rule:
    deps: list[str]
    recipe: list[tuple[int, str]]
    line: int


@dataclass
class Makefile:
    rules: dict[str, Rule] = field(default_factory=dict)
    vars: dict[str, str] = field(default_factory=dict)
    default: str | None = None

    @classmethod
    def parse(cls, text: str) -> Makefile:
        mk = cls()
        current: list[Rule] = []
        lines = text.split("\n")
        i = 0
        in_define = False
        while i < len(lines):
            start = i
            raw = lines[i]
            while raw.endswith("\\") and i + 1 < len(lines):
                i += 1
                raw = raw[:-1] + " " + lines[i].strip()
            i += 1
            lineno = start + 1
            if in_define:
                if raw.strip().startswith("endef"):
                    in_define = False
                continue
            if raw.startswith("\t"):
                body = raw[1:]
                if body.strip() and not body.strip().startswith("#"):
                    for rule in current:
                        rule.recipe.append((lineno, body))
                continue
            stripped = raw.split("#", 1)[0].rstrip() if "#" in raw else raw.rstrip()
            if not stripped.strip():
                continue
            word = stripped.split()[0]
            if word == "define":
                in_define = True
                continue
            if word in (
                "ifeq",
                "ifneq",
                "ifdef",
                "ifndef",
                "else",
                "endif",
                "include",
                "-include",
                "sinclude",
                "export",
                "unexport",
                "override",
                "vpath",
            ):
                if word in ("export", "override") and "=" in stripped:
                    stripped = stripped.split(None, 1)[1]
                else:
                    continue
            m = re.match(
                r"^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*(\?=|:=|::=|\+=|!=|=)\s*(.*)$", stripped
            )
            if m:
                name, op, value = m.groups()
                if op == "?=" and name in mk.vars:
                    continue
                if op == "+=":
                    mk.vars[name] = (mk.vars.get(name, "") + " " + value).strip()
                elif op != "!=":
                    mk.vars[name] = value
                current = []
                continue
            m = re.match(r"^([^:=]+?)\s*::?\s*(.*)$", stripped)
            if m and not stripped.lstrip().startswith("."):
                targets = m.group(1).split()
                rest = m.group(2)
                inline = None
                if ";" in rest:
                    rest, inline = rest.split(";", 1)
                deps = [d for d in rest.split() if d != "|"]
                current = []
                for target in targets:
                    if "%" in target:
                        continue
                    rule = mk.rules.setdefault(target, Rule([], [], lineno))
                    rule.deps.extend(deps)
                    if inline and inline.strip():
                        rule.recipe.append((lineno, inline.strip()))
                    current.append(rule)
                    if mk.default is None:
                        mk.default = target
                continue
            if m:  # .PHONY and other special targets
                current = []
        return mk

    def expand(self, text: str, target: str, deps: list[str], depth: int = 0) -> str:
        if depth > 10:
            return text

        def var(m: re.Match[str]) -> str:
            inner = m.group(1) or m.group(2) or ""
            if inner == "MAKE":
                return "make"
            if " " in inner or "," in inner:
                return "$(" + inner + ")"  # a make function: leave it unexpanded
            if inner in self.vars:
                return self.expand(self.vars[inner], target, deps, depth + 1)
            return ""

        text = text.replace("$$", "\x00")
        text = text.replace("$@", target).replace("$<", deps[0] if deps else "")
        text = text.replace("$^", " ".join(deps))
        text = re.sub(r"\$\(([^()]*)\)|\$\{([^{}]*)\}", var, text)
        return text.replace("\x00", "$")
