"""Run: the lifecycle of a mutating command, on a real ledger and a real evidence folder."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gonogo.config import load_config
from gonogo.context import Context
from gonogo.errors import DeployFailed, GonogoError, NoGo
from gonogo.executor import Run
from gonogo.ledger.store import LockRow, now_iso
from gonogo.output import Output
from gonogo.plan import Plan, Step

CONFIG = """\
[project]
name = "executor-test"

[environments.staging]
provider = "local"
port = 18101

[environments.production]
provider = "local"
port = 18102
protected = true
promote_from = "staging"
"""

SECRET = "supersecretvalue"


def make_ctx(root: Path, environ: dict[str, str] | None = None) -> Context:
    path = root / "gonogo.toml"
    path.write_text(CONFIG)
    return Context(
        root=root,
        config=load_config(path),
        config_path=path,
        out=Output(json_mode=True, stdout=io.StringIO(), stderr=io.StringIO()),
        environ={"GONOGO_ACTOR": "tester", **(environ or {})},
    )


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    context = make_ctx(tmp_path)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def secret_ctx(tmp_path: Path) -> Iterator[Context]:
    context = make_ctx(tmp_path, {"HEROKU_API_KEY": SECRET})
    try:
        yield context
    finally:
        context.close()


def hold_lock(ctx: Context, pid: int, *, env: str = "staging", host: str | None = None) -> LockRow:
    row = LockRow(
        env=env,
        run_id="other-run",
        command="deploy",
        holder="alice",
        host=host or socket.gethostname(),
        pid=pid,
        acquired_at=now_iso(),
        heartbeat_at=now_iso(),
    )
    assert ctx.ledger.try_lock(row, actor="alice") is None
    return row


def read_run_json(run: Run) -> dict:
    return json.loads((run.evidence.folder / "run.json").read_text())


def assert_interrupted(exc: BaseException) -> None:
    """Ctrl-C leaves a Run either as KeyboardInterrupt or as a GonogoError with exit 130."""
    if isinstance(exc, GonogoError):
        assert exc.exit_code == 130
        assert isinstance(exc.__cause__, KeyboardInterrupt)
    else:
        assert isinstance(exc, KeyboardInterrupt), repr(exc)


PLAN = Plan(
    "deploy",
    "staging",
    (Step("build", "build the artifact", {"n": 1}), Step("release", "release v1")),
    ("a note",),
)


# -- success -------------------------------------------------------------------------------------


def test_success_records_run_steps_and_run_json(ctx: Context) -> None:
    performed: list[str] = []

    def perform(step: Step) -> dict:
        performed.append(step.action)
        return {"did": step.action}

    with Run(ctx, "deploy", "staging", sha="a" * 40, plan=PLAN, lock=True) as run:
        assert ctx.ledger.lock_holder("staging").run_id == run.id  # type: ignore[union-attr]
        run.execute(PLAN, perform)
        run.summary = "all good"

    assert performed == ["build", "release"]
    row = ctx.ledger.run(run.id)
    assert row is not None
    assert (row.status, row.exit_code, row.summary) == ("succeeded", 0, "all good")
    assert row.command == "deploy" and row.env == "staging" and row.sha == "a" * 40
    assert row.actor == "tester" and row.pid == os.getpid()
    assert row.plan == PLAN.to_dict()
    assert row.finished_at is not None
    steps = ctx.ledger.steps(run.id)
    assert [(s["idx"], s["name"], s["status"]) for s in steps] == [
        (1, "build", "ok"),
        (2, "release", "ok"),
    ]
    assert steps[0]["detail"]["did"] == "build"
    assert "duration_ms" in steps[0]["detail"]
    # lock released
    assert ctx.ledger.lock_holder("staging") is None
    # evidence folder
    folder = run.evidence.folder
    assert folder == ctx.root / ".gonogo" / "evidence" / run.id
    assert row.evidence == f".gonogo/evidence/{run.id}"
    doc = read_run_json(run)
    assert doc["run_id"] == run.id
    assert doc["status"] == "succeeded" and doc["exit_code"] == 0
    assert [s["status"] for s in doc["steps"]] == ["ok", "ok"]
    assert doc["plan"] == PLAN.to_dict()
    log = (folder / "log.txt").read_text()
    assert "build the artifact" in log and "lock on staging acquired" in log
    assert f"run {run.id} succeeded" in log
    # events: run.started ... lock.acquired ... run.finished, lock.released; chain intact
    kinds = [e["kind"] for e in ctx.ledger.events(run_id=run.id)]
    assert kinds[0] == "run.started"
    assert "lock.acquired" in kinds and kinds[-1] == "lock.released"
    assert kinds.count("step.started") == 2 and kinds.count("step.finished") == 2
    assert ctx.ledger.verify_chain()[0]


def test_run_without_lock_or_env(ctx: Context) -> None:
    with Run(ctx, "history", None) as run:
        pass
    assert ctx.ledger.run(run.id).status == "succeeded"  # type: ignore[union-attr]
    assert [e["kind"] for e in ctx.ledger.events()] == ["run.started", "run.finished"]


def test_step_handle_status_and_detail_are_recorded(ctx: Context) -> None:
    with Run(ctx, "deploy", "staging") as run, run.step("probe", "probe health") as handle:
        handle.status = "skipped"
        handle.detail["why"] = "nothing to probe"
    (step,) = ctx.ledger.steps(run.id)
    assert step["status"] == "skipped"
    assert step["detail"]["why"] == "nothing to probe"


def test_run_ids_are_unique(ctx: Context) -> None:
    ids = {Run(ctx, "deploy", "staging").id for _ in range(50)}
    assert len(ids) == 50


# -- failure paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc,status,code",
    [
        (GonogoError("bad input"), "failed", 1),
        (DeployFailed("push failed"), "failed", 3),
        (NoGo("refused"), "refused", 2),
        (RuntimeError("kaboom"), "failed", 4),
    ],
)
def test_exception_in_step_records_outcome_and_releases_lock(ctx, exc, status, code) -> None:
    with pytest.raises(type(exc)), Run(ctx, "deploy", "staging", lock=True) as run:
        with run.step("build", "build it"):
            pass
        with run.step("push", "push it"):
            raise exc
    row = ctx.ledger.run(run.id)
    assert row is not None
    assert (row.status, row.exit_code) == (status, code)
    assert ctx.ledger.lock_holder("staging") is None
    steps = ctx.ledger.steps(run.id)
    assert [s["status"] for s in steps] == ["ok", "failed"]
    assert str(exc) in steps[1]["detail"]["error"]
    assert read_run_json(run)["status"] == status
    if isinstance(exc, GonogoError):
        assert exc.details["run_id"] == run.id
        assert exc.details["evidence"] == f".gonogo/evidence/{run.id}"
    assert ctx.ledger.verify_chain()[0]


def test_keyboard_interrupt_is_recorded_as_interrupted(ctx: Context) -> None:
    with (
        pytest.raises(BaseException) as info,
        Run(ctx, "deploy", "staging", lock=True) as run,
        run.step("release", "release v7"),
    ):
        raise KeyboardInterrupt
    assert_interrupted(info.value)
    row = ctx.ledger.run(run.id)
    assert row is not None
    assert (row.status, row.exit_code) == ("interrupted", 130)
    assert "release v7" in (row.summary or "")
    assert ctx.ledger.lock_holder("staging") is None
    (step,) = ctx.ledger.steps(run.id)
    assert step["status"] == "interrupted"
    assert read_run_json(run)["exit_code"] == 130


def test_sigterm_during_a_run_is_recorded_as_interrupted(ctx: Context) -> None:
    before = signal.getsignal(signal.SIGTERM)
    with (
        pytest.raises(BaseException) as info,
        Run(ctx, "deploy", "staging", lock=True) as run,
        run.step("wait", "wait for the app"),
    ):
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()  # the handler raises before this could block
    assert_interrupted(info.value)
    assert ctx.ledger.run(run.id).status == "interrupted"  # type: ignore[union-attr]
    assert ctx.ledger.lock_holder("staging") is None
    assert signal.getsignal(signal.SIGTERM) == before


def test_finish_is_recorded_once(ctx: Context) -> None:
    with Run(ctx, "deploy", "staging") as run:
        run.finish("halted", 3, "halted on purpose")
    row = ctx.ledger.run(run.id)
    assert (row.status, row.exit_code) == ("halted", 3)  # type: ignore[union-attr]
    assert [e["kind"] for e in ctx.ledger.events()].count("run.finished") == 1


# -- locks ---------------------------------------------------------------------------------------


def test_lock_held_by_live_pid_refuses_and_records_refusal(ctx: Context) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        held = hold_lock(ctx, other.pid)
        with pytest.raises(NoGo) as info, Run(ctx, "deploy", "staging", lock=True):
            pytest.fail("the body must not run without the lock")
        err = info.value
        assert err.exit_code == 2
        assert "other-run" in err.message and "alice" in err.message
        assert str(other.pid) in err.message
        assert "stale" not in err.message
        assert err.details["stale"] is False
        run_id = err.details["run_id"]
        row = ctx.ledger.run(run_id)
        assert row is not None
        assert (row.status, row.exit_code) == ("refused", 2)
        assert "alice" in (row.summary or "")
        # the holder keeps its lock
        assert ctx.ledger.lock_holder("staging") == held
    finally:
        other.kill()
        other.wait()


def test_lock_held_by_dead_pid_on_this_host_is_stale(ctx: Context) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    hold_lock(ctx, dead.pid)
    with pytest.raises(NoGo) as info, Run(ctx, "deploy", "staging", lock=True):
        pytest.fail("the body must not run without the lock")
    assert "stale" in info.value.message
    assert "gonogo unlock staging" in info.value.message
    assert info.value.details["stale"] is True
    row = ctx.ledger.run(info.value.details["run_id"])
    assert row.status == "refused"  # type: ignore[union-attr]
    assert ctx.ledger.lock_holder("staging").run_id == "other-run"  # type: ignore[union-attr]


def test_lock_held_on_another_host_is_not_called_stale(ctx: Context) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    hold_lock(ctx, dead.pid, host="some-other-host.invalid")
    with pytest.raises(NoGo) as info, Run(ctx, "deploy", "staging", lock=True):
        pass
    assert info.value.details["stale"] is False
    assert "some-other-host.invalid" in info.value.message


def test_lock_on_another_environment_does_not_block(ctx: Context) -> None:
    hold_lock(ctx, os.getpid(), env="production")
    with Run(ctx, "deploy", "staging", lock=True) as run:
        pass
    assert ctx.ledger.run(run.id).status == "succeeded"  # type: ignore[union-attr]


# -- secrets -------------------------------------------------------------------------------------


def test_evidence_never_contains_secret_from_environ(secret_ctx: Context) -> None:
    ctx = secret_ctx
    with Run(ctx, "deploy", "staging", lock=True) as run:
        run.log(f"calling heroku with key {SECRET} now")
        run.log(f"multi\nline {SECRET}\nend")
        with run.step("push", f"push with {SECRET}") as handle:
            handle.detail["auth"] = f"Bearer {SECRET}"
            handle.detail["nested"] = {"list": [SECRET]}
        run.record["extra"] = {"token": SECRET}
        run.evidence.write_text("transcript.txt", f"Authorization: Bearer {SECRET}\n")
    folder = run.evidence.folder
    log = (folder / "log.txt").read_text()
    assert "calling heroku with key <redacted> now" in log
    for path in folder.iterdir():
        assert SECRET not in path.read_text(), path.name
    # step detail stored in the ledger is redacted too
    (step,) = ctx.ledger.steps(run.id)
    assert SECRET not in json.dumps(step["detail"])


def test_failure_message_with_secret_is_not_stored_in_ledger(secret_ctx: Context) -> None:
    """The step's error detail is redacted before it reaches the ledger; the same message
    as the run's summary (runs.summary and the run.finished event) must be too."""
    ctx = secret_ctx
    with (
        pytest.raises(DeployFailed),
        Run(ctx, "deploy", "staging") as run,
        run.step("push", "push image"),
    ):
        raise DeployFailed(f"registry rejected token {SECRET}")
    for path in run.evidence.folder.iterdir():
        assert SECRET not in path.read_text(), path.name
    (step,) = ctx.ledger.steps(run.id)
    assert SECRET not in json.dumps(step["detail"])
    row = ctx.ledger.run(run.id)
    assert row is not None
    assert SECRET not in (row.summary or "")
    assert SECRET not in json.dumps(ctx.ledger.events(run_id=run.id))


