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

import gc
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gonogo.ledger import chain
from gonogo.ledger.reader import ReadSpec, Snapshot, open_snapshot
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


# The tables, in the order a report lists their disagreements; each is replayed from its
# own events, independently of the others.
TABLES = ("runs", "steps", "artifacts", "releases", "migrations", "approvals", "env_locks")
# The events each table is replayed from (exact kinds, and kind prefixes).
_TABLE_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "runs": (("run.started", "run.finished", "lock.forced"), ()),
    "steps": (("step.started", "step.finished"), ()),
    "artifacts": (("artifact.created",), ()),
    "releases": ((), ("release.",)),
    "migrations": (tuple(sorted(_MIGRATION_KINDS)), ()),
    "approvals": (("migration.approved",), ()),
    "env_locks": (tuple(sorted(_LOCK_KINDS)), ()),
}

# From this many events on (and with a CPU to spare) a second process checks the chain
# and replays these tables while this one replays the others: about even halves of the
# work (a ledger's step events and rows are the largest share).
PARALLEL_FROM = 100_000
OTHER_PROCESS_TABLES = frozenset({"runs"})

_Part = dict[str, list[Mismatch]]  # disagreements by table, and "extra" (by event seq)


def audit(ledger: Ledger, *, parallel: bool | None = None) -> AuditReport:
    """The chain and the replay in one pass over the events, then each table streamed past
    the replay; all in one consistent snapshot of the ledger.

    `parallel`: split the work with a second process (None: when the ledger is large and
    this machine has more than one CPU). If that process cannot start or fails, its share
    is done here: the report is the same either way.
    """
    from gonogo.ledger.store import database_errors, reading_failed

    try:
        return _audit(ledger, parallel)
    except database_errors() as exc:
        raise reading_failed(ledger, exc) from None


def _audit(ledger: Ledger, parallel: bool | None) -> AuditReport:
    with _no_cycle_collector(), ledger.snapshot() as snap:
        last = snap.last_seq()
        if parallel is None:
            parallel = (last or 0) >= PARALLEL_FROM and _spare_cpu()
        helper = _OtherProcess.start(ledger, snap, last, OTHER_PROCESS_TABLES) if parallel else None
        if helper is None:
            count, head, broken, part = check(snap, last, frozenset(TABLES))
            parts = [part]
        else:
            try:
                mine = frozenset(TABLES) - OTHER_PROCESS_TABLES
                parts = [replay_only(snap, last, mine)]
                answer = helper.result()
            finally:
                helper.stop()
            if answer is None:  # it failed: its share is done here after all
                count, head, broken, part = check(snap, last, OTHER_PROCESS_TABLES)
            else:
                (count, head, broken, part), saw = answer
                if saw != last:
                    # A SQLite ledger was written to between the two snapshots: the events
                    # were read up to the same seq, but its tables may have moved on.
                    # (PostgreSQL shares the snapshot itself.) Replay them here instead.
                    part = replay_only(snap, last, OTHER_PROCESS_TABLES)
            parts.append(part)
    return AuditReport(
        location=ledger.location,
        events=count,
        head=head,
        chain=broken,
        mismatches=_merge(parts),
    )


def check(
    snap: Snapshot, upto: int | None, tables: frozenset[str]
) -> tuple[int, str, chain.ChainBreak | None, _Part]:
    """The chain, and `tables` replayed and compared, in one pass over the events."""
    walker = chain.ChainWalker(snap.event_by_hash, snap.event_after)
    replay = _Replay(tables)
    for rows in snap.event_batches(upto=upto):
        walker.feed_many(rows)
        replay.feed_many(rows)
    broken = walker.finish()
    return walker.count, walker.head, broken, replay.compare(snap)


