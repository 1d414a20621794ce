"""Hash chain of ledger events: hash = sha256(prev_hash || canonical_json(event))."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from json import encoder as _json_encoder
from json.encoder import encode_basestring
from typing import Any

GENESIS = "0" * 64

# An event row as the ledger reads it in bulk: a tuple of these columns, in this order.
# The first six are all the table replay of `audit verify` needs (REPLAY_COLUMNS).
EVENT_COLUMNS = ("seq", "kind", "env", "run_id", "actor", "payload", "ts", "prev_hash", "hash")
REPLAY_COLUMNS = EVENT_COLUMNS[:6]
EventRow = tuple[Any, ...]
SEQ, KIND, ENV, RUN_ID, ACTOR, PAYLOAD, TS, PREV_HASH, HASH = range(len(EVENT_COLUMNS))
assert (KIND, ENV, RUN_ID, ACTOR, PAYLOAD, TS, PREV_HASH, HASH) == (1, 2, 3, 4, 5, 6, 7, 8)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# json.dumps builds an encoder per call; for values that came out of JSON (no cycles, only
# dict, list, str, int, float, bool and None) one prebuilt C encoder with the same settings
# gives the same text in about half the time.
def _prebuilt_encoder() -> Any:
    make: Any = getattr(_json_encoder, "c_make_encoder", None)
    try:
        encode = make(None, str, encode_basestring, None, ":", ",", True, False, True)
        probe = {"b": [1, 1.5, True, None, 'é"\n'], "a": {}}
        if "".join(encode(probe, 0)) == canonical_json(probe):
            return encode
    except TypeError:  # no C accelerator, or one that takes other arguments
        pass
    return None


_CANONICAL = _prebuilt_encoder()


def canonical_json_of_data(value: Any) -> str:
    """`canonical_json(value)` for a value decoded from JSON (faster; same text)."""
    if _CANONICAL is None:
        return canonical_json(value)
    return "".join(_CANONICAL(value, 0))


_scan_once: Any = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009 (untyped)


def loads(text: Any) -> Any:
    """`json.loads(text)`: the same value, or the same error, without its per-call overhead
    for the usual case of a document with nothing around it."""
    if type(text) is str:
        try:
            value, end = _scan_once(text, 0)
        except (StopIteration, ValueError):
            pass
        else:
            if end == len(text):
                return value
    return json.loads(text)


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """The reference definition of an event's hash; `fields_hash` is the fast equivalent."""
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


# canonical_json of hashed_fields(...) with its keys already sorted; every value is a JSON
# string (or null for env and run_id), escaped by the function json.dumps itself uses for
# strings when ensure_ascii=False, so the bytes are the same as the reference's.
_HASHED = '%s{"actor":%s,"env":%s,"kind":%s,"payload":%s,"run_id":%s,"ts":%s}'
_sha256 = hashlib.sha256


def fields_hash(
    prev_hash: Any, ts: Any, kind: Any, env: Any, run_id: Any, actor: Any, payload: Any
) -> str:
    """`event_hash(prev_hash, hashed_fields(...))`, the same hex digest, without building,
    sorting and serialising a dict per event (several times faster; what appends and
    `audit verify` use).

    Values that are not str (None for env/run_id aside), which only a tampered row or a
    misuse can hold, go through the reference function, so every input hashes exactly as
    it does there (or fails as it does there).
    """
    if (
        type(ts) is str
        and type(kind) is str
        and type(actor) is str
        and type(payload) is str
        and type(prev_hash) is str
        and (env is None or type(env) is str)
        and (run_id is None or type(run_id) is str)
        and prev_hash.isascii()
    ):
        text = _HASHED % (
            prev_hash,
            encode_basestring(actor),
            "null" if env is None else encode_basestring(env),
            encode_basestring(kind),
            encode_basestring(payload),
            "null" if run_id is None else encode_basestring(run_id),
            encode_basestring(ts),
        )
        try:
            return _sha256(text.encode("utf-8")).hexdigest()
        except UnicodeEncodeError:
            pass  # a lone surrogate: let the reference raise exactly what it raises
    return event_hash(prev_hash, hashed_fields(ts, kind, env, run_id, actor, payload))


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
    return fields_hash(
        row["prev_hash"],
        row["ts"],
        row["kind"],
        row["env"],
        row["run_id"],
        row["actor"],
        row["payload"],
    )


