"""Console output: readable lines for people, one JSON document for scripts.

With --json, stdout carries only the final document; progress goes to stderr so a
person watching still sees it and a script parsing stdout is not disturbed.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

MARKS = {"GO": "✔", "NO-GO": "✘", "WARN": "!", "ok": "✔", "failed": "✘", "skipped": "-"}


class Output:
    def __init__(
        self, *, json_mode: bool = False, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.json_mode = json_mode
        self._stdout = stdout or sys.stdout
        self._stderr = stderr or sys.stderr

    @property
    def stream(self) -> TextIO:
        return self._stderr if self.json_mode else self._stdout

    def line(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def error(self, text: str) -> None:
        print(text, file=self._stderr, flush=True)

    def document(self, data: Any) -> None:
        print(
            json.dumps(data, indent=2, sort_keys=False, default=str), file=self._stdout, flush=True
        )


def mark(verdict: str) -> str:
    return MARKS.get(verdict, "·")


def short(sha: str | None, n: int = 7) -> str:
    return (sha or "")[:n] or "-"
