"""The ledger on a real SQLite file: hash chain, tampering, concurrency, locks, releases."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from gonogo.errors import GonogoError
from gonogo.ledger import Ledger, ReleaseRow, chain
from gonogo.ledger.audit import AuditReport
from gonogo.ledger.store import ApprovalRow, LockRow, MigrationRow, NewEvent, now_iso

ACTOR = "tester"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(db_path: Path) -> Iterator[Ledger]:
    led = Ledger.open(None, db_path)
    try:
        yield led
    finally:
        led.close()


def start(led: Ledger, run_id: str, env: str | None = "staging", command: str = "deploy") -> None:
    led.start_run(run_id, command=command, env=env, actor=ACTOR, host="h", pid=os.getpid())


def lock_row(run_id: str, env: str = "staging", pid: int | None = None) -> LockRow:
    ts = now_iso()
    return LockRow(
        env=env,
        run_id=run_id,
        command="deploy",
        holder=f"holder-of-{run_id}",
        host=socket.gethostname(),
        pid=pid if pid is not None else os.getpid(),
        acquired_at=ts,
        heartbeat_at=ts,
    )


def release_row(
    env: str, version: int, run_id: str, sha: str, state: str = "pending"
) -> ReleaseRow:
    return ReleaseRow(
        env=env,
        version=version,
        run_id=run_id,
        sha=sha,
        artifact=f"sha256:{sha * 2}"[:71],
        vars={"NODE_ENV": env},
        state=state,
        description=f"{env} v{version}",
        created_at=now_iso(),
        verified_at=None,
        live_since=None,
    )


def several_operations(led: Ledger) -> None:
    """A realistic sequence: run, lock, steps, release, live, verified, unlock, finish."""
    start(led, "r1")
    assert led.try_lock(lock_row("r1"), actor=ACTOR) is None
    step = led.step_started("r1", 1, "build", "build the artifact", actor=ACTOR)
    led.step_finished(step, status="ok", detail={"digest": "sha256:abc"}, actor=ACTOR)
    led.add_release(release_row("staging", 1, "r1", "a" * 40), actor=ACTOR)
    led.set_live("staging", 1, actor=ACTOR, run_id="r1")
    led.mark_verified("staging", 1, actor=ACTOR, run_id="r1")
    assert led.release_lock("staging", "r1", actor=ACTOR)
    led.finish_run("r1", status="succeeded", exit_code=0, summary="done", actor=ACTOR)
    led.record("note", actor=ACTOR, payload={"text": "ünïcode ok"})


def raw(db_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(db_path, isolation_level=None)


# -- the hash chain ------------------------------------------------------------------------------


def test_chain_is_intact_after_several_operations(ledger: Ledger) -> None:
    several_operations(ledger)
    events = ledger.events()
    kinds = [e["kind"] for e in events]
    assert kinds == [
        "run.started",
        "lock.acquired",
        "step.started",
        "step.finished",
        "release.created",
        "release.live",
        "release.verified",
        "lock.released",
        "run.finished",
        "note",
    ]
    assert events[0]["prev_hash"] == chain.GENESIS
    for before, after in itertools.pairwise(events):
        assert after["prev_hash"] == before["hash"]
    assert ledger.verify_chain() == (True, None, "intact")


def test_event_hash_is_sha256_of_prev_and_canonical_fields(ledger: Ledger) -> None:
    digest = ledger.record("x", actor=ACTOR, env="staging", run_id=None, payload={"b": 1, "a": 2})
    (row,) = ledger.events()
    assert row["hash"] == digest
    assert row["payload"] == '{"a":2,"b":1}'  # canonical: sorted keys, no spaces
    fields = chain.hashed_fields(row["ts"], "x", "staging", None, ACTOR, row["payload"])
    assert chain.event_hash(chain.GENESIS, fields) == digest


def test_empty_ledger_verifies(ledger: Ledger) -> None:
    assert ledger.verify_chain() == (True, None, "intact")


def test_chain_survives_reopening_the_file(db_path: Path) -> None:
    led = Ledger.open(None, db_path)
    several_operations(led)
    led.close()
    again = Ledger.open(None, db_path)
    try:
        again.record("after.reopen", actor=ACTOR)
        assert again.verify_chain() == (True, None, "intact")
        assert len(again.events()) == 11
    finally:
        again.close()


def test_ledger_uses_wal_mode(ledger: Ledger, db_path: Path) -> None:
    ledger.record("x", actor=ACTOR)
    conn = raw(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        conn.close()


def test_tampered_payload_is_reported_at_its_seq(ledger: Ledger, db_path: Path) -> None:
    several_operations(ledger)
    seqs = [e["seq"] for e in ledger.events()]
    target = seqs[4]
    conn = raw(db_path)
    try:
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", ('{"version":99}', target))
    finally:
        conn.close()
    intact, bad, reason = ledger.verify_chain()
    assert intact is False
    assert bad == target
    assert "content" in reason


@pytest.mark.parametrize(
    "column,value",
    [
        ("actor", "mallory"),
        ("kind", "run.forged"),
        ("env", "production"),
        ("ts", "2000-01-01T00:00:00Z"),
    ],
)
def test_any_hashed_column_change_is_detected(
    ledger: Ledger, db_path: Path, column: str, value: str
) -> None:
    several_operations(ledger)
    target = ledger.events()[2]["seq"]
    conn = raw(db_path)
    try:
        conn.execute(f"UPDATE events SET {column} = ? WHERE seq = ?", (value, target))
    finally:
        conn.close()
    intact, bad, _ = ledger.verify_chain()
    assert (intact, bad) == (False, target)


def test_deleted_middle_event_is_named_with_its_gap(ledger: Ledger, db_path: Path) -> None:
    several_operations(ledger)
    seqs = [e["seq"] for e in ledger.events()]
    conn = raw(db_path)
    try:
        conn.execute("DELETE FROM events WHERE seq = ?", (seqs[3],))
    finally:
        conn.close()
    intact, bad, reason = ledger.verify_chain()
    assert intact is False
    assert bad == seqs[3]
    assert reason == f"removed: seq {seqs[3]} missing between seq {seqs[2]} and seq {seqs[4]}"


def test_forged_event_appended_with_a_made_up_hash_is_reported(
    ledger: Ledger, db_path: Path
) -> None:
    several_operations(ledger)
    last = ledger.events()[-1]
    conn = raw(db_path)
    try:
        conn.execute(
            "INSERT INTO events (ts, kind, env, run_id, actor, payload, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now_iso(),
                "lock.forced",
                "production",
                None,
                "mallory",
                '{"reason":"x"}',
                last["hash"],
                "f" * 64,
            ),
        )
        forged_seq = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
    finally:
        conn.close()
    intact, bad, reason = ledger.verify_chain()
    assert (intact, bad) == (False, forged_seq)
    assert "content" in reason


def test_forged_event_replacing_one_in_the_middle_is_named(ledger: Ledger, db_path: Path) -> None:
    """Replace event 3 by a well-formed forgery (prev_hash right, own hash right): the event
    after it still names the original's hash, so the forgery is the one reported."""
    several_operations(ledger)
    events = ledger.events()
    victim, after = events[2], events[3]
    ts = now_iso()
    body = '{"forged":true}'
    fields = chain.hashed_fields(ts, "step.started", None, "r1", "mallory", body)
    forged_hash = chain.event_hash(victim["prev_hash"], fields)
    conn = raw(db_path)
    try:
        conn.execute("DELETE FROM events WHERE seq = ?", (victim["seq"],))
        conn.execute(
            "INSERT INTO events (seq, ts, kind, env, run_id, actor, payload, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                victim["seq"],
                ts,
                "step.started",
                None,
                "r1",
                "mallory",
                body,
                victim["prev_hash"],
                forged_hash,
            ),
        )
    finally:
        conn.close()
    intact, bad, reason = ledger.verify_chain()
    assert (intact, bad) == (False, victim["seq"])
    assert reason.startswith("altered: it was rewritten with a new hash")
    assert f"seq {after['seq']} is chained to the original" in reason


