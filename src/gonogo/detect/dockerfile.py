"""Dockerfile: what the container runs when it starts, and what RUN does at build time.

Only the final stage's CMD / ENTRYPOINT count for start-up (a stage built `FROM` an earlier
stage inherits its ENV, WORKDIR, COPY and CMD). ENTRYPOINT + CMD are combined as Docker does:
an ENTRYPOINT script gets the CMD as "$@", so a migration before `exec "$@"` is found in the
script and one in the CMD is reported on the CMD line. Container paths are mapped back to
repo files through the COPY / ADD lines (or, failing that, by unique basename). ENV values
are the environment the start-up command sees, so `ENV RUN_MIGRATIONS=0` feeds the guards.
RUN commands in any stage that migrate are reported too: they run at image build.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shlex
from dataclasses import dataclass, field

from gonogo.detect._base import Ctx, EnvVal, Repo, Trail
from gonogo.detect.shell import Exp, Interp, Loc, State

SOURCE = "dockerfile"
ORIGIN_START = "Dockerfile {what} runs on every container start"
ORIGIN_BUILD = "Dockerfile RUN runs at image build (against whatever database the build reaches)"


@dataclass
class Instr:
    cmd: str
    args: str
    line: int
    body: str | None = None  # heredoc body
    body_line: int = 0


@dataclass(frozen=True)
class Copy:
    src: str  # repo-relative (may be a glob)
    dest: str  # absolute container path
    src_is_dir: bool
    dest_is_dir: bool


@dataclass
class Command:
    argv: list[str]
    line: int
    shell_form: bool
    text: str


@dataclass
class Run:
    instr: Instr
    env: dict[str, EnvVal]
    workdir: str
    copies: list[Copy]


@dataclass
class Stage:
    name: str | None
    line: int
    env: dict[str, EnvVal] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)
    workdir: str = "/"
    copies: list[Copy] = field(default_factory=list)
    cmd: Command | None = None
    entrypoint: Command | None = None
    runs: list[Run] = field(default_factory=list)


@dataclass
class Dockerfile:
    rel: str
    context: str
    stages: list[Stage]

    @property
    def final(self) -> Stage | None:
        return self.stages[-1] if self.stages else None


@dataclass(frozen=True)
class ContainerView:
    """Container paths → repo files, through the COPY lines seen so far."""

    repo: Repo
    copies: tuple[Copy, ...]

    def to_repo(self, vpath: str) -> str | None:
        vpath = posixpath.normpath(vpath)
        for copy in reversed(self.copies):
            found = self._one(copy, vpath)
            if found is not None and (self.repo.is_file(found) or self.repo.is_dir(found)):
                return found
        return None

    @staticmethod
    def _one(copy: Copy, vpath: str) -> str | None:
        dest = copy.dest.rstrip("/") or "/"
        if copy.src_is_dir:
            if vpath == dest:
                return copy.src
            prefix = dest if dest.endswith("/") else dest + "/"
            if vpath.startswith(prefix):
                return posixpath.normpath(posixpath.join(copy.src, vpath[len(prefix) :]))
            return None
        base = posixpath.basename(copy.src)
        if any(ch in base for ch in "*?["):
            if posixpath.dirname(vpath) == dest and fnmatch.fnmatchcase(
                posixpath.basename(vpath), base
            ):
                return posixpath.join(posixpath.dirname(copy.src), posixpath.basename(vpath))
            return None
        if vpath == posixpath.join(dest, base) or (not copy.dest_is_dir and vpath == dest):
            return copy.src
        return None

    def fallback(self, name: str) -> str | None:
        if not name or name in (".", ".."):
            return None
        hits = self.repo.by_basename(name)
        return hits[0] if hits else None


# --------------------------------------------------------------------------------------------
# parsing


_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")


def parse_instructions(text: str) -> list[Instr]:
    lines = text.split("\n")
    escape = "\\"
    for raw in lines[:5]:
        m = re.match(r"^#\s*escape\s*=\s*(\S)", raw)
        if m:
            escape = m.group(1)
    out: list[Instr] = []
    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts = [raw.rstrip()]
        while parts[-1].endswith(escape) and i + 1 < len(lines):
            parts[-1] = parts[-1][:-1]
            i += 1
            nxt = lines[i]
            if nxt.strip().startswith("#"):
                parts.append(escape)  # comment lines inside a continuation are dropped
                continue
            parts.append(nxt.rstrip())
        i += 1
        joined = " ".join(p for p in parts if p != escape).strip()
        m = re.match(r"^(\w+)\s*(.*)$", joined, re.S)
        if not m:
            continue
        instr = Instr(m.group(1).upper(), m.group(2).strip(), start + 1)
        if instr.cmd in ("RUN", "COPY", "ADD") and (hd := _HEREDOC.search(instr.args)):
            delim = hd.group(1)
            body: list[str] = []
            instr.body_line = i + 1
            while i < len(lines):
                line = lines[i]
                i += 1
                if line.strip() == delim:
                    break
                body.append(line)
            instr.body = "\n".join(body)
        out.append(instr)
    return out


def _subst(text: str, values: dict[str, str | None]) -> str:
    """Dockerfile variable substitution: $X, ${X}, ${X:-word}, ${X:+word}."""

    def one(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            name, op, word = m.group(1), m.group(2) or "", m.group(3) or ""
        else:
            name, op, word = m.group(4), "", ""
        value = values.get(name)
        if op == ":-":
            return value if value else word
        if op == ":+":
            return word if value else ""
        return value or ""

    pattern = r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)"
    return re.sub(pattern, one, text)


def _exec_form(args: str) -> list[str] | None:
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _words(args: str) -> list[str]:
    try:
        return shlex.split(args, posix=True)
    except ValueError:
        return args.split()


def load(ctx: Ctx, rel: str, build_args: dict[str, str] | None = None) -> Dockerfile | None:
    key = f"dockerfile:{rel}:{sorted((build_args or {}).items())}"
    if key in ctx.cache:
        cached = ctx.cache[key]
        return cached if isinstance(cached, Dockerfile) else None
    text = ctx.repo.read(rel)
    result = None if text is None else build(ctx.repo, rel, text, build_args or {})
    ctx.cache[key] = result
    return result


def build(repo: Repo, rel: str, text: str, build_args: dict[str, str]) -> Dockerfile:
    context = posixpath.dirname(rel) or "."
    stages: list[Stage] = []
    global_args: dict[str, str | None] = {}
    stage: Stage | None = None
    for instr in parse_instructions(text):
        if instr.cmd == "FROM":
            words = [w for w in _words(instr.args) if not w.startswith("--")]
            base = words[0] if words else ""
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            parent = next((s for s in stages if s.name and s.name.lower() == base.lower()), None)
            stage = Stage(name, instr.line)
            if parent is not None:
                stage.env = dict(parent.env)
                stage.workdir = parent.workdir
                stage.copies = list(parent.copies)
                stage.cmd = parent.cmd
                stage.entrypoint = parent.entrypoint
            stages.append(stage)
            continue
        if instr.cmd == "ARG":
            for word in _words(instr.args):
                name, eq, default = word.partition("=")
                value = build_args.get(name, default if eq else None)
                if stage is None:
                    global_args[name] = value
                else:
                    if not eq and name in global_args and name not in build_args:
                        value = global_args[name]
                    stage.args[name] = value
            continue
        if stage is None:
            continue
        values = {
            **{k: v for k, v in stage.args.items()},
            **{k: v.value for k, v in stage.env.items()},
        }
        if instr.cmd == "ENV":
            words = _words(instr.args)
            pairs: list[tuple[str, str]] = []
            if words and "=" not in words[0]:
                key, _, rest = instr.args.partition(" ")
                pairs.append((key.strip(), rest.strip().strip("'\"")))
            else:
                for word in words:
                    key, _, value = word.partition("=")
                    pairs.append((key, value))
            for key, value in pairs:
                expanded = _subst(value, values)
                stage.env[key] = EnvVal(expanded, f"{rel}:{instr.line} ENV")
                values[key] = expanded
        elif instr.cmd == "WORKDIR":
            path = _subst(instr.args.strip().strip("'\""), values)
            stage.workdir = posixpath.normpath(posixpath.join(stage.workdir, path))
        elif instr.cmd in ("COPY", "ADD"):
            stage.copies.extend(_copies(repo, context, instr, stage, values))
        elif instr.cmd in ("CMD", "ENTRYPOINT"):
            argv = _exec_form(instr.args)
            command = (
                Command(argv, instr.line, False, instr.args)
                if argv is not None
                else Command(["/bin/sh", "-c", instr.args], instr.line, True, instr.args)
            )
            if instr.cmd == "CMD":
                stage.cmd = command
            else:
                stage.entrypoint = command
                stage.cmd = None  # setting ENTRYPOINT resets an inherited CMD
        elif instr.cmd == "RUN":
            env = dict(stage.env)
            for key, arg_value in stage.args.items():
                if key not in env:
                    env[key] = EnvVal(arg_value, f"{rel} ARG {key}")
            stage.runs.append(Run(instr, env, stage.workdir, list(stage.copies)))
    return Dockerfile(rel, context, stages)


def _copies(
    repo: Repo, context: str, instr: Instr, stage: Stage, values: dict[str, str | None]
) -> list[Copy]:
    argv = _exec_form(instr.args)
    words = argv if argv is not None else _words(instr.args)
    if any(w.startswith("--from") for w in words):
        return []
    words = [_subst(w, values) for w in words if not w.startswith("--")]
    if instr.body is not None or len(words) < 2:
        return []
    srcs, dest = words[:-1], words[-1]
    dest_is_dir = dest.endswith(("/", "/.")) or dest == "." or len(srcs) > 1
    dest = posixpath.normpath(posixpath.join(stage.workdir, dest))
    out: list[Copy] = []
    for src in srcs:
        if "://" in src:
            continue
        rel = Repo.norm(posixpath.join(context, src))
        if rel is None:
            continue
        out.append(Copy(rel, dest, repo.is_dir(rel), dest_is_dir))
    return out


# --------------------------------------------------------------------------------------------
# scanning


def state_for(ctx: Ctx, df: Dockerfile, stage: Stage) -> State:
    view = ContainerView(ctx.repo, tuple(stage.copies))
    env = ctx.env(stage.env)
    return State(view, stage.workdir or "/", env, set(env), [])


def scan_entry(
    ctx: Ctx, df: Dockerfile, origin: str | None = None, *, source: str = SOURCE
) -> None:
    """CMD / ENTRYPOINT of the final stage, as the container would run them."""
    stage = df.final
    if stage is None:
        return
    ep, cmd = stage.entrypoint, stage.cmd
    if ep is None and cmd is None:
        return
    interp = Interp(ctx)
    st = state_for(ctx, df, stage)
    what = "ENTRYPOINT" if ep is not None else "CMD"
    trail = Trail(origin or ORIGIN_START.format(what=what))
    if ep is not None and (ep.shell_form or cmd is None):
        interp.run_argv([Exp(w) for w in ep.argv], Loc(df.rel, source, ep.line, True), st, trail)
        return
    if ep is None:
        assert cmd is not None
        interp.run_argv([Exp(w) for w in cmd.argv], Loc(df.rel, source, cmd.line, True), st, trail)
        return
    assert cmd is not None
    cmd_loc = Loc(df.rel, source, cmd.line, True)
    st.args_loc = cmd_loc
    argv = [Exp(w) for w in ep.argv] + [Exp(w, from_args=True) for w in cmd.argv]
    interp.run_argv(
        argv, Loc(df.rel, source, ep.line, True), st, trail, tail=(len(ep.argv), cmd_loc)
    )


def scan_runs(ctx: Ctx, df: Dockerfile) -> None:
    interp = Interp(ctx)
    trail = Trail(ORIGIN_BUILD)
    for stage in df.stages:
        for run in stage.runs:
            view = ContainerView(ctx.repo, tuple(run.copies))
            st = State(view, run.workdir or "/", dict(run.env), set(run.env), [])
            instr = run.instr
            if instr.body is not None:
                interp.run_text(instr.body, Loc(df.rel, SOURCE, instr.body_line, False), st, trail)
                continue
            argv = _exec_form(instr.args)
            if argv is not None:
                interp.run_argv(
                    [Exp(w) for w in argv], Loc(df.rel, SOURCE, instr.line, True), st, trail
                )
            else:
                args = re.sub(r"^(--\S+\s+)+", "", instr.args)  # RUN --mount=... flags
                interp.run_text(args, Loc(df.rel, SOURCE, instr.line, True), st, trail)
