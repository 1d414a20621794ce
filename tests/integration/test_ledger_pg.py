"""A team's ledger on a real PostgreSQL server (and the same checks on a real SQLite file).

Tampering edits, deletes, inserts and reorders rows directly in the database and expects
the audit to name the row; many processes append at once and the chain stays whole with
no event lost; machines with different host names contend for one environment lock.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from gonogo.ledger import Ledger, ReleaseRow, chain
from gonogo.ledger.audit import AuditReport
from gonogo.ledger.lock import Heartbeat
from gonogo.ledger.store import LockRow, now_iso
from gonogo.migrations.alembic import normalise_url

pytestmark = pytest.mark.integration

ACTOR = "tester"
SRC = Path(__file__).resolve().parents[2] / "src"


class Backend:
    """One ledger database, opened by gonogo or edited around it with plain SQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ledgers: list[Ledger] = []
        self._raw: Engine | None = None

    @property
    def postgres(self) -> bool:
        return self.url.startswith("postgresql")

    def open(self, **kwargs: float) -> Ledger:
        led = Ledger.open(self.url, Path("unused"), **kwargs)
        self.ledgers.append(led)
        return led

    def sql(self, *statements: str, **params: object) -> None:
        if self._raw is None:
            self._raw = create_engine(normalise_url(self.url))
        with self._raw.begin() as conn:
            for statement in statements:
                conn.execute(text(statement), params)

    def close(self) -> None:
        for led in self.ledgers:
            led.close()
        if self._raw is not None:
            self._raw.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = (
        request.getfixturevalue("pg_url")
        if request.param == "postgresql"
        else f"sqlite:///{tmp_path / 'ledger.db'}"
    )
    made = Backend(url)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def pg(pg_url: str) -> Iterator[Backend]:
    made = Backend(pg_url)
    try:
        yield made
    finally:
        made.close()


def lock_row(run_id: str, host: str, env: str = "staging") -> LockRow:
    ts = now_iso()
    return LockRow(env, run_id, "deploy", f"holder-of-{run_id}", host, os.getpid(), ts, ts)


def a_deploy(led: Ledger, run_id: str = "r1", host: str = "runner-a") -> None:
    """What a deploy writes: run, lock, steps, release, live, verified, unlock, finish."""
    led.start_run(run_id, command="deploy", env="staging", actor=ACTOR, host=host, pid=1)
    assert led.try_lock(lock_row(run_id, host), actor=ACTOR) is None
    step = led.step_started(run_id, 1, "build", "build the artifact", actor=ACTOR)
    led.step_finished(step, status="ok", detail={"digest": "sha256:abc"}, actor=ACTOR)
    version = led.next_release_version("staging")
    led.add_release(
        ReleaseRow(
            "staging", version, run_id, "a" * 40, "sha256:x", {"K": "v"}, "pending",
            f"v{version}", now_iso(), None, None,
        ),
        actor=ACTOR,
    )  # fmt: skip
    led.set_live("staging", version, actor=ACTOR, run_id=run_id)
    led.mark_verified("staging", version, actor=ACTOR, run_id=run_id)
    assert led.release_lock("staging", run_id, actor=ACTOR)
    led.finish_run(run_id, status="succeeded", exit_code=0, summary="done", actor=ACTOR)


def audited(led: Ledger) -> AuditReport:
    """The audit in one process and split across two (the second reading the same
    snapshot): the very same report."""
    alone = led.audit(parallel=False)
    split = led.audit(parallel=True)
    assert split.to_dict() == alone.to_dict()
    assert [m.line() for m in split.mismatches] == [m.line() for m in alone.mismatches]
    return alone


def test_the_second_process_reads_the_snapshot_of_the_first(backend: Backend) -> None:
    """Events appended while an audit runs are in neither process's view of the ledger."""
    from gonogo.ledger.audit import _OtherProcess

    led = backend.open()
    a_deploy(led)
    head = led.events()[-1]["hash"]
    with led.snapshot() as snap:
        last = snap.last_seq()
        helper = _OtherProcess.start(led, snap, last, frozenset({"runs"}))
        assert helper is not None
        a_deploy(backend.open(), "r2")  # commits while the audit's snapshot is open
        answer = helper.result()
    assert answer is not None, "the second process failed"
    (count, seen_head, broken, part), saw = answer
    assert (count, seen_head, broken) == (9, head, None)
    if backend.postgres:  # the very same snapshot
        assert saw == last and part == {"extra": [], "runs": []}
    else:  # the events up to the same seq; the tables as they are now, so not used
        assert saw == last + 9


