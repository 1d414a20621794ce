"""The Gate protocol and its result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from gonogo.config.schema import Config
    from gonogo.evidence import Redactor
    from gonogo.ledger import Ledger

Verdict = Literal["GO", "NO-GO"]


@dataclass(frozen=True)
class Finding:
    file: str
    line: int | None
    message: str


@dataclass(frozen=True)
class GateResult:
    id: str
    verdict: Verdict
    reason: str
    evidence: str
    findings: tuple[Finding, ...] = ()
    duration_ms: float = 0.0
    # The command a person would run to turn this NO-GO into GO, when there is one.
    fix: str = ""
    # Set when a person passed this NO-GO with --override.
    override: Override | None = None

    @property
    def go(self) -> bool:
        return self.verdict == "GO"

    @property
    def passes(self) -> bool:
        """GO, or a NO-GO a person overrode."""
        return self.go or self.override is not None

    def redacted(self, redactor: Redactor) -> GateResult:
        """The same result with every known secret value replaced by <redacted>."""
        text = redactor.text
        return replace(
            self,
            reason=text(self.reason),
            evidence=text(self.evidence),
            fix=text(self.fix),
            findings=tuple(Finding(text(f.file), f.line, text(f.message)) for f in self.findings),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["findings"] = [asdict(f) for f in self.findings]
        data["override"] = asdict(self.override) if self.override else None
        return data


@dataclass(frozen=True)
class Override:
    gate: str
    reason: str
    by: str
    at: str


@dataclass(frozen=True)
class GateInput:
    """Everything a gate may read. Gates must not change any of it."""

    root: Path
    config: Config
    env: str
    ledger: Ledger
    environ: Mapping[str, str]
    sha: str | None = None
    confirm: str | None = None
    # The command being guarded ("check" when only asked).
    command: str = "check"
    extra: Mapping[str, Any] = field(default_factory=dict)


class Gate(Protocol):
    id: str
    overridable: bool

    def applies(self, inp: GateInput) -> bool: ...

    def evaluate(self, inp: GateInput) -> GateResult: ...
