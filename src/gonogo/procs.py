"""Detached app processes: start them so they outlive the CLI, find and stop them later.

A pid alone can be reused by the OS, so a process is identified by (pid, start time read
from /proc); a different start time means ours is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _stat_fields(pid)
    # A zombie has exited; only its parent has not collected it yet.
    return not (stat is not None and stat[0] == "Z")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields follow its ')'.
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


@dataclass(frozen=True)
class ProcHandle:
    pid: int
    started: int | None

    def alive(self) -> bool:
        if not pid_alive(self.pid):
            return False
        return self.started is None or start_time(self.pid) == self.started


def spawn(
    argv: list[str], *, cwd: Path, env: Mapping[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], ProcHandle]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc, ProcHandle(proc.pid, start_time(proc.pid))


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count).

    The local provider starts `sh -c CMD` as a group leader; the shell may exit at once on
    SIGTERM while the server it started keeps the port, so the leader alone says too little.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        # After the command name: state is field 3, the process group field 5.
        if fields and len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def stop(handle: ProcHandle, *, grace: float = 5.0) -> str:
    """SIGTERM the process group, then SIGKILL it after `grace` seconds.

    Returns "not running", "stopped" or "killed".
    """
    if not handle.alive() and handle.started is not None and pid_alive(handle.pid):
        # The pid now belongs to another process: a recycled pid is never signalled.
        return "not running"
    if not group_alive(handle.pid):
        return "not running"
    _signal_group(handle.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(handle.pid)
        if not group_alive(handle.pid):
            return "stopped"
        time.sleep(0.05)
    _signal_group(handle.pid, signal.SIGKILL)
    for _ in range(100):
        _reap(handle.pid)
        if not group_alive(handle.pid):
            break
        time.sleep(0.02)
    return "killed"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def wait_port_free(port: int, *, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_free(port):
            return True
        time.sleep(0.05)
    return port_free(port)
