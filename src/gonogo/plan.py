"""Plans: what a command will do, as plain data built before anything runs.

A plan can be printed (--dry-run), stored in the ledger with its run, and compared in
tests by equality. Providers build plans; the executor performs them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    action: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    command: str
    env: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "env": self.env,
            "steps": [s.to_dict() for s in self.steps],
            "notes": list(self.notes),
        }

    def render(self) -> list[str]:
        lines = [f"{i}. {s.description}" for i, s in enumerate(self.steps, 1)]
        return lines + [f"note: {n}" for n in self.notes]
