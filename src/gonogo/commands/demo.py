"""gonogo demo: the playbook end to end on the bundled example app, on this machine.

It builds a throwaway git repository of the example app with a staging and a protected
production environment, then drives the real commands through the Python API: deploy,
explicit migration, verification, a refused and then a guarded promotion, and a broken
release caught and rolled back automatically.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gonogo.errors import EXIT_FAILED, GonogoError
from gonogo.output import Output
from gonogo.result import Result

GUARD = {"ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "YES"}
BREAKAGE = '\nraise RuntimeError("deliberately broken release (gonogo demo)")\n'

CONFIG = """\
# gonogo.toml written by `gonogo demo`: the playbook's two environments, run locally.
[project]
name = "webapp-demo"
work_order = {{ pattern = "WO-[0-9]+" }}   # in-scope: every release names its work order

[migrations]
tool = "alembic"
config = "alembic.ini"

[verify]
deadline = "20s"        # the playbook waits 5 x 30s; probes here back off from 100 ms
probes = [
  {{ name = "health",  path = "/api/health",    status = 200, json = {{ status = "healthy" }} }},
  {{ name = "csrf",    path = "/api/auth/csrf", status = 200, cookie = "csrf_token" }},
  {{ name = "version", path = "/api/version",   status = 200, json = {{ gitSha = "{{sha}}" }} }},
]

[environments.staging]
provider = "local"
port = {staging_port}
branches = ["main"]
vars = {{ NODE_ENV = "staging" }}