def test_an_audit_while_a_deploy_writes_reports_one_consistent_view(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gonogo.ledger import audit as audit_module

    led = backend.open()
    a_deploy(led)
    start = audit_module._OtherProcess.start.__func__  # type: ignore[attr-defined]

    def start_then_write(cls: type, *args: object) -> object:
        a_deploy(backend.open(), "r2")  # between this process's snapshot and the other's
        return start(cls, *args)

    monkeypatch.setattr(audit_module._OtherProcess, "start", classmethod(start_then_write))
    report = led.audit(parallel=True)
    assert report.intact, report.message()
    assert report.events == 9  # as of the audit's snapshot: r2 came after it
    monkeypatch.undo()
    assert audited(led).events == 18


# -- tampering -----------------------------------------------------------------------------------


def test_intact_ledger_audits_clean(backend: Backend) -> None:
    led = backend.open()
    a_deploy(led)
    a_deploy(led, "r2", host="runner-b")
    report = audited(led)
    assert report.intact, report.message()
    assert report.events == 18
    assert led.verify_chain() == (True, None, "intact")


def test_edited_payload_is_named_as_altered(backend: Backend) -> None:
    led = backend.open()
    a_deploy(led)
    victim = led.events()[4]
    backend.sql(
        "UPDATE events SET payload = :p WHERE seq = :s", p='{"version":99}', s=victim["seq"]
    )
    report = audited(led)
    assert report.chain is not None
    assert (report.chain.problem, report.chain.seq) == ("altered", victim["seq"])
    assert report.chain.kind == "release.created"
    assert report.message().startswith(
        f"ledger {led.location} is broken: event seq {victim['seq']} (release.created, "
    )


def test_deleted_event_is_named_as_removed_with_its_gap(backend: Backend) -> None:
    led = backend.open()
    a_deploy(led)
    seqs = [e["seq"] for e in led.events()]
    backend.sql("DELETE FROM events WHERE seq = :s", s=seqs[5])
    report = audited(led)
    assert report.chain is not None
    assert (report.chain.problem, report.chain.seq) == ("removed", seqs[5])
    assert (report.chain.after, report.chain.before) == (seqs[4], seqs[6])
    assert report.chain.line() == (
        f"event seq {seqs[5]} removed: seq {seqs[5]} missing between seq {seqs[4]} and "
        f"seq {seqs[6]}"
    )


def test_forged_event_with_a_valid_hash_is_named_as_inserted(backend: Backend) -> None:
    led = backend.open()
    a_deploy(led)
    before = led.events()[3]
    ts = now_iso()
    body = '{"reason":"cover"}'
    fields = chain.hashed_fields(ts, "lock.forced", "staging", None, "mallory", body)
    digest = chain.event_hash(before["hash"], fields)
    # Make room after `before` (negating first: a primary key cannot pass through itself).
    backend.sql(
        "UPDATE events SET seq = -seq WHERE seq > :s",
        "UPDATE events SET seq = -seq + 1 WHERE seq < 0",
        "INSERT INTO events (seq, ts, kind, env, run_id, actor, payload, prev_hash, hash) "
        "VALUES (:n, :ts, 'lock.forced', 'staging', NULL, 'mallory', :body, :prev, :h)",
        s=before["seq"],
        n=before["seq"] + 1,
        ts=ts,
        body=body,
        prev=before["hash"],
        h=digest,
    )
    report = audited(led)
    assert report.chain is not None
    assert (report.chain.problem, report.chain.seq) == ("inserted", before["seq"] + 1)
    assert report.chain.actor == "mallory"


def test_swapped_events_are_named_as_reordered(backend: Backend) -> None:
    led = backend.open()
    a_deploy(led)
    events = led.events()
    a, b = events[6]["seq"], events[7]["seq"]
    backend.sql(
        "UPDATE events SET seq = -1 WHERE seq = :a",
        "UPDATE events SET seq = :a WHERE seq = :b",
        "UPDATE events SET seq = :b WHERE seq = -1",
        a=a,
        b=b,
    )
    report = audited(led)
    assert report.chain is not None
    assert (report.chain.problem, report.chain.seq) == ("reordered", a)
    assert report.chain.kind == events[7]["kind"]


def test_edited_release_row_is_named_though_the_chain_holds(backend: Backend) -> None:
    led = backend.open()
    a_deploy(led)
    backend.sql("UPDATE releases SET artifact = 'sha256:evil' WHERE env = 'staging'")
    report = audited(led)
    assert report.chain is None
    assert not report.intact
    assert "releases staging v1: artifact is 'sha256:evil' but event seq" in report.message()


def test_cut_off_tail_is_named_through_the_rows_it_left(backend: Backend) -> None:
    led = backend.open()
    a_deploy(led)
    last = led.events()[-1]
    backend.sql("DELETE FROM events WHERE seq = :s", s=last["seq"])
    report = audited(led)
    assert report.chain is None
    assert "runs run r1: status is 'succeeded'" in report.message()


# -- many writers --------------------------------------------------------------------------------

APPENDER = """
import sys, time
from pathlib import Path
from gonogo.ledger import Ledger

url, writer, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
led = Ledger.open(url, Path("unused"))
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:  # start together
    time.sleep(0.005)
for i in range(count):
    led.record("tick", actor=writer, payload={"writer": writer, "i": i})
    if i % 10 == 0:
        run = f"{writer}-{i}"
        led.start_run(run, command="deploy", env="staging", actor=writer, host=writer, pid=1)
        led.finish_run(run, status="succeeded", exit_code=0, summary="ok", actor=writer)
led.close()
"""


def run_appenders(url: str, tmp_path: Path, writers: int, each: int) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, url, f"w{n}", str(each), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(writers)
    ]
    time.sleep(0.3)  # let them all connect before they start
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err


