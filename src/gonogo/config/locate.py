"""Find the line in TOML source where a key path is defined.

The stdlib ``tomllib`` keeps no positions, so this is a small, forgiving scanner that
understands just enough TOML to map key paths to lines: table headers (``[a."b c"]``),
arrays of tables (``[[a.b]]``), dotted keys, inline tables, (multi-line) arrays, strings of
every kind, and comments. It never raises on odd input; it just records less.
"""

from __future__ import annotations

from bisect import bisect_right
from contextlib import suppress

from gonogo.config.schema import KeyPath

__all__ = ["line_of"]

_WS = " \t"
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# Characters that end a scalar value (number, bool, date) inside an array or inline table.
_SCALAR_END = frozenset(",]}#\r\n")
# Deeper than any sane config; keeps pathological input from exhausting the stack.
_MAX_DEPTH = 200


def line_of(text: str, path: KeyPath) -> int | None:
    """The 1-based line of ``text`` where ``path`` (or its deepest existing prefix) is defined.

    ``path`` is a tuple of table keys and list indexes, e.g.
    ``("environments", "production", "verify", "probes", 1, "status")``. A missing key
    resolves to the line of the table that should hold it; an unknown key to its own line.
    Returns None only when no prefix of ``path`` appears in ``text`` at all.
    """
    index = _index(text)
    for n in range(len(path), 0, -1):
        prefix = tuple(path[:n])
        line = index.explicit.get(prefix) or index.implicit.get(prefix)
        if line is not None:
            return line
    return None


class _Index:
    def __init__(self) -> None:
        # Where a path is actually written (a key, a header, an array element) ...
        self.explicit: dict[KeyPath, int] = {}
        # ... and where a table only comes into being as the parent of one (`[a.b]` makes `a`).
        self.implicit: dict[KeyPath, int] = {}


class _Stop(Exception):
    """Raised when the scanner cannot make sense of the rest of the input."""


