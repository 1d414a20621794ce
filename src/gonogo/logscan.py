"""Scan an app's recent log lines for patterns that must not be there (tracebacks, 5xx).

`scan(lines, patterns)` counts, for every named pattern, the lines it matches, and keeps the
first few of them as quotes (redacted, cut to one short line). A quote of a Python traceback
also carries the line that ends it (``RuntimeError: boom``), the part a person needs: the
block is the matched line, the indented frame lines after it, and the first line that is not
indented. Nothing here reads a file or the network; the provider fetches the lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The playbook's "log scan for traceback/5xx": a Python traceback, and a 5xx status in an
# access log line (uvicorn/gunicorn: `"GET /x HTTP/1.1" 500`) or a Heroku router line
# (`status=503`).
DEFAULT_PATTERNS: dict[str, str] = {
    "traceback": r"Traceback \(most recent call last\)",
    "http_5xx": r'" 5\d\d\b|\bstatus=5\d\d\b',
}
QUOTE_LIMIT = 300  # characters of one quoted line
_BLOCK_LIMIT = 200  # lines looked at after a match for the end of its traceback


@dataclass(frozen=True)
class Match:
    """One matching line: where it is among the scanned lines, and what it says."""

    pattern: str
    line: int  # 1-based, within the scanned lines
    text: str  # redacted, at most QUOTE_LIMIT characters
    ends_with: str | None = None  # a traceback's last line (the exception), redacted

    def quote(self) -> str:
        tail = f" … {self.ends_with}" if self.ends_with else ""
        return f"line {self.line}: {self.text}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "text": self.text, "ends_with": self.ends_with}


@dataclass(frozen=True)
class LogScan:
    """What the scan found in ``lines`` lines of ``source``."""

    source: str
    lines: int
    limit: int  # at most this many recent lines were asked for
    patterns: dict[str, str]
    counts: dict[str, int]
    quotes: dict[str, list[Match]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def first(self) -> Match | None:
        found = [m for ms in self.quotes.values() for m in ms]
        return min(found, key=lambda m: m.line) if found else None

    @property
    def summary(self) -> str:
        where = f"the last {self.lines} line{'s' if self.lines != 1 else ''} of {self.source}"
        if self.ok:
            names = ", ".join(f"no {name}" for name in self.counts) or "no pattern"
            return f"{names} in {where}"
        counts = ", ".join(f"{n} {name}" for name, n in self.counts.items() if n)
        # The first quote of each pattern that matched, in the order they appear in the log.
        firsts = sorted((ms[0] for ms in self.quotes.values() if ms), key=lambda m: m.line)
        quoted = "".join(f"; {m.pattern} at {m.quote()}" for m in firsts)
        return f"{counts} in {where}{quoted}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "lines": self.lines,
            "limit": self.limit,
            "patterns": dict(self.patterns),
            "counts": dict(self.counts),
            "quotes": {k: [m.to_dict() for m in v] for k, v in self.quotes.items()},
            "summary": self.summary,
        }


def compile_patterns(patterns: Mapping[str, str]) -> dict[str, re.Pattern[str]]:
    """Each pattern compiled; raises ValueError naming the one that is not a regex."""
    compiled: dict[str, re.Pattern[str]] = {}
    for name, pattern in patterns.items():
        try:
            compiled[name] = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern {name!r} is not a valid regular expression ({exc})") from exc
    return compiled


def scan(
    lines: Sequence[str],
    patterns: Mapping[str, str],
    *,
    source: str = "the log",
    limit: int | None = None,
    quote: int = 3,
    redact: Callable[[str], str] = lambda s: s,
) -> LogScan:
    """Count the lines each pattern matches; quote the first ``quote`` of each, redacted."""
    compiled = compile_patterns(patterns)
    counts = dict.fromkeys(compiled, 0)
    quotes: dict[str, list[Match]] = {name: [] for name in compiled}
    for index, raw in enumerate(lines):
        text = raw.rstrip("\r\n")
        for name, regex in compiled.items():
            if not regex.search(text):
                continue
            counts[name] += 1
            if len(quotes[name]) < quote:
                end = _block_end(lines, index)
                quotes[name].append(
                    Match(
                        pattern=name,
                        line=index + 1,
                        text=_cut(redact(text.strip())),
                        ends_with=_cut(redact(end)) if end is not None else None,
                    )
                )
    return LogScan(
        source=source,
        lines=len(lines),
        limit=len(lines) if limit is None else limit,
        patterns=dict(patterns),
        counts=counts,
        quotes={k: v for k, v in quotes.items() if v},
    )


def _block_end(lines: Sequence[str], index: int) -> str | None:
    """For a line that opens an indented block (a traceback), the first line after the block:
    the exception. None when the next line is not indented."""
    seen_indented = False
    for raw in lines[index + 1 : index + 1 + _BLOCK_LIMIT]:
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        if text[:1] in (" ", "\t"):
            seen_indented = True
            continue
        return text.strip() if seen_indented else None
    return None


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_LIMIT else text[: QUOTE_LIMIT - 1] + "…"