def test_only_the_first_broken_event_is_named(ledger: Ledger, db_path: Path) -> None:
    several_operations(ledger)
    seqs = [e["seq"] for e in ledger.events()]
    conn = raw(db_path)
    try:
        conn.execute("UPDATE events SET actor = 'x' WHERE seq IN (?, ?)", (seqs[6], seqs[2]))
    finally:
        conn.close()
    assert ledger.verify_chain()[1] == seqs[2]


def test_two_ledgers_appending_from_threads_keep_one_chain(db_path: Path) -> None:
    first = Ledger.open(None, db_path)
    second = Ledger.open(None, db_path)
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(led: Ledger, name: str) -> None:
        try:
            barrier.wait(timeout=10)
            for i in range(50):
                led.record("tick", actor=name, payload={"i": i, "writer": name})
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(first, "one")),
        threading.Thread(target=writer, args=(second, "two")),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        events = first.events()
        assert len(events) == 100
        assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + 100))
        assert events[0]["prev_hash"] == chain.GENESIS
        for before, after in itertools.pairwise(events):
            assert after["prev_hash"] == before["hash"]
        assert len({e["hash"] for e in events}) == 100
        assert {e["actor"] for e in events} == {"one", "two"}
        assert first.verify_chain() == (True, None, "intact")
        assert second.verify_chain() == (True, None, "intact")
    finally:
        first.close()
        second.close()


# -- runs and steps ------------------------------------------------------------------------------


def test_run_and_steps_are_recorded(ledger: Ledger) -> None:
    start(ledger, "r1")
    run = ledger.run("r1")
    assert run is not None and run.status == "running" and run.finished_at is None
    sid = ledger.step_started("r1", 1, "push", "push the image", actor=ACTOR)
    ledger.step_finished(sid, status="failed", detail={"error": "boom"}, actor=ACTOR)
    ledger.finish_run("r1", status="failed", exit_code=3, summary="push failed", actor=ACTOR)
    run = ledger.run("r1")
    assert run is not None
    assert (run.status, run.exit_code, run.summary) == ("failed", 3, "push failed")
    assert run.finished_at is not None
    (step,) = ledger.steps("r1")
    assert (step["name"], step["status"], step["detail"]) == ("push", "failed", {"error": "boom"})
    assert ledger.run("nope") is None
    finished = ledger.events(run_id="r1")[-1]
    assert finished["kind"] == "run.finished"
    assert finished["env"] == "staging"


def test_runs_filter_by_env_newest_first(ledger: Ledger) -> None:
    start(ledger, "a", env="staging")
    time.sleep(0.002)
    start(ledger, "b", env="production")
    time.sleep(0.002)
    start(ledger, "c", env="staging")
    assert [r.id for r in ledger.runs("staging")] == ["c", "a"]
    assert [r.id for r in ledger.runs()] == ["c", "b", "a"]
    assert [r.id for r in ledger.runs(limit=1)] == ["c"]


# -- locks ---------------------------------------------------------------------------------------


def test_try_lock_returns_none_then_the_holder(ledger: Ledger) -> None:
    start(ledger, "r1")
    start(ledger, "r2")
    assert ledger.try_lock(lock_row("r1"), actor=ACTOR) is None
    held = ledger.try_lock(lock_row("r2"), actor=ACTOR)
    assert held is not None
    assert held.run_id == "r1"
    assert held.holder == "holder-of-r1"
    assert ledger.lock_holder("staging") == held
    # another environment is independent
    assert ledger.try_lock(lock_row("r2", env="production"), actor=ACTOR) is None
    acquired = [e for e in ledger.events() if e["kind"] == "lock.acquired"]
    assert [e["run_id"] for e in acquired] == ["r1", "r2"]
    assert ledger.verify_chain()[0]


