"""Evidence folder of one run: a timestamped log, JSON documents, transcripts.

Everything written here passes through a Redactor first, so a secret handed to gonogo
through the environment can never land in a file a person will share.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SECRET_NAME = re.compile(
    r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|DATABASE_URL)", re.IGNORECASE
)
# What evidence hides is wider than what an image is refused for: a harmless variable
# hidden costs a reader little. PASS catches DB_PASS and PASSPHRASE, DSN a Sentry-style DSN,
# LEDGER_URL a team ledger's connection string. (Not PWD: that is the working directory.)
_REDACTED_NAME = re.compile(r"(PASS|PRIVATE|DSN|LEDGER_URL)", re.IGNORECASE)
_URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?=@)", re.IGNORECASE
)
# libpq and most drivers also take the password as a query parameter.
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&][^=&#\s]*(?:password|passwd|pwd|secret|token|key)[^=&#\s]*=)"
    r"(?P<pw>[^&#\s]+)",
    re.IGNORECASE,
)


def looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def _distinctive(value: str) -> bool:
    """Long enough, and not a plain word, to replace wherever it appears."""
    return len(value) >= _DISTINCTIVE_LEN and not value.isalpha() and "/" not in value[:1]


_DISTINCTIVE_LEN = 10


class Redactor:
    """Replaces known secret values, and passwords inside URLs, with <redacted>."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Short values would redact ordinary words; 4+ characters is a pragmatic floor.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], extra: Iterable[str] = ()) -> Redactor:
        values = [v for k, v in environ.items() if v and looks_secret(k)]
        # The wider names and a password found inside any variable's URL are hidden wherever
        # they show up alone, but only when they look like generated secrets: CI's
        # `postgres:postgres@localhost` or GIT_ASKPASS=true must not blank every "postgres"
        # and "true" in the evidence (and in ledger fields that are read back).
        wider = [
            v
            for k, v in environ.items()
            if _REDACTED_NAME.search(k) and not k.upper().endswith("ASKPASS")
        ]
        embedded = [
            m.group("pw")
            for v in environ.values()
            if "=" in v or "@" in v
            for pattern in (_URL_PASSWORD, _QUERY_SECRET)
            for m in pattern.finditer(v)
        ]
        guessed = [v for v in (*wider, *embedded) if _distinctive(v)]
        return cls([*values, *guessed, *extra])

    def with_secrets(self, secrets: Iterable[str]) -> Redactor:
        """This redactor, also hiding `secrets` (values learnt after the run started)."""
        return Redactor([*self._secrets, *secrets])

    def text(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, "<redacted>")
        value = _URL_PASSWORD.sub(r"\g<scheme><redacted>", value)
        return _QUERY_SECRET.sub(r"\g<name><redacted>", value)

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


class Evidence:
    def __init__(self, folder: Path, redactor: Redactor) -> None:
        self.folder = folder
        self.redactor = redactor
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "log.txt"

    def log(self, text: str) -> None:
        clean = self.redactor.text(text)
        with self.log_path.open("a", encoding="utf-8") as fh:
            for line in clean.splitlines() or [""]:
                fh.write(f"{stamp()} {line}\n")

    def write_json(self, name: str, data: Any) -> Path:
        path = self.folder / name
        path.write_text(
            json.dumps(self.redactor.data(data), indent=2, sort_keys=True, default=str) + "\n",
            encoding="utf-8",
        )
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(self.redactor.text(text), encoding="utf-8")
        return path
