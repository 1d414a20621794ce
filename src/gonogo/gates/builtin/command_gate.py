"""Custom gates: any configured command is a gate, GO on exit 0 (the playbook's plan-sync).

`run_gate_command` is the one way a gate runs a command (custom gates, and the `command`
sources of ci-passed and no-blockers): `/bin/sh -c COMMAND` as an argv list, in its own
process group, with the project root as cwd, the given environment, output captured
(stdout and stderr together) and a time limit after which the whole group is killed.
A gate changes nothing, so nothing the command started outlives it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, NamedTuple

from gonogo.config.schema import CustomGate
from gonogo.evidence import Redactor
from gonogo.gates.model import Finding, GateInput, GateResult

SHELL = "/bin/sh"
# Lines of output kept in the result (the evidence); the reason quotes the last one.
OUTPUT_LINES = 20
_POLL = 0.01


class CommandRun(NamedTuple):
    """exit_code is None when the time limit was reached and the process group was killed."""

    exit_code: int | None
    output: str


def _drain(stream: IO[bytes], chunks: list[bytes]) -> None:
    fd = stream.fileno()
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        chunks.append(chunk)


def _exited(pid: int) -> bool:
    """Whether the child has exited, without reaping it: while it is a zombie its pid, and
    so its process group id, cannot be reused, which makes killing the group safe."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run_gate_command(
    command: str, *, cwd: Path, env: Mapping[str, str], timeout: float
) -> CommandRun:
    """Run `command` with /bin/sh; see the module docstring. Raises OSError if it cannot start."""
    proc = subprocess.Popen(
        [SHELL, "-c", command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )
    assert proc.stdout is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=_drain, args=(proc.stdout, chunks), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    timed_out = False
    try:
        while not _exited(proc.pid):
            if time.monotonic() >= deadline:
                timed_out = True
                break
            time.sleep(_POLL)
    finally:
        # Kill the whole group: on time-out the command itself, after a normal exit anything
        # it left running in the background (the leader is a zombie until wait(), so the
        # group id still names only its own processes).
        _kill_group(proc.pid)
        code = proc.wait()
        # The pipe closes once every holder is dead; a process that escaped into its own
        # session could keep it open, so the wait for the last output is bounded.
        reader.join(timeout=2.0)
        with contextlib.suppress(OSError):
            proc.stdout.close()
    output = b"".join(chunks).decode("utf-8", errors="replace")
    return CommandRun(None if timed_out else code, output)


def substitute(command: str, *, sha: str | None, env: str) -> str:
    """Fill {sha} and {env} in a configured command, shell-quoted. Other braces are left as
    they are (a command may well contain awk's `{print $1}`)."""
    return command.replace("{sha}", shlex.quote(sha or "")).replace("{env}", shlex.quote(env))


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def tail(output: str, lines: int = OUTPUT_LINES) -> str:
    kept = [line.rstrip() for line in output.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def describe(command: str, run: CommandRun, timeout: float) -> str:
    """One line saying how a command ended, for a NO-GO reason."""
    if run.exit_code is None:
        return f"`{command}` timed out after {timeout:g}s (its process group was killed)"
    last = last_line(run.output)
    return f"`{command}` exited {run.exit_code}" + (f": {last}" if last else "")


class CommandGate:
    """A configured command as a gate: GO on exit 0, NO-GO otherwise or on time-out."""

    overridable = True

    def __init__(self, gate_id: str, spec: CustomGate) -> None:
        self.id = gate_id
        self.spec = spec

    def applies(self, inp: GateInput) -> bool:
        return inp.command in self.spec.guards or inp.command == "check"

    def evaluate(self, inp: GateInput) -> GateResult:
        redact = Redactor.from_environ(inp.environ)
        command = self.spec.command
        evidence = redact.text(command)
        try:
            run = run_gate_command(
                command, cwd=inp.root, env=inp.environ, timeout=self.spec.timeout
            )
        except OSError as exc:
            return GateResult(
                self.id,
                "NO-GO",
                redact.text(f"could not run `{command}`: {exc.strerror or exc}"),
                evidence,
            )
        output = redact.text(tail(run.output))
        findings = (Finding(redact.text(command), None, output),) if output else ()
        if run.exit_code == 0:
            last = redact.text(last_line(run.output))
            reason = last or f"`{command}` exited 0"
            return GateResult(self.id, "GO", redact.text(reason), evidence, findings)
        if run.exit_code is None:
            reason = f"timed out after {self.spec.timeout:g}s; the command was killed"
        else:
            last = last_line(run.output)
            reason = last or f"`{command}` exited {run.exit_code} with no output"
            if last:
                reason = f"{last} (exit {run.exit_code})"
        return GateResult(
            self.id,
            "NO-GO",
            redact.text(reason),
            evidence,
            findings,
            fix=f"run `{command}` and fix what it reports",
        )
