"""Choose the gates that guard a command, evaluate them, apply overrides, summarise.

Gates that do I/O (git, GitHub, commands) run concurrently; a gate that raises becomes a
NO-GO saying so, never a GO and never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from gonogo.config.schema import GATE_IDS, Config
from gonogo.errors import GonogoError
from gonogo.evidence import Redactor
from gonogo.gates.builtin import REGISTRY
from gonogo.gates.model import Gate, GateInput, GateResult, Override

# Which built-in gates guard which command, in the order they are reported.
COMMAND_GATES: dict[str, tuple[str, ...]] = {
    "deploy": (
        "clean-tree",
        "branch-allowed",
        "in-scope",
        "ci-passed",
        "migrations-explicit",
        "rollback-feasible",
        "promoted-from",
        "prod-guard",
        "no-blockers",
    ),
    "rollback": ("prod-guard", "schema-compatible"),
    "migrate": ("prod-guard", "migration-approved", "migration-tested-upstream"),
    "publish": ("ci-passed", "promoted-from", "prod-guard"),
    "check": GATE_IDS,
}


@dataclass(frozen=True)
class GateReport:
    results: tuple[GateResult, ...]

    @property
    def go(self) -> bool:
        return all(r.passes for r in self.results)

    @property
    def verdict(self) -> str:
        return "GO" if self.go else "NO-GO"

    def refusals(self) -> list[GateResult]:
        return [r for r in self.results if not r.passes]

    def overrides(self) -> list[Override]:
        return [r.override for r in self.results if r.override is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "gates": [r.to_dict() for r in self.results]}


def gate_objects(config: Config) -> dict[str, Gate]:
    from gonogo.gates.builtin.command_gate import CommandGate

    gates: dict[str, Gate] = dict(REGISTRY)
    for gate_id, spec in config.gates.custom.items():
        gates[gate_id] = CommandGate(gate_id, spec)
    return gates


def select(config: Config, env: str, command: str, only: Sequence[str] = ()) -> list[Gate]:
    """The gates guarding `command` on `env`: the environment's list if it has one."""
    gates = gate_objects(config)
    if only:
        unknown = [g for g in only if g not in gates]
        if unknown:
            raise GonogoError(
                f"--gate {unknown[0]}: no such gate (known: {', '.join(sorted(gates))})"
            )
        return [gates[g] for g in only]
    chosen = config.environments[env].gates
    ids = list(COMMAND_GATES[command])
    ids += [
        g for g, spec in config.gates.custom.items() if command in spec.guards or command == "check"
    ]
    if chosen is not None:
        ids = [g for g in ids if g in chosen]
    return [gates[g] for g in ids]


def redactor_for(inp: GateInput) -> Redactor:
    """Secrets a gate may have seen: secret-looking variables and the configured tokens."""
    sources = [c.github for c in (inp.config.gates.ci_passed, inp.config.gates.no_blockers) if c]
    tokens = [inp.environ.get(s.token_env, "") for s in sources if s is not None]
    return Redactor.from_environ(inp.environ, tokens)


def _timed(gate: Gate, inp: GateInput) -> GateResult:
    started = time.perf_counter()
    try:
        result = gate.evaluate(inp)
    except Exception as exc:  # a broken gate must refuse, never crash the CLI or pass
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        result = GateResult(
            gate.id,
            "NO-GO",
            f"the gate could not be evaluated: {type(exc).__name__}: {first_line}",
            "gonogo",
        )
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return replace(result.redacted(redactor_for(inp)), duration_ms=elapsed)


def evaluate(
    gates: Sequence[Gate], inp: GateInput, overrides: Mapping[str, Override] | None = None
) -> GateReport:
    applicable = [g for g in gates if g.applies(inp)]
    overrides = dict(overrides or {})
    for gate_id in overrides:
        gate = next((g for g in gates if g.id == gate_id), None)
        if gate is None:
            raise GonogoError(
                f"--override {gate_id}: not one of the gates guarding this command "
                f"({', '.join(g.id for g in gates)})"
            )
        if not gate.overridable:
            raise GonogoError(f"--override {gate_id}: this gate cannot be overridden")
    if len(applicable) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(applicable))) as pool:
            results = list(pool.map(lambda g: _timed(g, inp), applicable))
    else:
        results = [_timed(g, inp) for g in applicable]
    final = []
    for r in results:
        ov = overrides.get(r.id)
        final.append(replace(r, override=ov) if ov is not None and not r.go else r)
    return GateReport(tuple(final))


def for_command(
    command: str, inp: GateInput, overrides: Mapping[str, Override] | None = None
) -> GateReport:
    return evaluate(select(inp.config, inp.env, command), inp, overrides)