def assert_whole(led: Ledger, writers: int, each: int, *, interleaved: bool = True) -> None:
    events = led.events()
    ticks = [e for e in events if e["kind"] == "tick"]
    runs_each = len(range(0, each, 10))
    assert len(ticks) == writers * each
    assert len(events) == writers * (each + 2 * runs_each)
    assert {(e["actor"], e["payload"]) for e in ticks} == {
        (f"w{n}", chain.canonical_json({"writer": f"w{n}", "i": i}))
        for n in range(writers)
        for i in range(each)
    }
    assert events[0]["prev_hash"] == chain.GENESIS
    for before, after in itertools.pairwise(events):
        assert after["seq"] > before["seq"]
        assert after["prev_hash"] == before["hash"]
    report = led.audit()
    assert report.intact, report.message()
    if interleaved:
        # Writers really interleaved: one ledger, not eight queues one after another.
        # (Not asserted on SQLite: its busy handler backs off, so one writer may take the
        # lock many times in a row; the chain must hold either way.)
        switches = sum(1 for x, y in itertools.pairwise(ticks) if x["actor"] != y["actor"])
        assert switches > writers


def test_eight_processes_appending_to_one_postgres_ledger_keep_one_chain(
    pg: Backend, tmp_path: Path
) -> None:
    pg.open().close()  # schema first, so every writer measures appends only
    run_appenders(pg.url, tmp_path, writers=8, each=50)
    assert_whole(pg.open(), writers=8, each=50)


def test_processes_appending_to_one_sqlite_ledger_keep_one_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    run_appenders(url, tmp_path, writers=4, each=25)
    led = Ledger.open(url, Path("unused"))
    try:
        assert_whole(led, writers=4, each=25, interleaved=False)
    finally:
        led.close()


# -- locks across machines -----------------------------------------------------------------------


