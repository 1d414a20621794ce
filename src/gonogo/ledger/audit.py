"""`gonogo audit verify`: the hash chain, and every table against the events recording it.

The chain proves the events were not altered, removed, inserted or reordered (except at
the very end, which a chain cannot know about without an outside copy of its head). The
tables are what commands actually read (releases, locks, runs...), and someone editing
them directly leaves the events alone; so each row is replayed from its events and must
agree:

- runs: a run.started event with the same command, env, host, pid, sha, plan and actor;
  status, exit code and summary as run.finished (or lock.forced) left them;
- steps: step.started with the same description; a finished step's status and detail
  as its step.finished;
- artifacts: artifact.created with the same sha and kind;
- releases: release.created with the same run, sha, artifact, description and variable
  names; state replayed through release.* events; verified_at set iff release.verified;
- migrations and approvals: one migration.* / migration.approved event per row, same
  fields (matched as multisets, their rows have no key in the events);
- env_locks: a lock row iff the env's last lock event is lock.acquired, same holder.

Every event that should have a row must have one, so deleting a row is found too.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from gonogo.ledger import chain
from gonogo.ledger.schema import approvals, artifacts, env_locks, migrations, releases, runs, steps

if TYPE_CHECKING:
    from gonogo.ledger.store import Ledger

# How many disagreements a report lists; the count is always exact.
MAX_LISTED = 50

_MIGRATION_KINDS = {
    "migration.applied",
    "migration.failed",
    "migration.downgraded",
    "migration.downgrade_failed",
}
_LOCK_KINDS = {"lock.acquired", "lock.released", "lock.forced"}
# Payload fields of migration.* / migration.approved events, in the order the rows' columns
# are compared (see `_Replay.compare`).
_MIGRATION_FIELDS = ("from", "to", "status", "sql_sha256")
_APPROVAL_FIELDS = ("from", "to", "sql_sha256", "by", "note")


@dataclass(frozen=True)
class Mismatch:
    """A table row and the events recording it disagree."""

    table: str
    key: str
    problem: str
    seq: int | None = None

    def line(self) -> str:
        return f"{self.table} {self.key}: {self.problem}"

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "key": self.key, "problem": self.problem, "seq": self.seq}


@dataclass
class AuditReport:
    location: str
    events: int
    head: str
    chain: chain.ChainBreak | None
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.chain is None and not self.mismatches

    def message(self) -> str:
        """One line: intact, or the first thing that is not."""
        if self.chain is not None:
            return f"ledger {self.location} is broken: {self.chain.line()}"
        if self.mismatches:
            more = len(self.mismatches) - 1
            return (
                f"ledger {self.location}: the chain is intact but a row disagrees with its "
                f"events: {self.mismatches[0].line()}" + (f" (and {more} more)" if more else "")
            )
        return (
            f"ledger {self.location} is intact: {self.events} events, head "
            f"{self.head[:12]}, every row agrees with its events"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "location": self.location,
            "events": self.events,
            "head": self.head,
            "chain": self.chain.to_dict() if self.chain else None,
            "mismatch_count": len(self.mismatches),
            "mismatches": [m.to_dict() for m in self.mismatches[:MAX_LISTED]],
        }


def audit(ledger: Ledger) -> AuditReport:
    walker = chain.ChainWalker(ledger.event_by_hash, ledger.event_after)
    replay = _Replay()
    for row in ledger.iter_events():
        walker.feed(row)
        replay.feed(row)
    broken = walker.finish()
    with ledger.engine.connect() as conn:
        tables = {
            name: [dict(r._mapping) for r in conn.execute(select(table))]
            for name, table in (
                ("runs", runs),
                ("steps", steps),
                ("artifacts", artifacts),
                ("releases", releases),
                ("migrations", migrations),
                ("approvals", approvals),
                ("env_locks", env_locks),
            )
        }
    return AuditReport(
        location=ledger.location,
        events=walker.count,
        head=walker.head,
        chain=broken,
        mismatches=replay.compare(tables),
    )


def _canon(value: Any) -> str:
    return chain.canonical_json(value)


def _payload(row: Mapping[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(row["payload"])
    except (TypeError, ValueError):
        return {}  # only a tampered row has this; the chain names it
    return value if isinstance(value, dict) else {}


@dataclass
class _Run:
    seq: int
    env: str | None
    actor: str
    payload: dict[str, Any]
    status: str = "running"
    exit_code: int | None = None
    summary: str | None = None
    finished_seq: int | None = None
    via: str = "run.started"


@dataclass
class _Release:
    seq: int
    run_id: str | None
    payload: dict[str, Any]
    state: str
    state_seq: int
    verified_seq: int | None = None


class _Replay:
    """What the tables should hold, rebuilt from the events one at a time."""

    def __init__(self) -> None:
        self.runs: dict[str, _Run] = {}
        self.extra: list[Mismatch] = []
        self.steps_started: dict[tuple[str, int, str], list[tuple[int, Any]]] = defaultdict(list)
        self.steps_finished: dict[tuple[str, int, str], list[tuple[int, str, str]]] = defaultdict(
            list
        )
        self.artifacts: dict[str, tuple[int, Any, Any]] = {}
        self.releases: dict[tuple[str, int], _Release] = {}
        self.live: dict[str, int] = {}
        self.migrations: Counter[tuple[Any, ...]] = Counter()
        self.migration_seqs: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        self.approvals: Counter[tuple[Any, ...]] = Counter()
        self.approval_seqs: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        self.locks: dict[str, tuple[int, str, str | None, dict[str, Any]]] = {}

    def feed(self, row: Mapping[str, Any]) -> None:
        kind, seq, env, run_id = row["kind"], row["seq"], row["env"], row["run_id"]
        if not isinstance(kind, str):
            return
        body = _payload(row)
        if kind == "run.started" and run_id is not None:
            if run_id in self.runs:
                self.extra.append(
                    Mismatch("runs", f"run {run_id}", f"started twice (event seq {seq})", seq)
                )
            self.runs[run_id] = _Run(seq, env, row["actor"], body)
        elif kind == "run.finished" and run_id in self.runs:
            run = self.runs[run_id]
            run.status, run.exit_code = body.get("status", "?"), body.get("exit_code")
            run.summary, run.finished_seq, run.via = body.get("summary"), seq, kind
        elif kind in _LOCK_KINDS and env is not None:
            if kind == "lock.forced" and run_id in self.runs:
                run = self.runs[run_id]
                if run.status == "running":
                    # force_unlock marks a run that never finished on its own interrupted.
                    run.status, run.finished_seq, run.via = "interrupted", seq, kind
            self.locks[env] = (seq, kind, run_id, body)
        elif kind.startswith("step.") and run_id is not None:
            step: tuple[Any, ...] = (run_id, body.get("idx"), body.get("name"))
            if kind == "step.started":
                self.steps_started[step].append((seq, body.get("description")))
            elif kind == "step.finished":
                status, detail = str(body.get("status")), _canon(body.get("detail"))
                self.steps_finished[step].append((seq, status, detail))
        elif kind == "artifact.created" and "digest" in body:
            self.artifacts[body["digest"]] = (seq, body.get("sha"), body.get("kind"))
        elif kind.startswith("release.") and env is not None:
            self._release(kind, seq, env, run_id, body)
        elif kind in _MIGRATION_KINDS:
            mig = (env, run_id, *(body.get(f) for f in _MIGRATION_FIELDS))
            self.migrations[mig] += 1
            self.migration_seqs[mig].append(seq)
        elif kind == "migration.approved":
            approval = (env, run_id, *(body.get(f) for f in _APPROVAL_FIELDS))
            self.approvals[approval] += 1
            self.approval_seqs[approval].append(seq)

    def _release(
        self, kind: str, seq: int, env: str, run_id: str | None, body: dict[str, Any]
    ) -> None:
        version = body.get("version")
        if not isinstance(version, int):
            return
        key = (env, version)
        if kind == "release.created":
            state = str(body.get("state", "pending"))  # events before "state" was recorded
            self.releases[key] = _Release(seq, run_id, body, state, seq)
            if state == "live":
                self.live[env] = version
            return
        rel = self.releases.get(key)
        if rel is None:
            self.extra.append(
                Mismatch(
                    "releases",
                    f"{env} v{version}",
                    f"event seq {seq} ({kind}) is about a release never created",
                    seq,
                )
            )
            return
        if kind == "release.verified" and "reason" not in body:
            rel.verified_seq = seq
        elif kind == "release.live" and "reason" not in body:
            # set_live: the env's previous live release retires.
            old = self.live.get(env)
            if old is not None and old != version and (env, old) in self.releases:
                gone = self.releases[(env, old)]
                if gone.state == "live":
                    gone.state, gone.state_seq = "retired", seq
            rel.state, rel.state_seq = "live", seq
            self.live[env] = version
        else:
            rel.state, rel.state_seq = kind.removeprefix("release."), seq
            if rel.state == "live":
                self.live[env] = version

    # -- comparing -------------------------------------------------------------------------

    def compare(self, tables: Mapping[str, list[dict[str, Any]]]) -> list[Mismatch]:
        out = list(self.extra)
        out += self._runs(tables["runs"])
        out += self._steps(tables["steps"])
        out += self._artifacts(tables["artifacts"])
        out += self._releases(tables["releases"])
        out += _multiset(
            "migrations",
            tables["migrations"],
            lambda r: (
                r["env"],
                r["run_id"],
                r["from_revision"],
                r["to_revision"],
                r["status"],
                r["sql_sha256"],
            ),
            lambda r: (
                f"id {r['id']} ({r['env']} {r['from_revision']} -> {r['to_revision']} "
                f"{r['status']})"
            ),
            self.migrations,
            self.migration_seqs,
        )
        out += _multiset(
            "approvals",
            tables["approvals"],
            lambda r: (
                r["env"],
                r["run_id"],
                r["from_revision"],
                r["to_revision"],
                r["sql_sha256"],
                r["approved_by"],
                r["note"],
            ),
            lambda r: f"id {r['id']} ({r['env']} {r['from_revision']} -> {r['to_revision']})",
            self.approvals,
            self.approval_seqs,
        )
        out += self._locks(tables["env_locks"])
        return out

    def _runs(self, rows: list[dict[str, Any]]) -> Iterable[Mismatch]:
        seen = set()
        for row in rows:
            key = f"run {row['id']}"
            seen.add(row["id"])
            rec = self.runs.get(row["id"])
            if rec is None:
                yield Mismatch("runs", key, "no run.started event records it")
                continue
            wanted = {
                "command": rec.payload.get("command"),
                "host": rec.payload.get("host"),
                "pid": rec.payload.get("pid"),
                "sha": rec.payload.get("sha"),
                "env": rec.env,
                "actor": rec.actor,
            }
            yield from _differs("runs", key, row, wanted, rec.seq)
            if _canon(row["plan"]) != _canon(rec.payload.get("plan")):
                yield Mismatch("runs", key, f"plan differs from event seq {rec.seq}", rec.seq)
            at = rec.finished_seq or rec.seq
            if row["status"] != rec.status:
                yield Mismatch(
                    "runs",
                    key,
                    f"status is {row['status']!r} but event seq {at} ({rec.via}) left it "
                    f"{rec.status!r}",
                    at,
                )
            elif rec.via == "run.finished":
                yield from _differs(
                    "runs", key, row, {"exit_code": rec.exit_code, "summary": rec.summary}, at
                )
        for run_id, rec in self.runs.items():
            if run_id not in seen:
                yield Mismatch(
                    "runs", f"run {run_id}", f"row missing: event seq {rec.seq} records it", rec.seq
                )

    def _steps(self, rows: list[dict[str, Any]]) -> Iterable[Mismatch]:
        started = {k: list(v) for k, v in self.steps_started.items()}
        finished = {k: list(v) for k, v in self.steps_finished.items()}
        for row in sorted(rows, key=lambda r: int(r["id"])):
            ident = (row["run_id"], row["idx"], row["name"])
            key = f"id {row['id']} (run {row['run_id']} step {row['idx']} {row['name']})"
            begun = started.get(ident) or []
            if not begun:
                yield Mismatch("steps", key, "no step.started event records it")
                continue
            seq, description = begun.pop(0)
            if row["description"] != description:
                yield Mismatch("steps", key, f"description differs from event seq {seq}", seq)
            ends = finished.get(ident) or []
            if row["status"] == "running":
                continue
            if not ends:
                yield Mismatch(
                    "steps", key, f"status is {row['status']!r} but no step.finished records it"
                )
                continue
            end_seq, status, detail = ends.pop(0)
            if row["status"] != status:
                yield Mismatch(
                    "steps",
                    key,
                    f"status is {row['status']!r} but event seq {end_seq} says {status!r}",
                    end_seq,
                )
            elif _canon(row["detail"]) != detail:
                yield Mismatch("steps", key, f"detail differs from event seq {end_seq}", end_seq)
        for (run_id, idx, name), left in started.items():
            for seq, _ in left:
                yield Mismatch(
                    "steps",
                    f"run {run_id} step {idx} {name}",
                    f"row missing: event seq {seq} records it",
                    seq,
                )

    def _artifacts(self, rows: list[dict[str, Any]]) -> Iterable[Mismatch]:
        seen = set()
        for row in rows:
            seen.add(row["digest"])
            rec = self.artifacts.get(row["digest"])
            if rec is None:
                yield Mismatch("artifacts", row["digest"], "no artifact.created event records it")
                continue
            seq, sha, kind = rec
            yield from _differs("artifacts", row["digest"], row, {"sha": sha, "kind": kind}, seq)
        for digest, (seq, _, _) in self.artifacts.items():
            if digest not in seen:
                yield Mismatch("artifacts", digest, f"row missing: event seq {seq} records it", seq)

    def _releases(self, rows: list[dict[str, Any]]) -> Iterable[Mismatch]:
        seen = set()
        for row in rows:
            ident = (row["env"], row["version"])
            key = f"{row['env']} v{row['version']}"
            seen.add(ident)
            rec = self.releases.get(ident)
            if rec is None:
                yield Mismatch("releases", key, "no release.created event records it")
                continue
            body = rec.payload
            wanted = {
                "run_id": rec.run_id,
                "sha": body.get("sha"),
                "artifact": body.get("artifact"),
                "description": body.get("description"),
            }
            yield from _differs("releases", key, row, wanted, rec.seq)
            names = sorted(row["vars"] or {}) if isinstance(row["vars"], dict) else None
            if names != body.get("vars"):
                yield Mismatch(
                    "releases", key, f"variable names differ from event seq {rec.seq}", rec.seq
                )
            if row["state"] != rec.state:
                yield Mismatch(
                    "releases",
                    key,
                    f"state is {row['state']!r} but the events leave it {rec.state!r} "
                    f"(last changed at seq {rec.state_seq})",
                    rec.state_seq,
                )
            if (row["verified_at"] is not None) != (rec.verified_seq is not None):
                yield Mismatch(
                    "releases",
                    key,
                    "marked verified but no release.verified event records it"
                    if rec.verified_seq is None
                    else f"not marked verified but event seq {rec.verified_seq} verified it",
                    rec.verified_seq,
                )
        for (env, version), rec in self.releases.items():
            if (env, version) not in seen:
                yield Mismatch(
                    "releases",
                    f"{env} v{version}",
                    f"row missing: event seq {rec.seq} records it",
                    rec.seq,
                )

    def _locks(self, rows: list[dict[str, Any]]) -> Iterable[Mismatch]:
        held = {row["env"]: row for row in rows}
        for env in sorted(set(held) | set(self.locks)):
            row = held.get(env)
            last = self.locks.get(env)
            if row is not None and (last is None or last[1] != "lock.acquired"):
                yield Mismatch(
                    "env_locks",
                    env,
                    "held by run {} but no lock.acquired event is the last word on it".format(
                        row["run_id"]
                    ),
                    last[0] if last else None,
                )
            elif row is None and last is not None and last[1] == "lock.acquired":
                yield Mismatch(
                    "env_locks",
                    env,
                    f"row missing: event seq {last[0]} locked it and nothing released it",
                    last[0],
                )
            elif row is not None and last is not None:
                seq, _, run_id, body = last
                wanted = {
                    "run_id": run_id,
                    "holder": body.get("holder"),
                    "pid": body.get("pid"),
                    "host": body.get("host"),
                }
                yield from _differs("env_locks", env, row, wanted, seq)


def _differs(
    table: str, key: str, row: Mapping[str, Any], wanted: Mapping[str, Any], seq: int
) -> Iterable[Mismatch]:
    for name, value in wanted.items():
        if row[name] != value:
            yield Mismatch(
                table,
                key,
                f"{name} is {row[name]!r} but event seq {seq} says {value!r}",
                seq,
            )


def _multiset(
    table: str,
    rows: list[dict[str, Any]],
    ident: Any,
    label: Any,
    recorded: Counter[tuple[Any, ...]],
    seqs: Mapping[tuple[Any, ...], list[int]],
) -> Iterable[Mismatch]:
    left = Counter(recorded)
    for row in sorted(rows, key=lambda r: int(r["id"])):
        key = ident(row)
        if left[key] > 0:
            left[key] -= 1
            continue
        yield Mismatch(table, label(row), "no event records it (or it was edited)")
    for key, count in left.items():
        for seq in seqs[key][len(seqs[key]) - count :]:
            yield Mismatch(table, f"env {key[0]}", f"row missing: event seq {seq} records it", seq)
