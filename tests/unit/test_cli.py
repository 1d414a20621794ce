"""The command line: parsing, word order, --version, lazy imports, errors as one line."""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gonogo import __version__, cli
from gonogo.errors import GonogoError, NoGo
from gonogo.output import Output

HEAVY = ("sqlalchemy", "pydantic", "httpx", "alembic")

CONFIG = """\
[project]
name = "cli-test"

[environments.staging]
provider = "local"
port = 18201
"""


def py(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GONOGO_")}
    return subprocess.run(
        [sys.executable, *args, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "gonogo.toml").write_text(CONFIG)
    monkeypatch.setenv("GONOGO_ACTOR", "tester")
    monkeypatch.delenv("GONOGO_LEDGER_URL", raising=False)
    return tmp_path


# -- --version and --help ------------------------------------------------------------------------


def test_version_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"gonogo {__version__}\n"


def test_version_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gonogo", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"gonogo {__version__}"


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["deploy", "--help"], ["migrate", "staging", "apply", "--help"], ["--version"]],
)
def test_help_and_version_import_nothing_heavy(argv: list[str]) -> None:
    code = (
        "import sys, json\n"
        "from gonogo import cli\n"
        "try:\n"
        f"    cli.main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})\n"
        "sys.stderr.write('\\nHEAVY=' + json.dumps(heavy) + '\\n')\n"
    )
    proc = py(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout  # help or version was printed
    marker = [line for line in proc.stderr.splitlines() if line.startswith("HEAVY=")]
    assert marker, proc.stderr
    assert json.loads(marker[-1].removeprefix("HEAVY=")) == []


def test_help_via_importtime_loads_nothing_heavy() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gonogo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert "deploy" in proc.stdout and "exit codes" in proc.stdout
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in (
        "deploy",
        "verify",
        "rollback",
        "migrate",
        "status",
        "down",
        "unlock",
        "history",
        "config",
        "demo",
    ):
        assert command in out


def test_no_command_prints_help_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 1
    assert "usage: gonogo" in capsys.readouterr().out


# -- parsing -------------------------------------------------------------------------------------


def test_unknown_command_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code not in (0, None)
    assert "frobnicate" in capsys.readouterr().err


def test_usage_errors_exit_1_as_designed(capsys: pytest.CaptureFixture[str]) -> None:
    """DESIGN.md: exit 1 is 'usage or configuration error'; 2 means NO-GO (a gate refused).
    A typo must not look like a NO-GO to a script or CI job."""
    codes = {}
    for argv in (
        ["frobnicate"],
        ["deploy"],
        ["deploy", "staging", "--bogus"],
        ["unlock", "staging"],
    ):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        codes[" ".join(argv)] = info.value.code
    capsys.readouterr()
    assert codes == dict.fromkeys(codes, 1)


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["migrate", "staging", "apply"], ["migrate", "apply", "staging"]),
        (
            ["migrate", "production", "apply", "--dry-run", "--confirm", "app"],
            ["migrate", "apply", "production", "--dry-run", "--confirm", "app"],
        ),
        (["migrate", "apply", "staging"], ["migrate", "apply", "staging"]),
        (["migrate", "apply", "apply"], ["migrate", "apply", "apply"]),
        (["deploy", "staging", "apply"], ["deploy", "staging", "apply"]),
        (["migrate", "staging"], ["migrate", "staging"]),
    ],
)
def test_normalise_migrate_word_order(argv: list[str], expected: list[str]) -> None:
    assert cli._normalise(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [["migrate", "staging", "apply", "--dry-run"], ["migrate", "apply", "staging", "--dry-run"]],
)
def test_migrate_both_word_orders_parse_the_same(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(cli._normalise(argv))
    assert args.command == "migrate"
    assert args.migrate_command == "apply"
    assert args.env == "staging"
    assert args.dry_run is True
    func, kwargs = args.handler.bind(args)
    assert func.__module__ == "gonogo.commands.migrate" and func.__name__ == "apply"
    assert kwargs["env"] == "staging" and kwargs["dry_run"] is True


def test_deploy_arguments() -> None:
    args = cli.build_parser().parse_args(
        ["deploy", "production", "--sha", "abc1234", "--confirm", "acme", "--json", "-C", "/x"]
    )
    assert (args.env, args.sha, args.confirm, args.json) == ("production", "abc1234", "acme", True)
    assert args.dry_run is False
    assert args.directory == Path("/x")
    func, kwargs = args.handler.bind(args)
    assert func.__name__ == "deploy"
    assert (kwargs["env"], kwargs["ref"], kwargs["confirm"]) == ("production", "abc1234", "acme")


def test_unlock_requires_reason_and_history_limit_is_int() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["unlock", "staging", "--reason", "crashed", "--force"])
    assert (args.env, args.reason, args.force) == ("staging", "crashed", True)
    assert parser.parse_args(["history", "staging", "--limit", "5"]).limit == 5
    assert parser.parse_args(["status"]).env is None
    validate = parser.parse_args(["config", "validate"])
    assert validate.handler.bind(validate)[0].__module__ == "gonogo.commands.config_cmd"