def replay_only(snap: Snapshot, upto: int | None, tables: frozenset[str]) -> _Part:
    """`tables` replayed and compared, reading only the events they are replayed from."""
    replay = _Replay(tables)
    exact = sorted({k for t in tables for k in _TABLE_KINDS[t][0]})
    prefixes = sorted({p for t in tables for p in _TABLE_KINDS[t][1]})
    for rows in snap.replay_batches(upto=upto, kinds=exact, prefixes=prefixes):
        replay.feed_many(rows)
    return replay.compare(snap)


def _merge(parts: list[_Part]) -> list[Mismatch]:
    """The parts' disagreements in report order: those found while replaying (by event
    seq), then table by table."""
    extra = sorted((m for part in parts for m in part.get("extra", [])), key=_by_seq)
    out = list(extra)
    for table in TABLES:
        for part in parts:
            out += part.get(table, [])
    return out


def _by_seq(mismatch: Mismatch) -> int:
    return mismatch.seq if mismatch.seq is not None else 0


def _spare_cpu() -> bool:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus > 1


@contextmanager
def _no_cycle_collector() -> Iterator[None]:
    """Keep Python's cycle collector out of the way while a big ledger is read.

    The replay builds hundreds of thousands of small objects that live until the end, and
    each collection would walk all of them again (a third of the time of a large audit).
    Nothing here makes reference cycles, so reference counting frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- the second process ----------------------------------------------------------------------

_Outcome = tuple[int, str, chain.ChainBreak | None, _Part]


class _OtherProcess:
    """`python -c ...other_process_main()`: the chain and some tables of one snapshot.

    The ledger's address goes through a pipe (a PostgreSQL URL may hold a password) and the
    answer comes back as one JSON line. A new interpreter rather than a fork: no connection,
    lock or thread of this process is shared with it, on any platform.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    @classmethod
    def start(
        cls, ledger: Ledger, snap: Snapshot, last: int | None, tables: frozenset[str]
    ) -> _OtherProcess | None:
        spec = ledger.read_spec(upto=last, snapshot=snap.export())
        if spec is None:
            return None
        import gonogo

        home = str(Path(gonogo.__file__).resolve().parents[1])
        code = (
            f"import sys; sys.path.insert(0, {home!r}); "
            "from gonogo.ledger.audit import other_process_main; other_process_main()"
        )
        request = {"spec": spec.to_dict(), "tables": sorted(tables)}
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except (OSError, ValueError):
            return None
        helper = cls(proc)
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(request).encode())
            proc.stdin.close()
        except OSError:  # it died at once
            helper.stop()
            return None
        return helper

    def result(self) -> tuple[_Outcome, int | None] | None:
        """What the other process found, and the last seq its own snapshot had; None if it
        could not tell."""
        try:
            assert self.proc.stdout is not None
            out = self.proc.stdout.read()
            self.proc.wait()
        finally:
            self.stop()
        try:
            answer = json.loads(out.decode().strip().splitlines()[-1])
            if self.proc.returncode != 0 or "error" in answer:
                return None
            broken = answer["chain"]
            part = {
                table: [Mismatch(**m) for m in found]
                for table, found in answer["mismatches"].items()
            }
            outcome = (
                int(answer["events"]),
                str(answer["head"]),
                chain.ChainBreak(**broken) if broken is not None else None,
                part,
            )
            return outcome, answer["last"]
        except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __del__(self) -> None:
        self.stop()


def other_process_main() -> None:
    """The second process of a parallel audit: read the request, check, answer."""
    try:
        request = json.loads(sys.stdin.buffer.read())
        spec = ReadSpec(**request["spec"])
        gc.disable()  # as `_no_cycle_collector`
        snap = open_snapshot(spec)
        try:
            last = snap.last_seq()
            count, head, broken, part = check(snap, spec.upto, frozenset(request["tables"]))
        finally:
            snap.raw.close()
        answer: dict[str, Any] = {
            "last": last,
            "events": count,
            "head": head,
            "chain": broken.to_dict() if broken is not None else None,
            "mismatches": {t: [m.to_dict() for m in found] for t, found in part.items()},
        }
    except Exception as exc:  # the first process does this share itself instead
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