# -- a lock cleared under a running run ----------------------------------------------------------


def test_run_whose_lock_was_force_cleared_stops_before_its_next_step(ctx: Context) -> None:
    with pytest.raises(DeployFailed) as info, Run(ctx, "deploy", "staging", lock=True) as run:
        with run.step("build", "build it"):
            pass
        # Someone decides the holder is dead and takes the environment for another deploy.
        assert ctx.ledger.force_unlock("staging", actor="bob", reason="looked stuck")
        taken = hold_lock(ctx, os.getpid())
        with run.step("release", "release v2"):
            pytest.fail("a run that lost its lock must not start another step")
    err = info.value
    assert err.exit_code == 3
    assert "lock on staging" in err.message and "release v2" in err.message
    assert "other-run" in err.message  # who holds it now
    row = ctx.ledger.run(run.id)
    assert row is not None and (row.status, row.exit_code) == ("failed", 3)
    assert [s["name"] for s in ctx.ledger.steps(run.id)] == ["build"]
    # The new holder keeps its lock: the stopped run must not release what is not its own.
    assert ctx.ledger.lock_holder("staging") == taken


def test_run_whose_lock_was_cleared_before_any_step_changed_nothing(ctx: Context) -> None:
    with pytest.raises(NoGo) as info, Run(ctx, "deploy", "staging", lock=True) as run:
        ctx.ledger.force_unlock("staging", actor="bob", reason="cleanup")
        with run.step("release", "release v1"):
            pytest.fail("a run that lost its lock must not start a step")
    assert "nothing was changed" in info.value.message
    row = ctx.ledger.run(run.id)
    assert row is not None and (row.status, row.exit_code) == ("refused", 2)
    assert ctx.ledger.steps(run.id) == []
    assert ctx.ledger.lock_holder("staging") is None
