"""Context: what every command needs (config, ledger, output, environment), built once."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gonogo.errors import GonogoError
from gonogo.output import Output

if TYPE_CHECKING:
    from gonogo.config.schema import Config, Environment
    from gonogo.ledger import Ledger

STATE_DIR = ".gonogo"


@dataclass
class Context:
    root: Path
    config: Config
    config_path: Path
    out: Output = field(default_factory=Output)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _ledger: Ledger | None = None
    providers: dict[str, Any] = field(default_factory=dict)
    # Set by --dry-run: reading a ledger that does not exist yet must not create it.
    dry_run: bool = False

    @classmethod
    def load(
        cls,
        directory: Path | None = None,
        *,
        out: Output | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Context:
        from gonogo.config import find_config, load_config

        path = find_config((directory or Path.cwd()).resolve())
        config = load_config(path)
        return cls(
            root=path.parent,
            config=config,
            config_path=path,
            out=out or Output(),
            environ=dict(os.environ) if environ is None else environ,
        )

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def ledger(self) -> Ledger:
        from gonogo.ledger import Ledger

        if self._ledger is not None and self._ledger.location == "memory" and not self.dry_run:
            # A stand-in from an earlier dry run: real work needs the real ledger.
            self.close()
        if self._ledger is None:
            path = self.state_dir / "ledger.db"
            # SQLite file by default; postgresql://... for a ledger a team shares.
            url = self.environ.get("GONOGO_LEDGER_URL")
            stale_after = self._lock_stale_after()
            missing = not path.exists() if not url else _missing_sqlite(url)
            if self.dry_run and missing:
                self._ledger = Ledger.open("sqlite://", path, stale_after=stale_after)
            else:
                self._ledger = Ledger.open(url, path, stale_after=stale_after)
        return self._ledger

    def _lock_stale_after(self) -> float:
        """Seconds without a heartbeat after which another machine's lock counts as stale."""
        from gonogo.ledger.lock import DEFAULT_STALE_AFTER

        raw = self.environ.get("GONOGO_LOCK_STALE_AFTER", "").strip()
        if not raw:
            return DEFAULT_STALE_AFTER
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if not 0 < value < float("inf"):
            raise GonogoError(f"GONOGO_LOCK_STALE_AFTER={raw!r} must be a number of seconds > 0")
        return value

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def env(self, name: str) -> Environment:
        try:
            return self.config.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.config.environments))
            raise GonogoError(
                f"unknown environment {name!r} in {self.config_path.name} (known: {known})"
            ) from None

    @property
    def actor(self) -> str:
        explicit = self.environ.get("GONOGO_ACTOR")
        if explicit:
            return explicit
        from gonogo import gitrepo

        name = gitrepo.config_value(self.root, "user.name")
        email = gitrepo.config_value(self.root, "user.email")
        if name and email:
            return f"{name} <{email}>"
        return name or email or getpass.getuser()

    @property
    def host(self) -> str:
        return socket.gethostname()


def _missing_sqlite(url: str) -> bool:
    """A sqlite:///PATH ledger URL whose file does not exist (a dry run must not create it)."""
    from gonogo.ledger.store import sqlite_file

    path = sqlite_file(url)
    return path is not None and not path.exists()