def holds(row: EventRow) -> bool:
    """Whether a stored event's hash is the hash of its own prev_hash and content.

    False, not an exception, for a row no gonogo could have written (a prev_hash that is
    not text, say): verify names it instead of crashing.
    """
    try:
        digest = fields_hash(
            row[PREV_HASH], row[TS], row[KIND], row[ENV], row[RUN_ID], row[ACTOR], row[PAYLOAD]
        )
    except (UnicodeError, AttributeError, TypeError, ValueError):
        return False
    return bool(digest == row[HASH])


def as_dict(row: EventRow) -> dict[str, Any]:
    """An event row as a dict, its keys in the table's column order."""
    return {
        "seq": row[SEQ],
        "ts": row[TS],
        "kind": row[KIND],
        "env": row[ENV],
        "run_id": row[RUN_ID],
        "actor": row[ACTOR],
        "payload": row[PAYLOAD],
        "prev_hash": row[PREV_HASH],
        "hash": row[HASH],
    }


class ChainWalker:
    """Walks events in seq order and finds the first break, with one event of look-ahead.

    Rows are tuples in EVENT_COLUMNS order. Only the previous, current and next events are
    held, so a ledger of any size is checked in constant memory. When the chain breaks,
    `find(hash)` (the event with that hash, or None) and `following(seq)` (the first event
    after seq) are asked to tell an insertion, a removal and a reordering apart; both are
    indexed look-ups in the ledger.
    """

    def __init__(
        self,
        find: Callable[[str], Mapping[str, Any] | None],
        following: Callable[[int], Mapping[str, Any] | None],
    ) -> None:
        self._find = find
        self._following = following
        self._prev: EventRow | None = None
        self._suspect: EventRow | None = None
        # The first break and the event after it: named by `finish`, once the events have
        # been read (the look-ups it may need cannot run while they stream).
        self._found: tuple[EventRow, EventRow | None] | None = None
        self.count = 0
        self.head = GENESIS
        self.broken: ChainBreak | None = None

    @property
    def stopped(self) -> bool:
        """Whether the chain breaks somewhere in what was fed (`finish` says where)."""
        return self._found is not None

    @property
    def expected(self) -> str:
        return str(self._prev[HASH]) if self._prev is not None else GENESIS

    def feed(self, row: EventRow) -> None:
        self.count += 1
        self.head = row[HASH]
        if self._found is not None:
            return
        if self._suspect is not None:
            self._found = (self._suspect, row)
            self._suspect = None
            return
        if row[PREV_HASH] == self.expected and holds(row):
            self._prev = row
            return
        # Which story fits depends on whether the next event chains past this one.
        self._suspect = row

    def feed_many(self, rows: Sequence[EventRow]) -> None:
        """`feed` each row; the loop every event of an intact ledger takes, kept tight."""
        if self._found is not None or self._suspect is not None or not rows:
            for row in rows:
                self.feed(row)
            return
        expected = self.expected
        prev = self._prev
        done = 0
        for row in rows:
            prev_hash = row[7]  # literal indices: EVENT_COLUMNS, this loop is hot
            if prev_hash != expected:
                break
            try:
                digest = _sha256(
                    (
                        _HASHED
                        % (
                            prev_hash,
                            encode_basestring(row[4]),
                            "null" if row[2] is None else encode_basestring(row[2]),
                            encode_basestring(row[1]),
                            encode_basestring(row[5]),
                            "null" if row[3] is None else encode_basestring(row[3]),
                            encode_basestring(row[6]),
                        )
                    ).encode("utf-8")
                ).hexdigest()
            except (TypeError, UnicodeError):
                break  # not plain text: `feed` sorts it out
            if digest != row[8]:
                break
            expected = digest
            prev = row
            done += 1
        self._prev = prev
        self.count += done
        if done:
            self.head = prev[HASH]  # type: ignore[index]
        for row in rows[done:]:
            self.feed(row)

    def finish(self) -> ChainBreak | None:
        """The first break, named (None: the chain holds); call once every event is fed."""
        if self._found is None and self._suspect is not None:
            self._found = (self._suspect, None)
            self._suspect = None
        if self.broken is None and self._found is not None:
            suspect, nxt = self._found
            self.broken = self._classify(
                as_dict(suspect), as_dict(nxt) if nxt is not None else None
            )
        return self.broken

    def _classify(self, row: Mapping[str, Any], nxt: Mapping[str, Any] | None) -> ChainBreak:
        prev = as_dict(self._prev) if self._prev is not None else None
        expected = self.expected
        self_ok = holds(tuple(row[c] for c in EVENT_COLUMNS))
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
