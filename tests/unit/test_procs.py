"""Detached processes and ports, with real subprocesses and real sockets."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gonogo import procs
from gonogo.procs import ProcHandle


def wait_for(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count: the init of
    some containers never reaps orphans, so they linger in the group as zombies)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    """Process groups to SIGKILL at the end, whatever the test did."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pgid, os.WNOHANG)


def spawn(
    argv: list[str], tmp_path: Path, cleanup: list[int], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], ProcHandle]:
    proc, handle = procs.spawn(
        argv,
        cwd=tmp_path,
        env=env or {"PATH": os.environ["PATH"]},
        log=tmp_path / "logs" / "app.log",
    )
    cleanup.append(proc.pid)
    return proc, handle


# -- pid_alive and start_time --------------------------------------------------------------------


def test_pid_alive_for_this_process() -> None:
    assert procs.pid_alive(os.getpid()) is True


@pytest.mark.parametrize("pid", [0, -1, -12345])
def test_pid_alive_rejects_non_positive(pid: int) -> None:
    assert procs.pid_alive(pid) is False


def test_pid_alive_false_after_exit_and_reap() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert procs.pid_alive(proc.pid) is False
    assert procs.start_time(proc.pid) is None


def test_zombie_is_not_alive() -> None:
    proc = subprocess.Popen(["true"])
    try:
        # not reaped: it stays a zombie until wait()
        assert wait_for(lambda: (procs._stat_fields(proc.pid) or ["?"])[0] == "Z")
        assert procs.pid_alive(proc.pid) is False
    finally:
        proc.wait()


def test_start_time_is_stable_and_identifies_the_process() -> None:
    me = procs.start_time(os.getpid())
    assert isinstance(me, int) and me > 0
    assert procs.start_time(os.getpid()) == me
    assert ProcHandle(os.getpid(), me).alive() is True
    # same pid, different start time: a reused pid is not our process
    assert ProcHandle(os.getpid(), me + 1).alive() is False
    # unknown start time: trust the pid
    assert ProcHandle(os.getpid(), None).alive() is True


def test_start_time_with_odd_command_name(tmp_path: Path) -> None:
    """The command name in /proc/PID/stat may contain spaces and ')'."""
    odd = tmp_path / "we ird) (name"
    odd.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(odd), "30"])
    try:
        assert wait_for(
            lambda: (
                procs._stat_fields(proc.pid) is not None and procs._stat_fields(proc.pid)[0] in "RS"
            )
        )  # type: ignore[index]
        value = procs.start_time(proc.pid)
        assert isinstance(value, int)
        assert value >= procs.start_time(os.getpid())  # type: ignore[operator]
        assert procs.pid_alive(proc.pid)
    finally:
        proc.kill()
        proc.wait()


# -- spawn and stop ------------------------------------------------------------------------------


def test_spawn_starts_a_detached_process_group(tmp_path: Path, cleanup: list[int]) -> None:
    proc, handle = spawn(["sleep", "30"], tmp_path, cleanup)
    assert handle.pid == proc.pid
    assert handle.started == procs.start_time(proc.pid)
    assert handle.alive()
    # its own session and process group, so the CLI's Ctrl-C does not reach it
    assert os.getpgid(proc.pid) == proc.pid
    assert os.getsid(proc.pid) == proc.pid
    assert os.getpgid(proc.pid) != os.getpgid(0)
    assert (tmp_path / "logs" / "app.log").is_file()


def test_spawn_logs_output_and_uses_env_and_cwd(tmp_path: Path, cleanup: list[int]) -> None:
    proc, _ = spawn(
        ["/bin/sh", "-c", 'echo "port=$PORT"; pwd; echo oops >&2'],
        tmp_path,
        cleanup,
        env={"PATH": os.environ["PATH"], "PORT": "5123"},
    )
    proc.wait(timeout=10)
    text = (tmp_path / "logs" / "app.log").read_text()
    assert "port=5123" in text
    assert str(tmp_path) in text
    assert "oops" in text  # stderr goes to the same log
    # the log is appended to, never truncated
    proc2, _ = spawn(["/bin/sh", "-c", "echo second"], tmp_path, cleanup)
    proc2.wait(timeout=10)
    text = (tmp_path / "logs" / "app.log").read_text()
    assert "port=5123" in text and "second" in text