def _index(text: str) -> _Index:
    scanner = _Scanner(text)
    # On input it cannot follow, keep whatever was recorded before the confusing part.
    with suppress(_Stop, IndexError, RecursionError):
        scanner.document()
    return scanner.index


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.i = 0
        self.index = _Index()
        self.line_starts = [0] + [k + 1 for k, ch in enumerate(text) if ch == "\n"]
        # How many `[[path]]` headers have been seen for each array-of-tables path.
        self.aot: dict[KeyPath, int] = {}

    # -- positions ---------------------------------------------------------------------------

    def line_at(self, pos: int) -> int:
        return bisect_right(self.line_starts, pos)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < self.n else ""

    def record(self, path: KeyPath, pos: int) -> None:
        self.index.explicit.setdefault(path, self.line_at(pos))

    def record_implicit(self, path: KeyPath, pos: int) -> None:
        self.index.implicit.setdefault(path, self.line_at(pos))

    # -- whitespace and comments -------------------------------------------------------------

    def skip_ws(self) -> None:
        while self.i < self.n and self.s[self.i] in _WS:
            self.i += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            while self.i < self.n and self.s[self.i] != "\n":
                self.i += 1

    def skip_blank(self) -> None:
        """Whitespace, newlines and comments (between array elements, between statements)."""
        while self.i < self.n:
            ch = self.s[self.i]
            if ch in _WS or ch in "\r\n":
                self.i += 1
            elif ch == "#":
                self.skip_comment()
            else:
                return

    def skip_line(self) -> None:
        """Skip to the start of the next line, stepping over strings that span lines."""
        while self.i < self.n:
            ch = self.s[self.i]
            if ch == "\n":
                self.i += 1
                return
            if ch in "\"'":
                try:
                    self.string()
                except _Stop:
                    self.i = self.s.find("\n", self.i)
                    if self.i < 0:
                        self.i = self.n
            elif ch == "#":
                self.skip_comment()
            else:
                self.i += 1

    # -- document structure ------------------------------------------------------------------

    def document(self) -> None:
        table: KeyPath = ()
        while True:
            self.skip_blank()
            if self.i >= self.n:
                return
            start = self.i
            try:
                if self.s.startswith("[[", self.i):
                    table = self.array_table_header()
                elif self.peek() == "[":
                    table = self.table_header()
                else:
                    self.keyval(table, 0)
                self.skip_ws()
                self.skip_comment()
            except _Stop:
                pass
            if self.i < self.n and self.s[self.i] not in "\r\n":
                self.skip_line()  # something we did not understand: resync on the next line
            if self.i == start:
                self.i += 1

    def resolve(self, keys: list[str], pos: int) -> KeyPath:
        """A header's keys as a path, stepping into the latest element of arrays of tables."""
        path: KeyPath = ()
        for key in keys:
            path = (*path, key)
            count = self.aot.get(path)
            if count:
                self.record_implicit(path, pos)
                path = (*path, count - 1)
            self.record_implicit(path, pos)
        return path

    def table_header(self) -> KeyPath:
        pos = self.i
        self.i += 1
        self.skip_ws()
        keys = self.key()
        self.skip_ws()
        if self.peek() == "]":
            self.i += 1
        path = self.resolve(keys, pos)
        self.record(path, pos)
        return path

    def array_table_header(self) -> KeyPath:
        pos = self.i
        self.i += 2
        self.skip_ws()
        keys = self.key()
        self.skip_ws()
        if self.s.startswith("]]", self.i):
            self.i += 2
        parent = self.resolve(keys[:-1], pos) if len(keys) > 1 else ()
        array = (*parent, keys[-1])
        count = self.aot.get(array, 0)
        self.aot[array] = count + 1
        self.record(array, pos)
        element = (*array, count)
        self.record(element, pos)
        return element

    def keyval(self, table: KeyPath, depth: int) -> None:
        pos = self.i
        keys = self.key()
        path = table
        for key in keys[:-1]:
            path = (*path, key)
            self.record_implicit(path, pos)
        path = (*path, keys[-1])
        self.record(path, pos)
        self.skip_ws()
        if self.peek() != "=":
            raise _Stop
        self.i += 1
        self.skip_ws()
        self.value(path, depth + 1)

    # -- keys --------------------------------------------------------------------------------

    def key(self) -> list[str]:
        keys = [self.simple_key()]
        while True:
            save = self.i
            self.skip_ws()
            if self.peek() != ".":
                self.i = save
                return keys
            self.i += 1
            self.skip_ws()
            keys.append(self.simple_key())

    def simple_key(self) -> str:
        ch = self.peek()
        if ch in ('"', "'"):
            return self.string()
        start = self.i
        while self.i < self.n and self.s[self.i] in _BARE:
            self.i += 1
        if self.i == start:
            raise _Stop
        return self.s[start : self.i]

    # -- values ------------------------------------------------------------------------------

    def value(self, path: KeyPath, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise _Stop
        ch = self.peek()
        if ch == "{":
            self.inline_table(path, depth)
        elif ch == "[":
            self.array(path, depth)
        elif ch in ('"', "'"):
            self.string()
        else:
            start = self.i
            while self.i < self.n and self.s[self.i] not in _SCALAR_END:
                self.i += 1
            if self.i == start:
                raise _Stop

    def inline_table(self, path: KeyPath, depth: int) -> None:
        self.i += 1  # {
        while True:
            self.skip_blank()  # TOML 1.1 allows newlines here; be generous
            ch = self.peek()
            if ch == "}":
                self.i += 1
                return
            if ch == ",":
                self.i += 1
                continue
            if not ch:
                raise _Stop
            self.keyval(path, depth)

    def array(self, path: KeyPath, depth: int) -> None:
        self.i += 1  # [
        index = 0
        while True:
            self.skip_blank()
            ch = self.peek()
            if ch == "]":
                self.i += 1
                return
            if ch == ",":
                self.i += 1
                continue
            if not ch:
                raise _Stop
            element = (*path, index)
            self.record(element, self.i)
            self.value(element, depth + 1)
            index += 1

    def string(self) -> str:
        """Consume a string of any of TOML's four kinds; return its (roughly unescaped) text."""
        quote = self.s[self.i]
        if self.s.startswith(quote * 3, self.i):
            return self.multiline_string(quote)
        self.i += 1
        start = self.i
        out: list[str] = []
        while self.i < self.n:
            ch = self.s[self.i]
            if ch == quote:
                self.i += 1
                return "".join(out) if quote == '"' else self.s[start : self.i - 1]
            if ch == "\n":
                raise _Stop  # unterminated single-line string
            if ch == "\\" and quote == '"':
                self.i += 1
                out.append(self.escape())
                continue
            out.append(ch)
            self.i += 1
        raise _Stop

    def escape(self) -> str:
        """Decode the escape after a backslash (already consumed) in a basic string."""
        ch = self.peek()
        self.i += 1
        width = {"u": 4, "U": 8}.get(ch)
        if width is None:
            return _ESCAPES.get(ch, ch)
        digits = self.s[self.i : self.i + width]
        self.i += width
        try:
            return chr(int(digits, 16))
        except (ValueError, OverflowError):
            return ""

    def multiline_string(self, quote: str) -> str:
        self.i += 3
        start = self.i
        while self.i < self.n:
            ch = self.s[self.i]
            if ch == "\\" and quote == '"':
                self.i += 2
                continue
            if ch == quote and self.s.startswith(quote * 3, self.i):
                run = 3
                while run < 5 and self.peek(run) == quote:
                    run += 1  # up to two quotes may sit right before the closing delimiter
                end = self.i + run - 3
                self.i += run
                return self.s[start:end]
            self.i += 1
        raise _Stop


_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