def contend(machines: dict[str, Ledger], rnd: int) -> dict[str, LockRow | None]:
    """Every machine asks for the staging lock at the same moment; what each got back."""
    results: dict[str, LockRow | None] = {}
    barrier = threading.Barrier(len(machines))

    def grab(host: str, led: Ledger) -> None:
        barrier.wait(timeout=10)
        results[host] = led.try_lock(lock_row(f"{host}-{rnd}", host), actor=host)

    threads = [threading.Thread(target=grab, args=item) for item in machines.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_two_machines_contending_for_one_lock_have_one_winner_each_round(pg: Backend) -> None:
    machines = {"runner-a": pg.open(), "runner-b": pg.open()}
    for rnd in range(15):
        results = contend(machines, rnd)
        winners = [host for host, held in results.items() if held is None]
        assert len(winners) == 1, results
        loser = next(h for h in machines if h != winners[0])
        held = results[loser]
        assert held is not None
        assert (held.host, held.run_id) == (winners[0], f"{winners[0]}-{rnd}")
        assert machines[winners[0]].release_lock("staging", held.run_id, actor=winners[0])
    events = machines["runner-a"].events()
    assert [e["kind"] for e in events] == ["lock.acquired", "lock.released"] * 15
    assert machines["runner-b"].audit().intact


LOCKER = """
import sys, time, os
from pathlib import Path
from gonogo.ledger import Ledger
from gonogo.ledger.store import LockRow, now_iso

url, host, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
led = Ledger.open(url, Path("unused"))
deadline = time.monotonic() + 30
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.002)
ts = now_iso()
held = led.try_lock(LockRow("production", host, "deploy", host, host, os.getpid(), ts, ts),
                    actor=host)
print("won" if held is None else f"lost to {held.host}")
led.close()
"""


def test_processes_on_eight_machines_racing_for_one_lock_have_one_winner(
    pg: Backend, tmp_path: Path
) -> None:
    pg.open().close()
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOCKER, pg.url, f"runner-{n}", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(8)
    ]
    time.sleep(0.3)
    go.touch()
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outs.append(out.strip())
    assert outs.count("won") == 1, outs
    winner = f"runner-{outs.index('won')}"
    assert all(o in ("won", f"lost to {winner}") for o in outs), outs
    led = pg.open()
    holder = led.lock_holder("production")
    assert holder is not None and holder.host == winner
    assert [e["kind"] for e in led.events()] == ["lock.acquired"]


def test_a_dead_machine_shows_as_stale_by_its_heartbeat(pg: Backend) -> None:
    a = pg.open(stale_after=60)
    b = pg.open(stale_after=60)
    a.start_run("r1", command="deploy", env="staging", actor=ACTOR, host="runner-a", pid=1)
    assert a.try_lock(lock_row("r1", "runner-a"), actor=ACTOR) is None
    held = b.lock_holder("staging")
    assert held is not None
    # The heartbeat is on the server's clock, which is what staleness is judged by.
    assert abs((b.now() - held_beat(held)).total_seconds()) < 5
    assert b.lock_staleness(held, "runner-b") is None

    # runner-a dies: nothing beats for three minutes.
    past = (b.now() - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    pg.sql("UPDATE env_locks SET heartbeat_at = :t", t=past)
    held = b.lock_holder("staging")
    assert held is not None
    reason = b.lock_staleness(held, "runner-b")
    assert reason is not None and reason.startswith("no heartbeat from runner-a for 3m0")
    assert reason.endswith("(stale after 60s)")
    # runner-b's own staleness rule does not apply to runner-a's view of itself (pid rule).
    assert held.stale_reason("runner-a") is None

    # It was only slow after all: one beat makes it live again.
    assert a.heartbeat("staging", "r1") is True
    fresh = b.lock_holder("staging")
    assert fresh is not None and b.lock_staleness(fresh, "runner-b") is None


def held_beat(held: LockRow) -> datetime:
    from gonogo.ledger.lock import parse_ts

    return parse_ts(held.heartbeat_at)


def test_heartbeat_thread_keeps_a_long_step_live_and_learns_of_a_forced_unlock(
    pg: Backend,
) -> None:
    a = pg.open(stale_after=0.6)
    b = pg.open(stale_after=0.6)
    a.start_run("r1", command="deploy", env="staging", actor=ACTOR, host="runner-a", pid=1)
    assert a.try_lock(lock_row("r1", "runner-a"), actor=ACTOR) is None
    with Heartbeat(a, "staging", "r1", every=0.1) as beat:
        time.sleep(1.0)  # a step longer than stale_after
        held = b.lock_holder("staging")
        assert held is not None
        assert b.lock_staleness(held, "runner-b") is None
        assert beat.beats >= 3
        b.force_unlock("staging", actor="runner-b", reason="runner-a unreachable")
        deadline = time.monotonic() + 5
        while not beat.lost and time.monotonic() < deadline:
            time.sleep(0.02)
        assert beat.lost
    assert a.run("r1").status == "interrupted"  # type: ignore[union-attr]
    assert b.audit().intact
    # Without beats the lock would have looked dead: the same wait, no thread.
    assert a.try_lock(lock_row("r2", "runner-a"), actor=ACTOR) is None
    time.sleep(0.8)
    held = b.lock_holder("staging")
    assert held is not None and b.lock_staleness(held, "runner-b") is not None
