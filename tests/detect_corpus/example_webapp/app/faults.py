"""Misbehaviour switches, read from environment variables.

Every switch is OFF unless its variable is set to a non-empty value other than
``0`` / ``false`` / ``no`` / ``off`` (case-insensitive). ``WEBAPP_SLOW_START`` takes
a number of seconds instead (float; unset, empty, ``0`` or negative means no delay).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

CRASH_ON_BOOT = "WEBAPP_CRASH_ON_BOOT"
HEALTH_500 = "WEBAPP_HEALTH_500"
DEGRADED = "WEBAPP_DEGRADED"
SLOW_START = "WEBAPP_SLOW_START"
WRONG_SHA = "WEBAPP_WRONG_SHA"
NO_CSRF_COOKIE = "WEBAPP_NO_CSRF_COOKIE"
FLAP = "WEBAPP_FLAP"

_OFF = frozenset({"", "0", "false", "no", "off"})


def switch_on(value: str | None) -> bool:
    """True when an environment value turns a switch on."""
    return value is not None and value.strip().lower() not in _OFF


def seconds(value: str | None) -> float:
    """Parse a delay in seconds; anything unset, invalid or negative is 0."""
    if value is None or not value.strip():
        return 0.0
    try:
        parsed = float(value)
    except ValueError:
        return 0.0
    return parsed if parsed > 0 else 0.0


@dataclass(frozen=True)
class Faults:
    """The switches of one app process (read once, when the app object is built)."""

    crash_on_boot: bool = False
    health_500: bool = False
    degraded: bool = False
    slow_start: float = 0.0
    wrong_sha: bool = False
    no_csrf_cookie: bool = False
    flap: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Faults:
        env = os.environ if environ is None else environ
        return cls(
            crash_on_boot=switch_on(env.get(CRASH_ON_BOOT)),
            health_500=switch_on(env.get(HEALTH_500)),
            degraded=switch_on(env.get(DEGRADED)),
            slow_start=seconds(env.get(SLOW_START)),
            wrong_sha=switch_on(env.get(WRONG_SHA)),
            no_csrf_cookie=switch_on(env.get(NO_CSRF_COOKIE)),
            flap=switch_on(env.get(FLAP)),
        )

    def active(self) -> list[str]:
        """Names of the switches that are on, for the start-up log line."""
        names = {
            CRASH_ON_BOOT: self.crash_on_boot,
            HEALTH_500: self.health_500,
            DEGRADED: self.degraded,
            SLOW_START: self.slow_start > 0,
            WRONG_SHA: self.wrong_sha,
            NO_CSRF_COOKIE: self.no_csrf_cookie,
            FLAP: self.flap,
        }
        return [name for name, on in names.items() if on]
