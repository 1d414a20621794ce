"""Hash chain of ledger events: hash = sha256(prev_hash || canonical_json(event))."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


# -- verification --------------------------------------------------------------------------

# What went wrong at the first bad event, in the words `gonogo audit verify` uses.
ALTERED = "altered"  # its content (or its hash) is not what the chain recorded
REMOVED = "removed"  # one or more events are missing before it
INSERTED = "inserted"  # it is not part of the chain: the next event skips over it
REORDERED = "reordered"  # it sits before the event it was chained after


@dataclass(frozen=True)
class ChainBreak:
    """The first place the chain does not hold.

    `seq` is the event to look at; for REMOVED it is the first missing seq and
    `after`/`before` are the surviving neighbours (`after` is None at the start).
    """

    problem: str
    seq: int
    detail: str
    kind: str | None = None
    ts: str | None = None
    env: str | None = None
    run_id: str | None = None
    actor: str | None = None
    after: int | None = None
    before: int | None = None

    def line(self) -> str:
        if self.problem == REMOVED:
            return f"event seq {self.seq} {self.problem}: {self.detail}"
        what = ", ".join(x for x in (self.kind, self.ts, self.run_and_env()) if x)
        return f"event seq {self.seq} ({what}) {self.problem}: {self.detail}"

    def run_and_env(self) -> str:
        parts = [f"run {self.run_id}" if self.run_id else "", self.env or ""]
        return " ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "seq": self.seq,
            "detail": self.detail,
            "kind": self.kind,
            "ts": self.ts,
            "env": self.env,
            "run_id": self.run_id,
            "actor": self.actor,
            "after": self.after,
            "before": self.before,
        }


def row_hash(row: Mapping[str, Any]) -> str:
    """The hash a stored event row should have, from its own prev_hash and content."""
    fields = hashed_fields(
        row["ts"], row["kind"], row["env"], row["run_id"], row["actor"], row["payload"]
    )
    return event_hash(row["prev_hash"], fields)


class ChainWalker:
    """Walks events in seq order and finds the first break, with one event of look-ahead.

    Only the previous, current and next events are held, so a ledger of any size is checked
    in constant memory. When the chain breaks, `find(hash)` (the event with that hash, or
    None) and `following(seq)` (the first event after seq) are asked to tell an insertion,
    a removal and a reordering apart; both are indexed look-ups in the ledger.
    """

    def __init__(
        self,
        find: Callable[[str], Mapping[str, Any] | None],
        following: Callable[[int], Mapping[str, Any] | None],
    ) -> None:
        self._find = find
        self._following = following
        self._prev: Mapping[str, Any] | None = None
        self._suspect: Mapping[str, Any] | None = None
        self.count = 0
        self.head = GENESIS
        self.broken: ChainBreak | None = None

    @property
    def expected(self) -> str:
        return self._prev["hash"] if self._prev is not None else GENESIS

    def feed(self, row: Mapping[str, Any]) -> None:
        self.count += 1
        self.head = row["hash"]
        if self.broken is not None:
            return
        if self._suspect is not None:
            self.broken = self._classify(self._suspect, row)
            self._suspect = None
            return
        if row["prev_hash"] == self.expected and row_hash(row) == row["hash"]:
            self._prev = row
            return
        # Which story fits depends on whether the next event chains past this one.
        self._suspect = row

    def finish(self) -> ChainBreak | None:
        if self.broken is None and self._suspect is not None:
            self.broken = self._classify(self._suspect, None)
            self._suspect = None
        return self.broken

    def _classify(self, row: Mapping[str, Any], nxt: Mapping[str, Any] | None) -> ChainBreak:
        prev, expected = self._prev, self.expected
        self_ok = row_hash(row) == row["hash"]
        skipped = nxt is not None and nxt["prev_hash"] == expected
        after = f"seq {prev['seq']}" if prev is not None else "the start"
        if row["prev_hash"] == expected:
            if skipped:
                assert nxt is not None
                return _at(
                    INSERTED,
                    row,
                    f"its hash is made up and seq {nxt['seq']} is chained to {after} directly",
                )
            return _at(ALTERED, row, "its content does not match its hash")
        parent = self._find(row["prev_hash"])
        if parent is not None and parent["seq"] > row["seq"]:
            return _at(
                REORDERED,
                row,
                f"it was chained after seq {parent['seq']}, which now comes after it",
            )
        if skipped:
            assert nxt is not None
            return _at(
                INSERTED,
                row,
                f"it is not part of the chain: seq {nxt['seq']} is chained to {after} directly",
            )
        if parent is not None and prev is not None and parent["seq"] < prev["seq"]:
            # Events after `parent` up to `prev` were chained in by someone else.
            first = self._following(parent["seq"]) or prev
            span = f"seq {first['seq']} was"
            if first["seq"] != prev["seq"]:
                span = f"seq {first['seq']} to {prev['seq']} were"
            return _at(
                INSERTED,
                first,
                f"seq {row['seq']} is chained to seq {parent['seq']}, so {span} put in between",
            )
        if not self_ok:
            return _at(ALTERED, row, "its content and its link to the previous event changed")
        start = prev["seq"] + 1 if prev is not None else 1
        if row["seq"] > start:
            gap = str(start) if start == row["seq"] - 1 else f"{start} to {row['seq'] - 1}"
            return ChainBreak(
                problem=REMOVED,
                seq=start,
                detail=(
                    f"seq {gap} missing between seq {prev['seq']} and seq {row['seq']}"
                    if prev is not None
                    else f"seq {gap} missing before seq {row['seq']}, the first left"
                ),
                after=prev["seq"] if prev is not None else None,
                before=row["seq"],
            )
        if prev is None:
            return ChainBreak(
                problem=REMOVED,
                seq=row["seq"],
                detail=(
                    f"seq {row['seq']} is chained to an event that is gone (events before it "
                    "were removed and the rest renumbered)"
                ),
                before=row["seq"],
            )
        if nxt is not None and nxt["prev_hash"] != row["hash"]:
            return _at(ALTERED, row, "it was rewritten with a new hash")
        return _at(
            ALTERED,
            prev,
            f"it was rewritten with a new hash: seq {row['seq']} is chained to the original "
            "(or an event after it was removed and the rest renumbered)",
        )


def _at(problem: str, row: Mapping[str, Any], detail: str) -> ChainBreak:
    return ChainBreak(
        problem=problem,
        seq=row["seq"],
        detail=detail,
        kind=row["kind"],
        ts=row["ts"],
        env=row["env"],
        run_id=row["run_id"],
        actor=row["actor"],
    )