# Every subcommand with one typical command line: the options argparse produces must bind to
# the parameters of the command function it calls, so a renamed option or parameter fails here
# rather than as an internal error in a user's hands.
EVERY_COMMAND = [
    ["deploy", "staging", "--sha", "abc", "--override", "clean-tree", "--reason", "r"],
    ["ship", "staging", "--dry-run"],
    ["check", "staging", "--gate", "clean-tree", "--sha", "abc"],
    ["verify", "staging"],
    ["rollback", "staging", "--to", "v1", "--db", "0001", "--accept-data-loss", "--reason", "r"],
    ["migrate", "staging", "apply", "--dry-run"],
    ["migrate", "staging", "approve", "--by", "ann", "--note", "n"],
    ["migrate", "staging", "status"],
    ["migrate", "staging", "plan"],
    ["migrate", "staging", "rehearse"],
    ["migrate", "staging", "lint", "--pg-version", "16"],
    ["status"],
    ["down", "staging"],
    ["unlock", "staging", "--reason", "r", "--force"],
    ["history", "staging", "--since", "7d", "--sha", "abc", "--work-order", "WO-1"],
    ["build", "staging", "--sha", "abc", "--platform", "linux/amd64", "--builder", "buildah"],
    ["publish", "production", "--tag", "v{version}", "--sha", "abc", "--dry-run"],
    ["certify", "staging", "--output", "c.json"],
    ["audit", "verify"],
    ["audit", "export", "--format", "csv"],
    ["config", "validate"],
    ["releases", "staging", "--limit", "5"],
]


@pytest.mark.parametrize("argv", EVERY_COMMAND, ids=lambda argv: " ".join(argv[:3]))
def test_every_command_binds_its_options_to_its_function(argv: list[str]) -> None:
    import inspect

    args = cli.build_parser().parse_args(cli._normalise(argv))
    func, kwargs = args.handler.bind(args)
    inspect.signature(func).bind(object(), **kwargs)  # raises if a parameter is left out
    for option, value in {"sha": "abc", "reason": "r", "gate": ["clean-tree"]}.items():
        if f"--{option}" in argv:
            assert value in kwargs.values(), f"{option} did not reach {func.__name__}"


def test_every_subcommand_is_covered_by_the_binding_test() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    covered = {argv[0] for argv in EVERY_COMMAND}
    assert set(sub.choices) - covered == {"demo"}  # demo needs no project: no handler


# -- errors from handlers ------------------------------------------------------------------------


def test_missing_config_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["status", "-C", str(tmp_path)])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gonogo: ")
    assert "gonogo.toml" in lines[0]
    assert "Traceback" not in captured.err


def test_missing_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["history", "staging", "-C", str(tmp_path), "--json"])
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 1
    assert "gonogo.toml" in doc["error"]


