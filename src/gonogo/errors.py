"""Exceptions that map to gonogo's exit codes (see DESIGN.md, "Commands and exit codes").

A user error (1) and a refusal (2) are expected outcomes with a message a person can act on;
anything else escaping a command is a bug (4) and gets a crash report instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_NOGO = 2
EXIT_FAILED = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130


class GonogoError(Exception):
    """Usage or configuration error: the message names what to fix. Exit 1."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


class ConfigError(GonogoError):
    """gonogo.toml is missing, malformed or invalid."""


class NoGo(GonogoError):
    """A gate or lock refused; nothing was changed. Exit 2."""

    exit_code = EXIT_NOGO


class Interrupted(GonogoError):
    """Ctrl-C or SIGTERM: the run is recorded as interrupted and its lock released. Exit 130."""

    exit_code = EXIT_INTERRUPTED


class DeployFailed(GonogoError):
    """Failed after changes began; the message says what state was left. Exit 3."""

    exit_code = EXIT_FAILED
