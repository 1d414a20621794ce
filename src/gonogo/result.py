"""What a command returns to the CLI: an exit code, a one-line message, JSON data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    exit_code: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        return {**self.data, "exit_code": self.exit_code, "message": self.message}