def test_unknown_environment_is_exit_1(project: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = cli.main(["unlock", "nowhere", "--reason", "x", "-C", str(project)])
    assert code == 1
    err = capsys.readouterr().err
    assert "nowhere" in err and "staging" in err


def test_unlock_through_the_cli(project: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from gonogo.ledger import Ledger
    from gonogo.ledger.store import LockRow, now_iso

    assert cli.main(["unlock", "staging", "--reason", "check", "-C", str(project)]) == 0
    assert "not locked" in capsys.readouterr().out

    holder = subprocess.Popen(["sleep", "30"])
    try:
        led = Ledger.open(None, project / ".gonogo" / "ledger.db")
        led.try_lock(
            LockRow(
                env="staging",
                run_id="r-other",
                command="deploy",
                holder="alice",
                host=socket.gethostname(),
                pid=holder.pid,
                acquired_at=now_iso(),
                heartbeat_at=now_iso(),
            ),
            actor="alice",
        )
        code = cli.main(["unlock", "staging", "--reason", "check", "-C", str(project)])
        assert code == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1
        assert err[0].startswith("gonogo: NO-GO: ")
        assert "r-other" in err[0]
        assert led.lock_holder("staging") is not None

        code = cli.main(
            [
                "unlock",
                "staging",
                "--reason",
                "holder hung",
                "--force",
                "-C",
                str(project),
                "--json",
            ]
        )
        assert code == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["exit_code"] == 0
        assert doc["cleared"]["run_id"] == "r-other"
        assert led.lock_holder("staging") is None
        forced = led.events()[-1]
        assert forced["kind"] == "lock.forced" and forced["actor"] == "tester"
        assert json.loads(forced["payload"])["reason"] == "holder hung"
        led.close()
    finally:
        holder.kill()
        holder.wait()


def run_handler(project: Path, handler, json_mode: bool = False) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(json_mode=json_mode, stdout=stdout, stderr=stderr)
    args = argparse.Namespace(directory=project, handler=handler, json=json_mode)
    code = cli.run(args, out)
    return code, stdout.getvalue(), stderr.getvalue()


def test_gonogo_error_in_handler_prints_one_line_with_its_code(project: Path) -> None:
    def handler(ctx, a):  # type: ignore[no-untyped-def]
        raise GonogoError("fix the thing in gonogo.toml")

    code, out, err = run_handler(project, handler)
    assert code == 1
    assert out == ""
    assert err == "gonogo: fix the thing in gonogo.toml\n"


def test_nogo_in_handler_exits_2_with_prefix(project: Path) -> None:
    def handler(ctx, a):  # type: ignore[no-untyped-def]
        raise NoGo("prod-guard refused", details={"gate": "prod-guard"})

    code, _, err = run_handler(project, handler)
    assert code == 2
    assert err == "gonogo: NO-GO: prod-guard refused\n"
    code, out, err = run_handler(project, handler, json_mode=True)
    assert code == 2
    assert err == ""
    assert json.loads(out) == {"error": "prod-guard refused", "exit_code": 2, "gate": "prod-guard"}


def test_interrupt_in_handler_exits_130(project: Path) -> None:
    def handler(ctx, a):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    code, _, err = run_handler(project, handler)
    assert code == 130
    assert len(err.splitlines()) == 1 and "interrupted" in err


def test_crash_in_handler_exits_4_with_crash_report(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes = tmp_path / "crashes"
    crashes.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(crashes))

    def handler(ctx, a):  # type: ignore[no-untyped-def]
        raise RuntimeError("unexpected state")

    code, _out, err = run_handler(project, handler)
    assert code == 4
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert "RuntimeError: unexpected state" in err
    (report,) = crashes.iterdir()
    assert str(report) in err
    assert "Traceback" in report.read_text()
    assert "unexpected state" in report.read_text()


def test_successful_handler_prints_message_or_document(project: Path) -> None:
    from gonogo.result import Result

    def handler(ctx, a):  # type: ignore[no-untyped-def]
        assert ctx.root == project
        return Result(0, "all fine", {"n": 1})

    code, out, err = run_handler(project, handler)
    assert (code, out, err) == (0, "all fine\n", "")
    code, out, err = run_handler(project, handler, json_mode=True)
    assert code == 0
    assert json.loads(out) == {"n": 1, "exit_code": 0, "message": "all fine"}
