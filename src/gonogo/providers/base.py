"""The Provider protocol: turn intent into Plans, then perform their steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gonogo.plan import Plan, Step

if TYPE_CHECKING:
    from gonogo.executor import Run
    from gonogo.ledger.store import ReleaseRow
    from gonogo.migrations.pending import MigrationTarget


@dataclass(frozen=True)
class DeployIntent:
    env: str
    version: int
    sha: str
    vars: dict[str, str]
    reuse_artifact: str | None = None
    reuse_from: str | None = None
    previous: ReleaseRow | None = None


@dataclass(frozen=True)
class ActivateIntent:
    """Put an existing release back (rollback)."""

    env: str
    target: ReleaseRow
    current: ReleaseRow | None


@dataclass
class EnvStatus:
    env: str
    running: bool
    pid: int | None = None
    port: int | None = None
    version: int | None = None
    url: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecentLogs:
    """The most recent lines of an environment's app log, oldest first."""

    source: str  # where they were read, for people: a file, a log session
    lines: list[str]


class Provider(Protocol):
    name: str

    def preflight(self, env: str) -> object:
        """Check that the platform will answer for env (credentials, the app exists and can
        run what gonogo releases) before any gate, build or push: a one-line GonogoError
        naming what to fix otherwise. Cheap to call again: the verdict is kept."""
        ...

    def plan_deploy(self, intent: DeployIntent) -> Plan: ...

    def plan_activate(self, intent: ActivateIntent) -> Plan: ...

    def plan_migrate(self, env: str, release: ReleaseRow) -> Plan: ...

    def plan_downgrade(
        self, env: str, release: ReleaseRow, undo: Sequence[tuple[str, str]]
    ) -> Plan:
        """Steps that undo each (revision, downgrade target) in order."""
        ...

    def perform(self, step: Step, run: Run) -> dict[str, Any]: ...

    def migration_target(self, env: str, release: ReleaseRow) -> MigrationTarget: ...

    def database_revisions(self, env: str) -> list[str]: ...

    def base_url(self, env: str) -> str: ...

    def alive_check(self, env: str) -> Callable[[], bool | str] | None: ...

    def recent_logs(self, env: str, lines: int) -> RecentLogs:
        """At most ``lines`` of the live release's most recent log lines (certify's log scan).

        Raises GonogoError (one line) when there is no log to read.
        """
        ...

    def status(self, env: str) -> EnvStatus: ...

    def platform_releases(self, env: str, limit: int) -> list[dict[str, Any]] | None:
        """The platform's own releases, newest first, each mapped to the ledger release it
        runs (`ledger`, `sha`; None for one gonogo did not make); None where the platform
        keeps no releases of its own (the local provider: the ledger is the only record)."""
        ...

    def stop(self, env: str) -> str: ...
