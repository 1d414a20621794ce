"""The ledger on a real SQLite file: hash chain, tampering, concurrency, locks, releases."""

from __future__ import annotations

import itertools
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gonogo.ledger import Ledger, ReleaseRow, chain
from gonogo.ledger.store import LockRow, MigrationRow, now_iso

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


def test_deleted_middle_event_is_reported_at_the_next_seq(ledger: Ledger, db_path: Path) -> None:
    several_operations(ledger)
    seqs = [e["seq"] for e in ledger.events()]
    conn = raw(db_path)
    try:
        conn.execute("DELETE FROM events WHERE seq = ?", (seqs[3],))
    finally:
        conn.close()
    intact, bad, reason = ledger.verify_chain()
    assert intact is False
    assert bad == seqs[4]
    assert "prev_hash" in reason


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


def test_forged_event_inserted_in_the_middle_is_reported(ledger: Ledger, db_path: Path) -> None:
    """Replace event 3 by a well-formed forgery (prev_hash right, own hash right): the chain
    still breaks at the event after it, whose prev_hash names the original."""
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
    intact, bad, _ = ledger.verify_chain()
    assert (intact, bad) == (False, after["seq"])


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
