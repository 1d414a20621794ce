"""Runs: the lifecycle of one mutating command, recorded step by step in the ledger.

A Run always ends in the ledger, whatever happens: success, refusal, failure, Ctrl-C or
SIGTERM (recorded as interrupted) and crashes. The environment lock it took is released
on every one of those paths.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from gonogo.context import Context
from gonogo.errors import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    DeployFailed,
    GonogoError,
    Interrupted,
    NoGo,
)
from gonogo.evidence import Evidence, Redactor
from gonogo.ledger.lock import Heartbeat
from gonogo.ledger.store import LockRow, now_iso
from gonogo.origin import describe as describe_origin
from gonogo.origin import run_origin
from gonogo.plan import Plan, Step


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass
class StepHandle:
    detail: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Run:
    def __init__(
        self,
        ctx: Context,
        command: str,
        env: str | None,
        *,
        sha: str | None = None,
        plan: Plan | None = None,
        lock: bool = False,
        evidence_dir: Path | None = None,
    ) -> None:
        self.ctx = ctx
        self.command = command
        self.env = env
        self.sha = sha
        self.plan = plan
        self.wants_lock = lock
        self.id = new_run_id()
        # A run linked to a work order may keep its evidence beside the work order's docs.
        folder = (evidence_dir or ctx.state_dir / "evidence") / self.id
        self.evidence = Evidence(folder, Redactor.from_environ(ctx.environ))
        self.locked = False
        self.finished = False
        self.status = "running"
        self.exit_code: int | None = None
        self.summary = ""
        self.record: dict[str, Any] = {}
        self.artifact: str | None = None
        self._step_idx = 0
        self._interrupted_step: str | None = None
        self._steps: list[dict[str, Any]] = []
        self._old_sigterm: Any = None
        self._heartbeat: Heartbeat | None = None
        self.origin = run_origin(ctx.environ, user=ctx.actor, host=ctx.host)

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Run:
        ctx = self.ctx
        ctx.ledger.start_run(
            self.id,
            command=self.command,
            env=self.env,
            actor=ctx.actor,
            host=ctx.host,
            pid=os.getpid(),
            plan=self.plan.to_dict() if self.plan else None,
            evidence=self._evidence_label(),
            sha=self.sha,
            origin=self.origin,
        )
        self.log(
            f"run {self.id}: gonogo {self.command} {self.env or ''} by {ctx.actor} "
            f"on {ctx.host} (pid {os.getpid()}), from {describe_origin(self.origin)}"
        )
        self.record["origin"] = self.origin
        if self.plan is not None:
            self.log("plan:\n" + "\n".join(self.plan.render()))
        try:
            if threading_is_main():
                self._old_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
            if self.wants_lock and self.env is not None:
                self._acquire_lock()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, GonogoError):
            exc.details.setdefault("run_id", self.id)
            exc.details.setdefault("evidence", self._evidence_label())
        try:
            if not self.finished:
                if exc is None:
                    self.finish("succeeded", 0, self.summary or "done")
                elif isinstance(exc, KeyboardInterrupt):
                    self.finish(
                        "interrupted",
                        EXIT_INTERRUPTED,
                        f"interrupted during {self._interrupted_step or 'setup'}"
                        if self._interrupted_step or not self._step_idx
                        else f"interrupted after step {self._step_idx}",
                    )
                elif isinstance(exc, NoGo):
                    self.finish("refused", exc.exit_code, exc.message)
                elif isinstance(exc, DeployFailed):
                    self.finish(str(exc.details.get("status", "failed")), EXIT_FAILED, exc.message)
                elif isinstance(exc, GonogoError):
                    self.finish("failed", exc.exit_code, exc.message)
                else:
                    self.finish("failed", EXIT_INTERNAL, f"internal error: {exc!r}")
        finally:
            if self._heartbeat is not None:
                self._heartbeat.stop()
                self._heartbeat = None
            if self.locked and self.env is not None:
                self.ctx.ledger.release_lock(self.env, self.id, actor=self.ctx.actor)
                self.locked = False
            if self._old_sigterm is not None:
                signal.signal(signal.SIGTERM, self._old_sigterm)
                self._old_sigterm = None
        if isinstance(exc, KeyboardInterrupt):
            where = self._interrupted_step or (
                f"after step {self._step_idx}" if self._step_idx else "setup"
            )
            env = f" {self.env}" if self.env else ""
            raise Interrupted(
                f"interrupted during {where}: run {self.id} is recorded as interrupted"
                f"{' and its lock released' if self.wants_lock else ''}; "
                f"check what was left with `gonogo status{env}`",
                details={"run_id": self.id, "evidence": self._evidence_label()},
            ) from exc

    def _evidence_label(self) -> str:
        try:
            return str(self.evidence.folder.relative_to(self.ctx.root))
        except ValueError:
            return str(self.evidence.folder)

    def _acquire_lock(self) -> None:
        assert self.env is not None
        ctx = self.ctx
        mine = LockRow(
            env=self.env,
            run_id=self.id,
            command=self.command,
            holder=ctx.actor,
            host=ctx.host,
            pid=os.getpid(),
            acquired_at=now_iso(),
            heartbeat_at=now_iso(),
        )
        held = ctx.ledger.try_lock(mine, actor=ctx.actor)
        if held is None:
            self.locked = True
            # Beat from a thread: a step can outlast the stale threshold, and other
            # machines sharing the ledger judge this lock by its heartbeat alone.
            self._heartbeat = ctx.ledger.keep_alive(self.env, self.id)
            self.log(f"lock on {self.env} acquired")
            return
        who = (
            f"run {held.run_id} ({held.command} by {held.holder}, pid {held.pid} "
            f"on {held.host}, since {held.acquired_at})"
        )
        stale = ctx.ledger.lock_staleness(held, ctx.host)
        if stale is not None:
            raise NoGo(
                f"{self.env} is locked by {who}, but {stale}: the lock is stale. "
                f"Check `gonogo status {self.env}`, then run "
                f'`gonogo unlock {self.env} --reason "..."`',
                details={"lock": held.__dict__, "stale": True, "stale_reason": stale},
            )
        raise NoGo(
            f"{self.env} is locked by {who}; wait for it to finish",
            details={"lock": held.__dict__, "stale": False},
        )

    def _still_holding(self, description: str) -> None:
        """Refresh the lock before a step, and stop the run if it is no longer ours.

        `gonogo unlock --force` may clear a lock whose holder only looked dead; that holder
        must not go on changing an environment another run may now be deploying to.
        """
        if not self.locked or self.env is None:
            return
        beating = self._heartbeat is None or not self._heartbeat.lost
        if beating and self.ctx.ledger.heartbeat(self.env, self.id):
            return
        self.locked = False  # whatever the lock row says now is not this run's to release
        holder = self.ctx.ledger.lock_holder(self.env)
        now = (
            f"it is now held by run {holder.run_id} ({holder.command} by {holder.holder})"
            if holder is not None
            else "nobody holds it now"
        )
        where = f"the lock on {self.env} was cleared while run {self.id} held it; {now}"
        if self._step_idx == 0:
            raise NoGo(f"{where}. Stopped before {description}: nothing was changed")
        raise DeployFailed(
            f"{where}. Stopped before step {self._step_idx + 1} ({description}) after "
            f"{self._step_idx} step(s) ran: check `gonogo status {self.env}` before deploying again"
        )

    def finish(
        self, status: str, exit_code: int, summary: str, details: dict[str, Any] | None = None
    ) -> None:
        if self.finished:
            return
        self.finished = True
        summary = self.evidence.redactor.text(summary)
        details = self.evidence.redactor.data(details) if details else None
        self.status, self.exit_code, self.summary = status, exit_code, summary
        self.log(f"run {self.id} {status} (exit {exit_code}): {summary}")
        self.ctx.ledger.finish_run(
            self.id,
            status=status,
            exit_code=exit_code,
            summary=summary,
            actor=self.ctx.actor,
            details=details,
        )
        self.evidence.write_json("run.json", self.to_dict())

    # -- steps -------------------------------------------------------------------------

    @contextmanager
    def step(self, action: str, description: str) -> Iterator[StepHandle]:
        self._still_holding(description)
        self._step_idx += 1
        handle = StepHandle()
        entry: dict[str, Any] = {
            "idx": self._step_idx,
            "action": action,
            "description": description,
            "status": "running",
            "started_at": now_iso(),
        }
        self._steps.append(entry)
        step_id = self.ctx.ledger.step_started(
            self.id, self._step_idx, action, description, actor=self.ctx.actor
        )
        self.log(f"step {self._step_idx}: {description}")
        started = time.perf_counter()
        try:
            yield handle
        except BaseException as exc:
            handle.status = "failed"
            if isinstance(exc, KeyboardInterrupt):
                handle.status = "interrupted"
                self._interrupted_step = f"step {self._step_idx} ({description})"
            handle.detail.setdefault("error", str(exc) or type(exc).__name__)
            raise
        finally:
            handle.detail["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
            entry.update(status=handle.status, detail=handle.detail, finished_at=now_iso())
            self.ctx.ledger.step_finished(
                step_id,
                status=handle.status,
                detail=self.evidence.redactor.data(handle.detail),
                actor=self.ctx.actor,
            )
            self.log(f"step {self._step_idx} {handle.status}: {description}")

    def execute(self, plan: Plan, perform: Callable[[Step], dict[str, Any]]) -> None:
        for step in plan.steps:
            with self.step(step.action, step.description) as handle:
                handle.detail.update(perform(step))

    def log(self, text: str) -> None:
        self.evidence.log(text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "command": self.command,
            "env": self.env,
            "sha": self.sha,
            "status": self.status,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "actor": self.ctx.actor,
            "host": self.ctx.host,
            "plan": self.plan.to_dict() if self.plan else None,
            "steps": self._steps,
            **self.record,
        }


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
