"""Evaluate a command's gates and summarise them into one verdict."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gonogo.gates.builtin import REGISTRY
from gonogo.gates.model import GateInput, GateResult

# Which gates guard which command, in the order they are reported.
COMMAND_GATES: dict[str, tuple[str, ...]] = {
    "deploy": ("clean-tree", "prod-guard", "promoted-from"),
    "rollback": ("prod-guard",),
    "migrate": ("prod-guard",),
}


@dataclass(frozen=True)
class GateReport:
    results: tuple[GateResult, ...]

    @property
    def go(self) -> bool:
        return all(r.go for r in self.results)

    @property
    def verdict(self) -> str:
        return "GO" if self.go else "NO-GO"

    def refusals(self) -> list[GateResult]:
        return [r for r in self.results if not r.go]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "gates": [r.to_dict() for r in self.results]}


def evaluate(gate_ids: Sequence[str], inp: GateInput) -> GateReport:
    results: list[GateResult] = []
    for gate_id in gate_ids:
        gate = REGISTRY[gate_id]
        if not gate.applies(inp):
            continue
        started = time.perf_counter()
        result = gate.evaluate(inp)
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        results.append(
            GateResult(
                result.id, result.verdict, result.reason, result.evidence, result.findings, elapsed
            )
        )
    return GateReport(tuple(results))


def for_command(command: str, inp: GateInput) -> GateReport:
    return evaluate(COMMAND_GATES[command], inp)
