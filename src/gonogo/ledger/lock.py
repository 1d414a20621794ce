"""Environment locks across machines: when a holder counts as gone, and keeping a lock fresh.

On one machine a lock's holder is alive while its pid is. A team ledger (PostgreSQL) is
shared by CI runners and laptops, where another machine's pid means nothing: there the
holder is alive while it keeps `heartbeat_at` fresh, and counts as gone (stale) once the
heartbeat is older than `stale_after` seconds. A stale lock is only reported; clearing it
stays a recorded decision (`gonogo unlock`).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gonogo.ledger.store import LockRow

# Two minutes: long enough for a slow runner to miss a beat or two, short enough that a
# crashed runner does not block a team's deploys for long.
DEFAULT_STALE_AFTER = 120.0
# Four beats per stale window, so one slow or failed write never makes a live holder stale.
BEATS_PER_WINDOW = 4


def parse_ts(text: str) -> datetime:
    """A ledger timestamp (ISO-8601 UTC, as `now_iso` writes it) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def heartbeat_age(lock: LockRow, now: datetime) -> float:
    """Seconds since the holder's last heartbeat (never negative: clocks may disagree)."""
    return max(0.0, (now - parse_ts(lock.heartbeat_at)).total_seconds())


def stale_reason(
    lock: LockRow, host: str, *, now: datetime, stale_after: float = DEFAULT_STALE_AFTER
) -> str | None:
    """Why the holder of `lock` is gone, seen from `host`; None while it looks alive."""
    if lock.host == host:
        # Same machine: the pid is authoritative, whatever the heartbeat says (a long step
        # in a gonogo without the heartbeat thread is still alive).
        from gonogo.procs import pid_alive

        return None if pid_alive(lock.pid) else f"holder process {lock.pid} is gone"
    age = heartbeat_age(lock, now)
    if age > stale_after:
        return (
            f"no heartbeat from {lock.host} for {_duration(age)} "
            f"(stale after {_duration(stale_after)})"
        )
    return None


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 120:
        return f"{whole}s"
    if whole < 7200:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class _Beats(Protocol):
    def heartbeat(self, env: str, run_id: str) -> bool: ...


class Heartbeat:
    """Keeps a held lock's heartbeat fresh from a daemon thread while a run works.

    Steps can take far longer than `stale_after` (a migration, a slow health check), so
    beating only between steps would make a live holder look dead to other machines.
    `lost` turns True when the lock row is no longer this run's (someone cleared it with
    `gonogo unlock --force`); the thread then stops, as beating would change nothing.
    """

    def __init__(
        self,
        ledger: _Beats,
        env: str,
        run_id: str,
        *,
        every: float = DEFAULT_STALE_AFTER / BEATS_PER_WINDOW,
    ) -> None:
        self.ledger = ledger
        self.env = env
        self.run_id = run_id
        self.every = every
        self.beats = 0
        self.failures = 0
        self.last_error: BaseException | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"gonogo-heartbeat-{env}", daemon=True
        )

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        # Ends when stop() is called or the lock is lost; each wait is bounded by `every`.
        while not self._stop.wait(self.every):
            try:
                mine = self.ledger.heartbeat(self.env, self.run_id)
            except Exception as exc:  # a brief database outage must not kill the run
                self.failures += 1
                self.last_error = exc
                continue
            self.beats += 1
            if not mine:
                self.lost = True
                return