def test_release_lock_only_by_the_holding_run(ledger: Ledger) -> None:
    assert ledger.try_lock(lock_row("r1"), actor=ACTOR) is None
    assert ledger.release_lock("staging", "r2", actor=ACTOR) is False
    assert ledger.lock_holder("staging") is not None
    assert ledger.release_lock("staging", "r1", actor=ACTOR) is True
    assert ledger.lock_holder("staging") is None
    assert ledger.release_lock("staging", "r1", actor=ACTOR) is False
    kinds = [e["kind"] for e in ledger.events()]
    assert kinds.count("lock.released") == 1
    # free again
    assert ledger.try_lock(lock_row("r3"), actor=ACTOR) is None


def test_force_unlock_records_reason_and_holder(ledger: Ledger) -> None:
    assert ledger.force_unlock("staging", actor="admin", reason="nothing held") is None
    assert ledger.try_lock(lock_row("r1", pid=4242), actor=ACTOR) is None
    held = ledger.force_unlock("staging", actor="admin", reason="holder crashed")
    assert held is not None and held.run_id == "r1"
    assert ledger.lock_holder("staging") is None
    forced = ledger.events()[-1]
    assert forced["kind"] == "lock.forced"
    assert forced["actor"] == "admin"
    assert forced["run_id"] == "r1"
    payload = json.loads(forced["payload"])
    assert payload["reason"] == "holder crashed"
    assert payload["pid"] == 4242
    assert payload["holder"] == "holder-of-r1"
    assert ledger.verify_chain()[0]


def test_heartbeat_only_touches_own_lock(ledger: Ledger) -> None:
    row = lock_row("r1")
    assert ledger.try_lock(row, actor=ACTOR) is None
    time.sleep(0.002)
    ledger.heartbeat("staging", "other")
    assert ledger.lock_holder("staging").heartbeat_at == row.heartbeat_at  # type: ignore[union-attr]
    ledger.heartbeat("staging", "r1")
    assert ledger.lock_holder("staging").heartbeat_at > row.heartbeat_at  # type: ignore[union-attr]