def test_stop_terminates_with_sigterm(tmp_path: Path, cleanup: list[int]) -> None:
    proc, handle = spawn(["sleep", "30"], tmp_path, cleanup)
    started = time.monotonic()
    assert procs.stop(handle, grace=5.0) == "stopped"
    assert time.monotonic() - started < 3.0
    assert not handle.alive()
    assert not procs.pid_alive(proc.pid)


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path, cleanup: list[int]) -> None:
    proc, handle = spawn(["/bin/sh", "-c", 'trap "" TERM; sleep 30'], tmp_path, cleanup)
    time.sleep(0.2)  # let the shell install its trap
    started = time.monotonic()
    assert procs.stop(handle, grace=0.3) == "killed"
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 5.0
    assert not handle.alive()
    assert not group_alive(proc.pid)


def test_stop_takes_down_the_whole_group(tmp_path: Path, cleanup: list[int]) -> None:
    proc, handle = spawn(["/bin/sh", "-c", "sleep 30 & sleep 30 & wait"], tmp_path, cleanup)
    time.sleep(0.2)
    assert procs.stop(handle, grace=5.0) == "stopped"
    assert wait_for(lambda: not group_alive(proc.pid), timeout=3.0)


def test_stop_kills_group_members_that_outlive_the_leader(
    tmp_path: Path, cleanup: list[int]
) -> None:
    """A web command run through `sh -c` whose server ignores (or is slow to honour) SIGTERM:
    the shell dies at once, the server does not. stop() must not report success while a
    process of the group is still running (and still holding the port)."""
    script = "(trap '' TERM; exec sleep 30) & echo $! > child.pid; wait"
    proc, handle = spawn(["/bin/sh", "-c", script], tmp_path, cleanup)
    assert wait_for(
        lambda: (
            (tmp_path / "child.pid").is_file()
            and (tmp_path / "child.pid").read_text().strip() != ""
        )
    )
    child = int((tmp_path / "child.pid").read_text())
    time.sleep(0.2)
    result = procs.stop(handle, grace=0.3)
    time.sleep(0.1)
    assert not procs.pid_alive(child), (
        f"stop() returned {result!r} but pid {child} of the group is still running"
    )
    assert not group_alive(proc.pid)


def test_stop_when_not_running(tmp_path: Path, cleanup: list[int]) -> None:
    proc, handle = spawn(["true"], tmp_path, cleanup)
    proc.wait(timeout=10)
    assert procs.stop(handle, grace=0.2) == "not running"


def test_stop_does_not_kill_a_process_that_reused_the_pid() -> None:
    """A handle whose start time does not match is someone else's process: leave it alone."""
    victim = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        real = procs.start_time(victim.pid)
        assert real is not None
        stale = ProcHandle(victim.pid, real - 1)
        assert procs.stop(stale, grace=0.2) == "not running"
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


# -- ports ---------------------------------------------------------------------------------------


def test_port_free_with_a_real_listener() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        assert procs.port_free(port) is False
    finally:
        server.close()
    assert procs.port_free(port) is True


def test_port_busy_when_bound_on_all_interfaces() -> None:
    server = socket.socket()
    server.bind(("0.0.0.0", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        assert procs.port_free(port) is False
    finally:
        server.close()


def test_port_free_after_a_connection_was_served() -> None:
    """A closed server leaves TIME_WAIT sockets behind; the port is still free to bind."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # server side closes first -> TIME_WAIT on the server's port
    client.close()
    server.close()
    assert procs.port_free(port) is True


def test_wait_port_free(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        started = time.monotonic()
        assert procs.wait_port_free(port, timeout=0.3) is False
        assert time.monotonic() - started < 2.0
    finally:
        server.close()
    assert procs.wait_port_free(port, timeout=1.0) is True