[environments.production]
provider = "local"
port = {production_port}
branches = ["main"]
vars = {{ NODE_ENV = "production", ENV = "prod" }}
protected = true             # ALLOW_PROD=1 and ALLOW_PROD_DEPLOY=YES, or --confirm production
promote_from = "staging"     # the same artifact must be verified on staging first
"""


def example_app_dir() -> Path:
    """The example app: inside the installed package, or in the source checkout."""
    packaged = Path(__file__).resolve().parent.parent / "_examples" / "webapp"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parents[3] / "examples" / "webapp"
    if source.is_dir():
        return source
    raise GonogoError("the example web app is not installed with this copy of gonogo")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=gonogo demo",
            "-c",
            "user.email=demo@gonogo.invalid",
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0:
        raise GonogoError(f"demo: git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _check_requirements() -> None:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise GonogoError(
            f"the demo's example app needs {', '.join(missing)}: pip install 'gonogo[example]'"
        )


def make_workspace(workspace: Path | None) -> Path:
    if workspace is None:
        root = Path(tempfile.mkdtemp(prefix="gonogo-demo-"))
    else:
        root = workspace.resolve()
        if root.exists() and any(root.iterdir()):
            raise GonogoError(
                f"--workspace {workspace}: folder is not empty; give a new or empty folder"
            )
        root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        example_app_dir(),
        root,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", ".venv"),
    )
    (root / "gonogo.toml").write_text(
        CONFIG.format(staging_port=_free_port(), production_port=_free_port())
    )
    (root / ".gitignore").write_text(".gonogo/\n__pycache__/\n*.db\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "WO-1: example app")
    return root


@dataclass
class DemoStep:
    title: str
    command: str
    expect: int
    action: Callable[[], Result]


def demo(out: Output, *, workspace: Path | None = None, keep: bool = False) -> Result:
    from gonogo.commands import check, deploy, migrate, status, verify
    from gonogo.context import Context

    _check_requirements()
    started = time.monotonic()
    root = make_workspace(workspace)
    (root / ".gonogo").mkdir(exist_ok=True)
    detail_log = (root / ".gonogo" / "demo.log").open("w", encoding="utf-8")
    quiet = Output(json_mode=True, stdout=detail_log, stderr=detail_log)
    ctx = Context.load(root, out=quiet)
    base_environ = {**ctx.environ, "GONOGO_ACTOR": ctx.environ.get("GONOGO_ACTOR", "gonogo demo")}
    for name in GUARD:
        base_environ.pop(name, None)
    ctx.environ = base_environ
    guarded = {**base_environ, **GUARD}

    def with_guard(fn: Callable[[], Result]) -> Callable[[], Result]:
        def call() -> Result:
            ctx.environ = guarded
            try:
                return fn()
            finally:
                ctx.environ = base_environ

        return call

    def break_release() -> Result:
        main = root / "app" / "main.py"
        main.write_text(main.read_text() + BREAKAGE)
        _git(root, "commit", "-q", "-am", "WO-2: a release that crashes on boot")
        return deploy.deploy(ctx, "staging")

    steps = [
        DemoStep(
            "Staging's gates, as a checklist",
            "gonogo check staging",
            0,
            lambda: check.check(ctx, "staging"),
        ),
        DemoStep(
            "Deploy staging", "gonogo deploy staging", 0, lambda: deploy.deploy(ctx, "staging")
        ),
        DemoStep(
            "Approve exactly the pending migration SQL for staging",
            "gonogo migrate staging approve",
            0,
            lambda: migrate.approve(ctx, "staging", note="reviewed in the demo"),
        ),
        DemoStep(
            "Explicit migration on staging",
            "gonogo migrate staging apply",
            0,
            lambda: migrate.apply(ctx, "staging"),
        ),
        DemoStep(
            "Verify staging after the migration",
            "gonogo verify staging",
            0,
            lambda: verify.verify(ctx, "staging"),
        ),
        DemoStep(
            "Production without the guard is refused",
            "gonogo deploy production",
            2,
            lambda: deploy.deploy(ctx, "production"),
        ),
        DemoStep(
            "Promote the staging artifact to production",
            "ALLOW_PROD=1 ALLOW_PROD_DEPLOY=YES gonogo deploy production",
            0,
            with_guard(lambda: deploy.deploy(ctx, "production")),
        ),
        DemoStep(
            "Approve the same SQL for production (it was applied on staging)",
            "gonogo migrate production approve",
            0,
            lambda: migrate.approve(ctx, "production", note="same SQL as staging"),
        ),
        DemoStep(
            "Explicit migration on production",
            "ALLOW_PROD=1 ALLOW_PROD_DEPLOY=YES gonogo migrate production apply",
            0,
            with_guard(lambda: migrate.apply(ctx, "production")),
        ),
        DemoStep(
            "Verify production",
            "gonogo verify production",
            0,
            lambda: verify.verify(ctx, "production"),
        ),
        DemoStep(
            "A broken release is caught and rolled back", "gonogo deploy staging", 3, break_release
        ),
    ]
    out.line(f"gonogo demo in {root}")
    report: list[dict[str, Any]] = []
    failure: str | None = None
    try:
        for i, step in enumerate(steps, 1):
            t0 = time.monotonic()
            code, message, data = _outcome(step.action)
            ok = code == step.expect
            entry = {
                "step": i,
                "title": step.title,
                "command": step.command,
                "exit_code": code,
                "expected": step.expect,
                "ok": ok,
                "message": message,
                "evidence": str(data.get("evidence") or ""),
                "seconds": round(time.monotonic() - t0, 2),
            }
            report.append(entry)
            out.line(
                f"{'✔' if ok else '✘'} {i}. {step.title}  [{step.command} → exit {code}, "
                f"{entry['seconds']:.1f}s]"
            )
            out.line(f"     {message}")
            if not ok:
                failure = f"step {i} ({step.title}) exited {code}, expected {step.expect}"
                break
        final = status.status(ctx).data["environments"]
        for env in final:
            out.line(
                f"  {env['env']}: {env['release']} ({(env['sha'] or '')[:7]}) "
                f"{'running, health ' + str(env['health']) if env['running'] else 'stopped'}"
            )
    finally:
        if not keep:
            from gonogo.providers.registry import provider_for

            for env in ctx.config.environments:
                provider_for(ctx, env).stop(env)
        ctx.close()
        detail_log.close()
    seconds = round(time.monotonic() - started, 1)
    out.line(
        f"ledger: {root / '.gonogo' / 'ledger.db'}   history: gonogo -C {root} history staging"
    )
    out.line(f"detailed output of every command: {root / '.gonogo' / 'demo.log'}")
    if keep:
        out.line(
            f"apps left running; stop them with: gonogo -C {root} down staging && "
            f"gonogo -C {root} down production"
        )
    data = {
        "command": "demo",
        "workspace": str(root),
        "steps": report,
        "seconds": seconds,
        "kept_running": keep,
    }
    if failure:
        return Result(EXIT_FAILED, f"demo failed: {failure}", data)
    return Result(0, f"demo finished in {seconds}s: every step behaved as the playbook says", data)


def _outcome(action: Callable[[], Result]) -> tuple[int, str, dict[str, Any]]:
    try:
        result = action()
    except GonogoError as exc:
        return exc.exit_code, exc.message, exc.details
    return result.exit_code, result.message, result.data
