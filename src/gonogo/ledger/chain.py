"""Hash chain of ledger events: hash = sha256(prev_hash || canonical_json(event))."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(canonical_json(dict(event)).encode("utf-8"))
    return digest.hexdigest()


def hashed_fields(
    ts: str, kind: str, env: str | None, run_id: str | None, actor: str, payload: str
) -> dict[str, Any]:
    """The exact fields covered by an event's hash (payload is already canonical JSON)."""
    return {
        "ts": ts,
        "kind": kind,
        "env": env,
        "run_id": run_id,
        "actor": actor,
        "payload": payload,
    }