# -- replaying -------------------------------------------------------------------------------


def _canon(value: Any) -> str:
    """Canonical JSON of a value read from the ledger (decoded JSON, or a column's value)."""
    return chain.canonical_json_of_data(value)


def _payload(text: Any) -> dict[str, Any]:
    if text == "{}":
        return {}
    try:
        value = chain.loads(text)
    except (TypeError, ValueError):
        return {}  # only a tampered row has this; the chain names it
    return value if isinstance(value, dict) else {}


def _hashable(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """`key` with any part that cannot be a dict key (a list, an object) replaced by a
    stand-in no table row can equal."""
    out = []
    for part in key:
        try:
            hash(part)
        except TypeError:
            part = ("unhashable", _canon(part))
        out.append(part)
    return tuple(out)


def _same_json(stored: Any, payload_text: str, body_key: str, body: Mapping[str, Any]) -> bool:
    """Whether `stored` (a row's JSON column) has the same canonical JSON as the event's
    `body_key`, where `payload_text` is the event's payload and `body` the rest of it.

    Canonical JSON tells 1, 1.0 and true apart where == does not. The event's payload is
    stored canonical, so the row's value put in its place must give back that very text;
    only if it does not (a real difference, or a payload not written by gonogo) are both
    sides serialised to be sure.
    """
    if _canon({**body, body_key: stored}) == payload_text:
        return True
    return _canon(stored) == _canon(_payload(payload_text).get(body_key))


def _step_finished_text(detail: Any, idx: Any, name: Any, status: str) -> str | None:
    """The payload `Ledger.step_finished` writes for a step row, spelled out by hand (the
    canonical JSON of {"detail", "idx", "name", "status"}, keys sorted); None when a value
    is not of the plain type that spelling needs (then `_same_json` decides)."""
    if type(idx) is not int or type(name) is not str or type(status) is not str:
        return None
    return (
        f'{{"detail":{_canon(detail)},"idx":{idx},"name":{encode_basestring(name)},'
        f'"status":{encode_basestring(status)}}}'
    )


@dataclass
class _Run:
    seq: int
    env: str | None
    actor: str
    payload: dict[str, Any]  # of its run.started, but for the plan
    payload_text: str
    status: str = "running"
    exit_code: int | None = None
    summary: str | None = None
    finished_seq: int | None = None
    via: str = "run.started"


@dataclass
class _Release:
    seq: int
    run_id: str | None
    sha: Any
    artifact: Any
    description: Any
    vars: Any
    state: str
    state_seq: int
    verified_seq: int | None = None


# What the replay does with each event kind (anything else only counts for the chain).
# Step events first: `feed_many` tests `<= _STEP_FINISHED`.
_STEP_STARTED, _STEP_FINISHED, _RUN_STARTED, _RUN_FINISHED, _LOCK = range(5)
_ARTIFACT, _MIGRATION, _APPROVAL = range(5, 8)
_KINDS = {
    "step.started": _STEP_STARTED,
    "step.finished": _STEP_FINISHED,
    "run.started": _RUN_STARTED,
    "run.finished": _RUN_FINISHED,
    **dict.fromkeys(_LOCK_KINDS, _LOCK),
    "artifact.created": _ARTIFACT,
    **dict.fromkeys(_MIGRATION_KINDS, _MIGRATION),
    "migration.approved": _APPROVAL,
}


class _Replay:
    """What `tables` should hold, rebuilt from the events one at a time.

    Only what a row is compared with is kept (a run's payload text for its plan, a
    finished step's payload text for its detail), so memory grows with the rows, never
    with events no row mirrors. `compare` consumes it: call it once.
    """

    def __init__(self, tables: frozenset[str] = frozenset(TABLES)) -> None:
        self.tables = tables
        wanted = {k for t in tables for k in _TABLE_KINDS[t][0]}
        self.kinds = {k: v for k, v in _KINDS.items() if k in wanted}
        self.replays_releases = "releases" in tables
        self.runs: dict[str, _Run] = {}
        self.extra: list[Mismatch] = []
        # (run_id, idx, name) -> [step.started (seq, description)s, step.finished
        # (seq, status, payload text)s, how many of each rows have taken]
        self.steps: dict[tuple[Any, ...], list[Any]] = {}
        self.artifacts: dict[Any, tuple[int, Any, Any]] = {}
        self.releases: dict[tuple[str, int], _Release] = {}
        self.live: dict[str, int] = {}
        self.migrations: Counter[tuple[Any, ...]] = Counter()
        self.migration_seqs: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        self.approvals: Counter[tuple[Any, ...]] = Counter()
        self.approval_seqs: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        self.locks: dict[str, tuple[int, str, str | None, dict[str, Any]]] = {}

    def feed(self, row: chain.EventRow) -> None:
        self.feed_many((row,))

    def feed_many(self, rows: Iterable[chain.EventRow]) -> None:
        """Replay events, in seq order: tuples whose first columns are
        `chain.REPLAY_COLUMNS` (the rest, if any, are ignored).

        The loop every event takes; step events (half of any ledger) are handled inline.
        """
        kinds = self.kinds
        releases = self.replays_releases
        steps = self.steps
        for row in rows:
            what = kinds.get(row[1])  # its kind; most events of a ledger end here
            if what is None:
                kind = row[1]
                if (
                    releases
                    and type(kind) is str
                    and kind.startswith("release.")
                    and row[2] is not None
                ):
                    seq, kind, env, run_id, _actor, text = row[:6]
                    self._release(kind, seq, env, run_id, _payload(text))
                continue
            seq, kind, env, run_id, actor, text = row[:6]
            if what <= _STEP_FINISHED:
                if run_id is None:
                    continue
                body = _payload(text)
                key = (run_id, body.get("idx"), body.get("name"))
                try:
                    log = steps.get(key)
                except TypeError:  # an idx or name no gonogo wrote (a list, say)
                    key = _hashable(key)
                    log = steps.get(key)
                if log is None:
                    log = steps[key] = [[], [], 0, 0]
                if what == _STEP_STARTED:
                    log[0].append((seq, body.get("description")))
                else:
                    log[1].append((seq, str(body.get("status")), text))
            elif what == _RUN_STARTED:
                if run_id is not None:
                    self._run_started(seq, env, run_id, actor, text)
            elif what == _RUN_FINISHED:
                run = self.runs.get(run_id)
                if run is not None:
                    body = _payload(text)
                    run.status, run.exit_code = body.get("status", "?"), body.get("exit_code")
                    run.summary, run.finished_seq, run.via = body.get("summary"), seq, kind
            elif what == _LOCK:
                if env is not None:
                    if kind == "lock.forced" and run_id in self.runs:
                        run = self.runs[run_id]
                        if run.status == "running":
                            # force_unlock marks a run that never finished on its own
                            # interrupted.
                            run.status, run.finished_seq, run.via = "interrupted", seq, kind
                    self.locks[env] = (seq, kind, run_id, _payload(text))
            elif what == _ARTIFACT:
                body = _payload(text)
                if "digest" in body:
                    (digest,) = _hashable((body["digest"],))
                    self.artifacts[digest] = (seq, body.get("sha"), body.get("kind"))
            elif what == _MIGRATION:
                body = _payload(text)
                mig = _hashable((env, run_id, *(body.get(f) for f in _MIGRATION_FIELDS)))
                self.migrations[mig] += 1
                self.migration_seqs[mig].append(seq)
            else:  # _APPROVAL
                body = _payload(text)
                approval = _hashable((env, run_id, *(body.get(f) for f in _APPROVAL_FIELDS)))
                self.approvals[approval] += 1
                self.approval_seqs[approval].append(seq)

    def _run_started(self, seq: int, env: str | None, run_id: str, actor: str, text: str) -> None:
        if run_id in self.runs:
            self.extra.append(
                Mismatch("runs", f"run {run_id}", f"started twice (event seq {seq})", seq)
            )
        body = _payload(text)
        body.pop("plan", None)
        self.runs[run_id] = _Run(seq, env, actor, body, text)

    def _release(
        self, kind: str, seq: int, env: str, run_id: str | None, body: dict[str, Any]
    ) -> None:
        version = body.get("version")
        if not isinstance(version, int):
            return
        key = (env, version)
        if kind == "release.created":
            state = str(body.get("state", "pending"))  # events before "state" was recorded
            self.releases[key] = _Release(
                seq,
                run_id,
                body.get("sha"),
                body.get("artifact"),
                body.get("description"),
                body.get("vars"),
                state,
                seq,
            )
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

    def compare(self, snap: Snapshot) -> _Part:
        """Each of its tables streamed past what the events say it should hold."""
        part: _Part = {"extra": list(self.extra)}
        tables = self.tables
        if "runs" in tables:
            part["runs"] = list(self._runs(snap.rows(runs)))
        if "steps" in tables:
            part["steps"] = list(self._steps(snap.rows(steps, order_by="id")))
        if "artifacts" in tables:
            part["artifacts"] = list(self._artifacts(snap.rows(artifacts)))
        if "releases" in tables:
            part["releases"] = list(self._releases(snap.rows(releases)))
        if "migrations" in tables:
            part["migrations"] = list(
                _multiset(
                    "migrations",
                    snap.rows(migrations, order_by="id"),
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
            )
        if "approvals" in tables:
            part["approvals"] = list(
                _multiset(
                    "approvals",
                    snap.rows(approvals, order_by="id"),
                    lambda r: (
                        r["env"],
                        r["run_id"],
                        r["from_revision"],
                        r["to_revision"],
                        r["sql_sha256"],
                        r["approved_by"],
                        r["note"],
                    ),
                    lambda r: (
                        f"id {r['id']} ({r['env']} {r['from_revision']} -> {r['to_revision']})"
                    ),
                    self.approvals,
                    self.approval_seqs,
                )
            )
        if "env_locks" in tables:
            part["env_locks"] = list(self._locks(snap.rows(env_locks)))
        return part

    def _runs(self, rows: Iterable[dict[str, Any]]) -> Iterable[Mismatch]:
        seen = set()
        for row in rows:
            seen.add(row["id"])
            rec = self.runs.get(row["id"])
            key = f"run {row['id']}"
            if rec is None:
                yield Mismatch("runs", key, "no run.started event records it")
                continue
            said = rec.payload
            if (
                row["command"] != said.get("command")
                or row["host"] != said.get("host")
                or row["pid"] != said.get("pid")
                or row["sha"] != said.get("sha")
                or row["env"] != rec.env
                or row["actor"] != rec.actor
            ):
                wanted = {
                    "command": said.get("command"),
                    "host": said.get("host"),
                    "pid": said.get("pid"),
                    "sha": said.get("sha"),
                    "env": rec.env,
                    "actor": rec.actor,
                }
                yield from _differs("runs", key, row, wanted, rec.seq)
            if not _same_json(row["plan"], rec.payload_text, "plan", rec.payload):
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
            elif rec.via == "run.finished" and (
                row["exit_code"] != rec.exit_code or row["summary"] != rec.summary
            ):
                yield from _differs(
                    "runs", key, row, {"exit_code": rec.exit_code, "summary": rec.summary}, at
                )
        for run_id, rec in self.runs.items():
            if run_id not in seen:
                yield Mismatch(
                    "runs", f"run {run_id}", f"row missing: event seq {rec.seq} records it", rec.seq
                )

    def _steps(self, rows: Iterable[dict[str, Any]]) -> Iterable[Mismatch]:
        # Each row takes the next step.started (and step.finished) of its run, idx and name,
        # in id order.
        steps = self.steps
        for row in rows:  # in id order
            idx, name = row["idx"], row["name"]
            log = steps.get((row["run_id"], idx, name))
            if log is None or log[2] >= len(log[0]):
                yield Mismatch("steps", _step_key(row), "no step.started event records it")
                continue
            seq, description = log[0][log[2]]
            log[2] += 1
            if row["description"] != description:
                yield Mismatch(
                    "steps", _step_key(row), f"description differs from event seq {seq}", seq
                )
            status = row["status"]
            if status == "running":
                continue
            if log[3] >= len(log[1]):
                yield Mismatch(
                    "steps",
                    _step_key(row),
                    f"status is {status!r} but no step.finished records it",
                )
                continue
            end_seq, said, text = log[1][log[3]]
            log[3] += 1
            if status != said:
                yield Mismatch(
                    "steps",
                    _step_key(row),
                    f"status is {status!r} but event seq {end_seq} says {said!r}",
                    end_seq,
                )
            elif text != _step_finished_text(row["detail"], idx, name, said) and not _same_json(
                row["detail"], text, "detail", {"idx": idx, "name": name, "status": said}
            ):
                yield Mismatch(
                    "steps", _step_key(row), f"detail differs from event seq {end_seq}", end_seq
                )
        for (run_id, idx, name), (begun, _, taken, _) in steps.items():
            for seq, _ in begun[taken:]:
                yield Mismatch(
                    "steps",
                    f"run {run_id} step {idx} {name}",
                    f"row missing: event seq {seq} records it",
                    seq,
                )

    def _artifacts(self, rows: Iterable[dict[str, Any]]) -> Iterable[Mismatch]:
        seen = set()
        for row in rows:
            seen.add(row["digest"])
            rec = self.artifacts.get(row["digest"])
            if rec is None:
                yield Mismatch("artifacts", row["digest"], "no artifact.created event records it")
                continue
            seq, sha, kind = rec
            if row["sha"] != sha or row["kind"] != kind:
                yield from _differs(
                    "artifacts", row["digest"], row, {"sha": sha, "kind": kind}, seq
                )
        for digest, (seq, _, _) in self.artifacts.items():
            if digest not in seen:
                yield Mismatch("artifacts", digest, f"row missing: event seq {seq} records it", seq)

    def _releases(self, rows: Iterable[dict[str, Any]]) -> Iterable[Mismatch]:
        seen = set()
        for row in rows:
            ident = (row["env"], row["version"])
            key = f"{row['env']} v{row['version']}"
            seen.add(ident)
            rec = self.releases.get(ident)
            if rec is None:
                yield Mismatch("releases", key, "no release.created event records it")
                continue
            if (
                row["run_id"] != rec.run_id
                or row["sha"] != rec.sha
                or row["artifact"] != rec.artifact
                or row["description"] != rec.description
            ):
                wanted = {
                    "run_id": rec.run_id,
                    "sha": rec.sha,
                    "artifact": rec.artifact,
                    "description": rec.description,
                }
                yield from _differs("releases", key, row, wanted, rec.seq)
            names = sorted(row["vars"] or {}) if isinstance(row["vars"], dict) else None
            if names != rec.vars:
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

    def _locks(self, rows: Iterable[dict[str, Any]]) -> Iterable[Mismatch]:
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


def _step_key(row: Mapping[str, Any]) -> str:
    return f"id {row['id']} (run {row['run_id']} step {row['idx']} {row['name']})"


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
    rows: Iterable[dict[str, Any]],
    ident: Any,
    label: Any,
    recorded: Counter[tuple[Any, ...]],
    seqs: Mapping[tuple[Any, ...], list[int]],
) -> Iterable[Mismatch]:
    left = Counter(recorded)
    for row in rows:  # in id order
        key = ident(row)
        if left[key] > 0:
            left[key] -= 1
            continue
        yield Mismatch(table, label(row), "no event records it (or it was edited)")
    for key, count in left.items():
        for seq in seqs[key][len(seqs[key]) - count :]:
            yield Mismatch(table, f"env {key[0]}", f"row missing: event seq {seq} records it", seq)