def test_two_ledgers_racing_for_one_lock_have_one_winner(db_path: Path) -> None:
    ledgers = [Ledger.open(None, db_path) for _ in range(4)]
    results: dict[str, object] = {}
    barrier = threading.Barrier(len(ledgers))

    def grab(led: Ledger, run_id: str) -> None:
        barrier.wait(timeout=10)
        results[run_id] = led.try_lock(lock_row(run_id), actor=ACTOR)

    threads = [threading.Thread(target=grab, args=(led, f"r{i}")) for i, led in enumerate(ledgers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        winners = [rid for rid, held in results.items() if held is None]
        assert len(results) == 4
        assert len(winners) == 1
        for rid, held in results.items():
            if rid != winners[0]:
                assert held.run_id == winners[0]  # type: ignore[attr-defined]
        assert ledgers[0].verify_chain()[0]
    finally:
        for led in ledgers:
            led.close()


# -- releases ------------------------------------------------------------------------------------


def test_next_release_version_counts_per_environment(ledger: Ledger) -> None:
    start(ledger, "r1")
    assert ledger.next_release_version("staging") == 1
    ledger.add_release(release_row("staging", 1, "r1", "a" * 40), actor=ACTOR)
    ledger.add_release(release_row("staging", 2, "r1", "b" * 40), actor=ACTOR)
    assert ledger.next_release_version("staging") == 3
    assert ledger.next_release_version("production") == 1
    assert ledger.release("staging", 2).sha == "b" * 40  # type: ignore[union-attr]
    assert ledger.release("staging", 9) is None
    assert [r.label for r in ledger.releases("staging")] == ["v2", "v1"]


def test_set_live_retires_the_previous_live_release(ledger: Ledger) -> None:
    start(ledger, "r1")
    assert ledger.live_release("staging") is None
    ledger.add_release(release_row("staging", 1, "r1", "a" * 40), actor=ACTOR)
    ledger.add_release(release_row("staging", 2, "r1", "b" * 40), actor=ACTOR)
    ledger.add_release(release_row("production", 1, "r1", "a" * 40), actor=ACTOR)
    ledger.set_live("production", 1, actor=ACTOR, run_id="r1")
    ledger.set_live("staging", 1, actor=ACTOR, run_id="r1")
    live = ledger.live_release("staging")
    assert live is not None and live.version == 1 and live.live_since is not None
    ledger.set_live("staging", 2, actor=ACTOR, run_id="r1")
    assert ledger.live_release("staging").version == 2  # type: ignore[union-attr]
    assert ledger.release("staging", 1).state == "retired"  # type: ignore[union-attr]
    # other environments are untouched
    assert ledger.live_release("production").version == 1  # type: ignore[union-attr]
    # setting the already-live version again keeps exactly one live release
    ledger.set_live("staging", 2, actor=ACTOR, run_id="r1")
    assert [r.state for r in ledger.releases("staging")] == ["live", "retired"]


def test_mark_verified_and_verified_release_of(ledger: Ledger) -> None:
    start(ledger, "r1")
    sha = "c" * 40
    ledger.add_release(release_row("staging", 1, "r1", sha), actor=ACTOR)
    ledger.add_release(release_row("staging", 2, "r1", "d" * 40), actor=ACTOR)
    ledger.add_release(release_row("staging", 3, "r1", sha), actor=ACTOR)
    assert ledger.verified_release_of("staging", sha) is None
    ledger.mark_verified("staging", 1, actor=ACTOR, run_id="r1")
    rel = ledger.verified_release_of("staging", sha)
    assert rel is not None and rel.version == 1 and rel.verified_at is not None
    ledger.mark_verified("staging", 3, actor=ACTOR, run_id="r1")
    assert ledger.verified_release_of("staging", sha).version == 3  # type: ignore[union-attr]
    ledger.mark_verified("staging", 2, actor=ACTOR, run_id="r1")
    assert ledger.verified_release_of("staging", "e" * 40) is None
    assert ledger.verified_release_of("production", sha) is None


def test_set_release_state_records_reason(ledger: Ledger) -> None:
    start(ledger, "r1")
    ledger.add_release(release_row("staging", 1, "r1", "a" * 40), actor=ACTOR)
    ledger.set_release_state("staging", 1, "failed", actor=ACTOR, run_id="r1", reason="500s")
    assert ledger.release("staging", 1).state == "failed"  # type: ignore[union-attr]
    last = ledger.events()[-1]
    assert last["kind"] == "release.failed"
    assert '"reason":"500s"' in last["payload"]


def test_release_must_belong_to_a_recorded_run(ledger: Ledger) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        ledger.add_release(release_row("staging", 1, "no-such-run", "a" * 40), actor=ACTOR)
    # the failed transaction appended no event
    assert ledger.events() == []


# -- migrations ----------------------------------------------------------------------------------


def mig(env: str, run_id: str, to: str, status: str = "ok") -> MigrationRow:
    return MigrationRow(
        env=env,
        run_id=run_id,
        from_revision=None,
        to_revision=to,
        status=status,
        applied_at=now_iso(),
    )


def test_migrations_since_filters_by_time_and_env(ledger: Ledger) -> None:
    start(ledger, "m1")
    ledger.record_migration(mig("staging", "m1", "001"), actor=ACTOR)
    time.sleep(0.002)
    cut = now_iso()
    time.sleep(0.002)
    ledger.record_migration(mig("staging", "m1", "002"), actor=ACTOR)
    ledger.record_migration(mig("staging", "m1", "003", status="failed"), actor=ACTOR)
    ledger.record_migration(mig("production", "m1", "002"), actor=ACTOR)
    everything = ledger.migrations_since("staging", None)
    assert [m.to_revision for m in everything] == ["001", "002", "003"]
    assert [m.to_revision for m in ledger.migrations_since("staging", cut)] == ["002", "003"]
    assert ledger.migrations_since("staging", now_iso()) == []
    assert [m.to_revision for m in ledger.migrations_since("production", cut)] == ["002"]
    kinds = [e["kind"] for e in ledger.events() if e["kind"].startswith("migration.")]
    assert kinds == [
        "migration.applied",
        "migration.applied",
        "migration.failed",
        "migration.applied",
    ]


def test_artifacts_are_recorded_once(ledger: Ledger) -> None:
    from gonogo.ledger.store import ArtifactRow

    art = ArtifactRow(
        digest="sha256:" + "1" * 64,
        sha="a" * 40,
        kind="tarball",
        location="/tmp/x.tar",
        size=10,
        created_at=now_iso(),
    )
    ledger.add_artifact(art, actor=ACTOR, run_id=None)
    ledger.add_artifact(art, actor=ACTOR, run_id=None)
    assert ledger.artifact(art.digest) == art
    assert ledger.artifact("sha256:none") is None
    assert [e["kind"] for e in ledger.events()] == ["artifact.created"]


# -- naming what happened to the chain -----------------------------------------------------------


def renumber_from(conn: sqlite3.Connection, seq: int, by: int) -> None:
    """Shift events seq >= `seq` up by `by`, leaving room (as an attacker would)."""
    conn.execute("UPDATE events SET seq = -seq WHERE seq >= ?", (seq,))
    conn.execute("UPDATE events SET seq = -seq + ? WHERE seq < 0", (by,))


def forged(
    prev_hash: str, *, kind: str = "lock.forced", good_hash: bool = True
) -> tuple[object, ...]:
    ts = now_iso()
    body = '{"reason":"forged"}'
    fields = chain.hashed_fields(ts, kind, "production", None, "mallory", body)
    digest = chain.event_hash(prev_hash, fields) if good_hash else "e" * 64
    return (ts, kind, "production", None, "mallory", body, prev_hash, digest)


INSERT = (
    "INSERT INTO events (seq, ts, kind, env, run_id, actor, payload, prev_hash, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@pytest.mark.parametrize("good_hash", [True, False], ids=["valid-hash", "made-up-hash"])
def test_event_inserted_in_the_middle_is_named_as_inserted(
    ledger: Ledger, db_path: Path, good_hash: bool
) -> None:
    several_operations(ledger)
    events = ledger.events()
    before = events[4]
    conn = raw(db_path)
    try:
        renumber_from(conn, before["seq"] + 1, 1)
        conn.execute(INSERT, (before["seq"] + 1, *forged(before["hash"], good_hash=good_hash)))
    finally:
        conn.close()
    intact, bad, reason = ledger.verify_chain()
    assert (intact, bad) == (False, before["seq"] + 1)
    if good_hash:
        # a well-formed forgery: the event after it still chains to the one before it
        assert reason == (
            f"inserted: seq {before['seq'] + 2} is chained to seq {before['seq']}, so seq "
            f"{before['seq'] + 1} was put in between"
        )
    else:
        assert reason == (
            f"inserted: its hash is made up and seq {before['seq'] + 2} is chained to seq "
            f"{before['seq']} directly"
        )


def test_several_events_chained_in_together_name_the_first(ledger: Ledger, db_path: Path) -> None:
    several_operations(ledger)
    events = ledger.events()
    before = events[2]
    first = forged(before["hash"])
    second = forged(first[-1], kind="release.live")
    conn = raw(db_path)
    try:
        renumber_from(conn, before["seq"] + 1, 2)
        conn.execute(INSERT, (before["seq"] + 1, *first))
        conn.execute(INSERT, (before["seq"] + 2, *second))
    finally:
        conn.close()
    intact, bad, reason = ledger.verify_chain()
    assert (intact, bad) == (False, before["seq"] + 1)
    assert reason == (
        f"inserted: seq {before['seq'] + 3} is chained to seq {before['seq']}, so seq "
        f"{before['seq'] + 1} to {before['seq'] + 2} were put in between"
    )


def test_swapped_events_are_named_as_reordered(ledger: Ledger, db_path: Path) -> None:
    several_operations(ledger)
    events = ledger.events()
    a, b = events[3]["seq"], events[4]["seq"]
    conn = raw(db_path)
    try:
        conn.execute("UPDATE events SET seq = -1 WHERE seq = ?", (a,))
        conn.execute("UPDATE events SET seq = ? WHERE seq = ?", (a, b))
        conn.execute("UPDATE events SET seq = ? WHERE seq = -1", (b,))
    finally:
        conn.close()
    intact, bad, reason = ledger.verify_chain()
    assert (intact, bad) == (False, a)
    assert reason == f"reordered: it was chained after seq {b}, which now comes after it"
    report = ledger.audit()
    assert report.chain is not None and report.chain.kind == events[4]["kind"]


def test_removed_first_events_and_a_range_are_named(ledger: Ledger, db_path: Path) -> None:
    several_operations(ledger)
    seqs = [e["seq"] for e in ledger.events()]
    conn = raw(db_path)
    try:
        conn.execute("DELETE FROM events WHERE seq IN (?, ?)", (seqs[0], seqs[1]))
    finally:
        conn.close()
    intact, bad, reason = ledger.verify_chain()
    assert (intact, bad) == (False, seqs[0])
    assert reason == (
        f"removed: seq {seqs[0]} to {seqs[1]} missing before seq {seqs[2]}, the first left"
    )


def test_edited_prev_hash_alone_is_named_as_altered(ledger: Ledger, db_path: Path) -> None:
    several_operations(ledger)
    target = ledger.events()[5]["seq"]
    conn = raw(db_path)
    try:
        conn.execute("UPDATE events SET prev_hash = ? WHERE seq = ?", ("1" * 64, target))
    finally:
        conn.close()
    intact, bad, reason = ledger.verify_chain()
    assert (intact, bad) == (False, target)
    assert reason.startswith("altered: its content and its link")


def test_break_names_the_event_kind_time_and_run(ledger: Ledger, db_path: Path) -> None:
    several_operations(ledger)
    victim = ledger.events()[4]
    conn = raw(db_path)
    try:
        conn.execute("UPDATE events SET payload = '{}' WHERE seq = ?", (victim["seq"],))
    finally:
        conn.close()
    report = ledger.audit()
    assert not report.intact
    assert report.message() == (
        f"ledger {ledger.location} is broken: event seq {victim['seq']} (release.created, "
        f"{victim['ts']}, run r1 staging) altered: its content does not match its hash"
    )


# -- rows cross-checked against their events -----------------------------------------------------


def tamper(db_path: Path, *statements: str) -> None:
    conn = raw(db_path)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def test_untouched_ledger_audits_intact(ledger: Ledger) -> None:
    several_operations(ledger)
    ledger.add_approval(
        ApprovalRow("staging", "r1", "0001", "0002", "a" * 64, "dba", "ok", now_iso()),
        actor=ACTOR,
    )
    ledger.record_migration(mig("staging", "r1", "0002"), actor=ACTOR)
    ledger.set_release_state("staging", 1, "failed", actor=ACTOR, run_id="r1", reason="x")
    start(ledger, "r2")
    assert ledger.try_lock(lock_row("r2"), actor=ACTOR) is None
    ledger.force_unlock("staging", actor="admin", reason="test")
    report = ledger.audit()
    assert report.intact, [m.line() for m in report.mismatches]
    assert report.message().startswith(f"ledger {ledger.location} is intact: ")
    assert report.events == len(ledger.events())
    assert report.head == ledger.events()[-1]["hash"]


@pytest.mark.parametrize(
    "statement,expected",
    [
        (
            "UPDATE releases SET sha = 'bad' WHERE version = 1",
            "releases staging v1: sha is 'bad' but event seq",
        ),
        ("DELETE FROM releases", "releases staging v1: row missing: event seq"),
        (
            "UPDATE releases SET state = 'pending'",
            "releases staging v1: state is 'pending' but the events leave it 'live'",
        ),
        (
            "UPDATE releases SET verified_at = NULL",
            "releases staging v1: not marked verified but event seq",
        ),
        (
            "INSERT INTO releases VALUES ('production', 7, 'r1', 'abc', 'x', '{}', 'live', 'd', "
            "'2024-01-01T00:00:00.000000Z', NULL, NULL)",
            "releases production v7: no release.created event records it",
        ),
        (
            "UPDATE runs SET status = 'failed'",
            "runs run r1: status is 'failed' but event seq",
        ),
        ("UPDATE runs SET actor = 'mallory'", "runs run r1: actor is 'mallory' but event seq"),
        ("DELETE FROM steps", "steps run r1 step 1 build: row missing: event seq"),
        ("UPDATE steps SET detail = '{}'", "detail differs from event seq"),
        (
            "INSERT INTO env_locks VALUES ('staging', 'r1', 'deploy', 'x', 'h', 1, 'a', 'b')",
            "env_locks staging: held by run r1 but no lock.acquired event is the last word",
        ),
    ],
    ids=[
        "release-edited",
        "release-deleted",
        "release-state",
        "release-unverified",
        "release-inserted",
        "run-status",
        "run-actor",
        "step-deleted",
        "step-detail",
        "lock-inserted",
    ],
)
def test_edited_deleted_or_inserted_rows_are_named(
    ledger: Ledger, db_path: Path, statement: str, expected: str
) -> None:
    several_operations(ledger)
    assert ledger.audit().intact
    tamper(db_path, statement)
    report = ledger.audit()
    assert report.chain is None  # the events are untouched: only the row tells
    assert not report.intact
    assert expected in report.message(), report.message()


def test_migration_and_approval_rows_are_matched_to_their_events(
    ledger: Ledger, db_path: Path
) -> None:
    start(ledger, "m1")
    ledger.record_migration(mig("staging", "m1", "001"), actor=ACTOR)
    ledger.record_migration(mig("staging", "m1", "001"), actor=ACTOR)  # the same, twice
    ledger.add_approval(
        ApprovalRow("staging", "m1", "000", "001", "b" * 64, "dba", "fine", now_iso()),
        actor=ACTOR,
    )
    assert ledger.audit().intact
    tamper(
        db_path,
        "UPDATE migrations SET status = 'ok', to_revision = '009' WHERE id = 2",
        "UPDATE approvals SET note = 'edited'",
    )
    lines = [m.line() for m in ledger.audit().mismatches]
    assert (
        "migrations id 2 (staging None -> 009 ok): no event records it (or it was edited)" in lines
    )
    assert any(x.startswith("migrations env staging: row missing: event seq") for x in lines)
    assert any(x.startswith("approvals id 1 (staging 000 -> 001)") for x in lines)
    assert len(lines) == 4, lines


def test_deleting_the_last_event_is_caught_by_its_row(ledger: Ledger, db_path: Path) -> None:
    """A chain cannot see its own tail cut off; the run row it finished still tells."""
    several_operations(ledger)
    last_finish = [e for e in ledger.events() if e["kind"] == "run.finished"][-1]
    tamper(db_path, f"DELETE FROM events WHERE seq >= {last_finish['seq']}")
    report = ledger.audit()
    assert report.chain is None
    assert "runs run r1: status is 'succeeded' but event seq" in report.message()


# -- locks across machines -----------------------------------------------------------------------


def test_stale_by_pid_on_this_host_and_by_heartbeat_on_another(ledger: Ledger) -> None:
    from datetime import timedelta

    here = socket.gethostname()
    mine = lock_row("r1")
    assert mine.stale_reason(here) is None
    dead = lock_row("r1", pid=2**22 + 12345)
    assert dead.stale_reason(here) == f"holder process {dead.pid} is gone"

    beat = datetime_of(mine.heartbeat_at)
    other = LockRow(**{**mine.__dict__, "host": "runner-7"})
    assert other.stale_reason(here, now=beat + timedelta(seconds=119)) is None
    assert other.stale_reason(here, now=beat + timedelta(seconds=121)) == (
        "no heartbeat from runner-7 for 2m01s (stale after 2m00s)"
    )
    assert other.stale(here, now=beat + timedelta(seconds=11), stale_after=10)
    assert not other.stale(here, now=beat - timedelta(seconds=30))  # a clock behind
    assert other.heartbeat_age(beat + timedelta(seconds=3)) == pytest.approx(3)
    # seen from runner-7 itself, its own pid decides
    assert other.stale_reason("runner-7") is None


def datetime_of(stamp: str) -> datetime:
    from gonogo.ledger.lock import parse_ts

    return parse_ts(stamp)


def test_ledger_judges_staleness_with_its_threshold(db_path: Path) -> None:
    led = Ledger.open(None, db_path, stale_after=0.2)
    try:
        start(led, "r1")
        row = LockRow(**{**lock_row("r1").__dict__, "host": "runner-9"})
        assert led.try_lock(row, actor=ACTOR) is None
        held = led.lock_holder("staging")
        assert held is not None
        assert led.lock_staleness(held, socket.gethostname()) is None
        time.sleep(0.3)
        assert "no heartbeat from runner-9" in (led.lock_staleness(held, "elsewhere") or "")
        assert led.heartbeat("staging", "r1") is True
        fresh = led.lock_holder("staging")
        assert fresh is not None and led.lock_staleness(fresh, "elsewhere") is None
    finally:
        led.close()


def test_heartbeat_says_whether_the_lock_is_still_ours(ledger: Ledger) -> None:
    assert ledger.heartbeat("staging", "r1") is False
    assert ledger.try_lock(lock_row("r1"), actor=ACTOR) is None
    assert ledger.heartbeat("staging", "r1") is True
    assert ledger.heartbeat("staging", "r2") is False
    kinds = [e["kind"] for e in ledger.events()]
    assert kinds == ["lock.acquired"]  # beats are liveness, not history


def test_heartbeat_thread_keeps_beating_and_notices_a_cleared_lock(ledger: Ledger) -> None:
    from gonogo.ledger.lock import Heartbeat

    row = lock_row("r1")
    assert ledger.try_lock(row, actor=ACTOR) is None
    with Heartbeat(ledger, "staging", "r1", every=0.05) as beat:
        deadline = time.monotonic() + 10
        while beat.beats < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert beat.beats >= 3 and not beat.lost
        held = ledger.lock_holder("staging")
        assert held is not None and held.heartbeat_at > row.heartbeat_at
        ledger.force_unlock("staging", actor="admin", reason="test")
        while not beat.lost and time.monotonic() < deadline:
            time.sleep(0.02)
        assert beat.lost
    assert not beat._thread.is_alive()


def test_heartbeat_thread_survives_a_failing_write() -> None:
    from gonogo.ledger.lock import Heartbeat

    calls: list[int] = []

    class Flaky:
        def heartbeat(self, env: str, run_id: str) -> bool:
            calls.append(1)
            if len(calls) < 3:
                raise RuntimeError("database went away")
            return True

    with Heartbeat(Flaky(), "staging", "r1", every=0.01) as beat:
        deadline = time.monotonic() + 10
        while beat.beats < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert beat.failures == 2 and beat.beats >= 2
    assert isinstance(beat.last_error, RuntimeError)


def test_context_reads_the_stale_threshold(tmp_path: Path) -> None:
    from gonogo.context import Context
    from gonogo.errors import GonogoError

    ctx = Context(
        root=tmp_path,
        config=None,  # type: ignore[arg-type]
        config_path=tmp_path / "gonogo.toml",
        environ={"GONOGO_LOCK_STALE_AFTER": "45"},
    )
    try:
        assert ctx.ledger.stale_after == 45
    finally:
        ctx.close()
    for bad in ("soon", "0", "-3", "nan"):
        ctx = Context(
            root=tmp_path,
            config=None,  # type: ignore[arg-type]
            config_path=tmp_path / "gonogo.toml",
            environ={"GONOGO_LOCK_STALE_AFTER": bad},
        )
        with pytest.raises(GonogoError, match="GONOGO_LOCK_STALE_AFTER"):
            _ = ctx.ledger


# -- opening -------------------------------------------------------------------------------------


def test_unsupported_ledger_url_is_one_line(tmp_path: Path) -> None:
    from gonogo.errors import GonogoError

    with pytest.raises(GonogoError) as err:
        Ledger.open("mysql://root:hunter2@db/ledger", tmp_path / "x.db")
    assert "hunter2" not in err.value.message
    assert "sqlite:///PATH or postgresql://" in err.value.message


def test_unreachable_postgres_ledger_is_one_line_without_its_password(tmp_path: Path) -> None:
    from gonogo.errors import GonogoError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(GonogoError) as err:
        Ledger.open(f"postgresql://team:hunter2@127.0.0.1:{port}/ledger", tmp_path / "x.db")
    message = err.value.message
    assert message.startswith(
        f"cannot open ledger postgresql://team:<redacted>@127.0.0.1:{port}/ledger: "
    )
    assert "hunter2" not in message and "\n" not in message


def test_sqlite_url_and_default_path_open_the_same_kind_of_ledger(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.db"
    led = Ledger.open(f"sqlite:///{path}", tmp_path / "unused.db")
    try:
        led.record("x", actor=ACTOR)
        assert path.is_file() and not (tmp_path / "unused.db").exists()
        assert led.location == f"sqlite:///{path}"
    finally:
        led.close()


def test_keep_alive_beats_at_a_quarter_of_the_stale_threshold(db_path: Path) -> None:
    led = Ledger.open(None, db_path, stale_after=0.4)
    try:
        assert led.try_lock(lock_row("r1"), actor=ACTOR) is None
        beat = led.keep_alive("staging", "r1")
        assert beat is not None and beat.every == pytest.approx(0.1)
        try:
            deadline = time.monotonic() + 10
            while beat.beats < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert beat.beats >= 2
        finally:
            beat.stop()
    finally:
        led.close()
    memory = Ledger.open("sqlite://", db_path)
    try:
        assert memory.keep_alive("staging", "r1") is None
    finally:
        memory.close()


# -- the fast paths of appends and `audit verify` ------------------------------------------------

TRICKY = [
    "",
    "plain",
    'quote " and backslash \\ and both \\"',
    "\\u0000 written out, and a real \x00 nul",
    "controls \x01\x07\x08\t\n\x0b\x0c\r\x1b\x1f and DEL \x7f",
    "ünïcödé, 日本語, עברית, emoji 🚀👩‍👩‍👧, combining é",
    "line separators \u2028 \u2029 and BOM \ufeff",
    "/slashes/ <html> & 'single' `back`",
    '{"already":"json","n":[1,2.5,null,true],"s":"\\"esc\\""}',
    '{ "not" : "canonical" }',
    "x" * 1_000_000,
    json.dumps({"big": ['ünï "q" \\ \n'] * 20_000}, ensure_ascii=False),
]


@pytest.mark.parametrize("text", TRICKY, ids=lambda t: repr(t[:24]))
def test_fast_hash_is_byte_for_byte_the_reference(text: str) -> None:
    prev = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    for env, run_id in [(None, None), (text, None), (None, text), ("staging", "r1")]:
        args = ("2024-01-01T00:00:00.000000Z", f"k{text[:10]}", env, run_id, text, text)
        reference = chain.event_hash(prev, chain.hashed_fields(*args))
        assert chain.fields_hash(prev, *args) == reference
        # and what `audit verify` does to every event of an intact ledger
        seq = 7
        row = (seq, args[1], env, run_id, text, text, args[0], prev, reference)
        walker = chain.ChainWalker(lambda _h: None, lambda _s: None)
        walker._prev = (6, "", None, None, "", "", "", "", prev)  # the event before it
        walker.feed_many([row])
        assert walker.finish() is None and walker.count == 1 and walker.head == reference


def test_fast_hash_agrees_with_the_reference_on_random_text() -> None:
    rng = random.Random(8)
    alphabet = ['"', "\\", "\x00", "\x1f", "\x7f", "é", "日", "🚀", "\u2028", "a", " ", "{", ":"]
    prev = chain.GENESIS
    for _ in range(3000):
        fields = ["".join(rng.choices(alphabet, k=rng.randrange(0, 40))) for _ in range(6)]
        ts, kind, env, run_id, actor, payload = fields
        env_or_none = None if rng.random() < 0.3 else env
        reference = chain.event_hash(
            prev, chain.hashed_fields(ts, kind, env_or_none, run_id, actor, payload)
        )
        assert chain.fields_hash(prev, ts, kind, env_or_none, run_id, actor, payload) == reference
        prev = reference


@pytest.mark.parametrize(
    "values",
    [
        ("2024", "k", 5, None, "a", "{}"),  # an integer where text belongs (a hand edit)
        ("2024", "k", None, None, "a", b"{}"),  # bytes (a BLOB in SQLite)
        (1.5, "k", None, True, "a", "{}"),
        ("2024", "k", None, None, None, "{}"),
    ],
    ids=["int-env", "bytes-payload", "float-ts", "null-actor"],
)
def test_values_that_are_not_text_hash_as_the_reference_says(values: tuple[object, ...]) -> None:
    reference = chain.event_hash(chain.GENESIS, chain.hashed_fields(*values))  # type: ignore[arg-type]
    assert chain.fields_hash(chain.GENESIS, *values) == reference
    row = (1, values[1], values[2], values[3], values[4], values[5], values[0])
    assert chain.holds((*row, chain.GENESIS, reference))
    assert not chain.holds((*row, chain.GENESIS, "0" * 64))


def test_text_no_json_can_hold_fails_as_the_reference_does() -> None:
    lone = "\ud800"  # a lone surrogate: not encodable, whichever way it is hashed
    with pytest.raises(UnicodeEncodeError):
        chain.event_hash(chain.GENESIS, chain.hashed_fields("t", "k", None, None, lone, "{}"))
    with pytest.raises(UnicodeEncodeError):
        chain.fields_hash(chain.GENESIS, "t", "k", None, None, lone, "{}")
    # verify names such an event instead of crashing on it
    assert not chain.holds((1, "k", None, None, lone, "{}", "t", chain.GENESIS, "0" * 64))
    assert not chain.holds((1, "k", None, None, "a", "{}", "t", "ünïcode prev", "0" * 64))


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [1, 1.0, True, None, -0.0, 1e300, 2**70, 'é"\\\n']},
        "top-level text \u2028",
        1.0,
        float("nan"),
        float("-inf"),
        [],
        {"nested": {"z": {}, "a": [{"y": 1, "x": 2}]}},
    ],
)
def test_canonical_json_of_data_is_canonical_json(value: object) -> None:
    assert chain.canonical_json_of_data(value) == chain.canonical_json(value)


@pytest.mark.parametrize(
    "text",
    ['{"a":1}', " {}", "{} ", "[1, 2]", '"s"', "1.5", "NaN", "{}x", "", "{", '{"a":"\x01"}'],
)
def test_fast_loads_is_json_loads(text: str) -> None:
    try:
        expected: object = json.loads(text)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            chain.loads(text)
        return
    got = chain.loads(text)
    assert got == expected or (got != got and expected != expected)  # NaN
    assert type(got) is type(expected)


def test_record_many_appends_in_order_in_one_transaction(ledger: Ledger) -> None:
    first = ledger.record("x", actor=ACTOR)
    hashes = ledger.record_many(
        NewEvent("tick", actor=ACTOR, env="staging", run_id=f"r{i}", payload={"i": i, "é": "ü"})
        for i in range(250)
    )
    assert ledger.record_many([]) == []
    events = ledger.events()
    assert [e["hash"] for e in events] == [first, *hashes]
    assert [json.loads(e["payload"])["i"] for e in events[1:]] == list(range(250))
    for before, after in itertools.pairwise(events):
        assert after["prev_hash"] == before["hash"]
    assert ledger.audit().intact


def audited(led: Ledger) -> AuditReport:
    """The audit done in one process and split across two: the same report, exactly."""
    alone = led.audit(parallel=False)
    split = led.audit(parallel=True)
    assert split.to_dict() == alone.to_dict()
    assert [m.line() for m in split.mismatches] == [m.line() for m in alone.mismatches]
    return alone


def test_the_two_process_audit_says_exactly_what_one_process_says(
    ledger: Ledger, db_path: Path
) -> None:
    several_operations(ledger)
    assert audited(ledger).intact
    events = ledger.events()
    tamper(
        db_path,
        "UPDATE runs SET actor = 'mallory'",
        'UPDATE steps SET detail = \'{"digest": "sha256:other"}\'',
        "UPDATE releases SET state = 'pending'",
        f"UPDATE events SET payload = '{{}}' WHERE seq = {events[6]['seq']}",
    )
    report = audited(ledger)
    assert report.chain is not None and report.chain.seq == events[6]["seq"]
    assert len(report.mismatches) >= 3


def test_the_other_process_failing_changes_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    several_operations(ledger)
    alone = ledger.audit(parallel=False)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert ledger.audit(parallel=True).to_dict() == alone.to_dict()


def test_a_step_detail_edited_to_an_equal_but_different_json_value_is_named(
    ledger: Ledger, db_path: Path
) -> None:
    start(ledger, "r1")
    step = ledger.step_started("r1", 1, "build", "build", actor=ACTOR)
    ledger.step_finished(step, status="ok", detail={"ok": True, "n": 1}, actor=ACTOR)
    assert audited(ledger).intact
    # 1 == True and 1 == 1.0 in Python, but not in the events' canonical JSON
    tamper(db_path, """UPDATE steps SET detail = '{"n": 1, "ok": 1}'""")
    assert "detail differs from event seq" in audited(ledger).message()
    tamper(db_path, """UPDATE steps SET detail = '{"n": 1.0, "ok": true}'""")
    assert "detail differs from event seq" in audited(ledger).message()
    tamper(db_path, """UPDATE steps SET detail = '{"ok": true, "n": 1}'""")  # key order
    assert audited(ledger).intact


def test_a_damaged_ledger_file_is_one_line_not_a_short_audit(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    led = Ledger.open(None, path)
    led.record_many(
        NewEvent("tick", actor=ACTOR, payload={"i": i, "pad": "x" * 400}) for i in range(3000)
    )
    led.close()
    conn = raw(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with path.open("r+b") as handle:  # garbage over pages in the middle of the events
        handle.seek(path.stat().st_size // 2)
        handle.write(bytes(range(256)) * 64)
    led = Ledger.open(None, path)
    try:
        for check in (led.audit, led.verify_chain, lambda: list(led.iter_events())):
            with pytest.raises(GonogoError) as err:
                check()
            message = err.value.message
            assert message.startswith(f"ledger {path} is damaged (") and "\n" not in message
            assert message.endswith("restore it from a backup")
    finally:
        led.close()
