"""The local provider: each environment is a folder, each release a detached process.

`.gonogo/local/<env>/` holds `releases/vN/` (the unpacked artifact), `app.db` (the
environment's SQLite database), `logs/vN.log` and `proc.json` (the running process).
A release replaces the previous one like a Heroku dyno restart: stop vN-1, start vN on the
environment's port. The artifact is the tracked tree at a git SHA, packed by `git archive`
into a tarball identified by its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gonogo import gitrepo, procfile, procs
from gonogo.errors import DeployFailed, GonogoError, NoGo
from gonogo.ledger.store import ArtifactRow, ReleaseRow, now_iso
from gonogo.migrations import alembic
from gonogo.migrations.pending import MigrationTarget, release_ini
from gonogo.plan import Plan, Step
from gonogo.providers.base import ActivateIntent, DeployIntent, EnvStatus, RecentLogs

if TYPE_CHECKING:
    from gonogo.context import Context
    from gonogo.executor import Run

# Environment variables a local release inherits from the user's shell; everything else
# comes from the release itself, as on a dyno, so the user's secrets never reach the app.
_INHERITED = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SYSTEMROOT")


class LocalProvider:
    name = "local"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # -- paths and state ---------------------------------------------------------------

    def env_dir(self, env: str) -> Path:
        return self.ctx.state_dir / "local" / env

    def release_dir(self, env: str, version: int) -> Path:
        return self.env_dir(env) / "releases" / f"v{version}"

    def artifact_path(self, digest: str) -> Path:
        return self.ctx.state_dir / "artifacts" / f"{digest.removeprefix('sha256:')}.tar"

    def database_url(self, env: str) -> str:
        """env's own SQLite file, or the URL in the variable named by database_url_env."""
        name = self.ctx.env(env).database_url_env
        if name is None:
            return f"sqlite:///{self.env_dir(env) / 'app.db'}"
        url = self.ctx.environ.get(name, "").strip()
        if not url:
            raise GonogoError(
                f"environments.{env}.database_url_env names {name}, which is not set; "
                f"export {name}=<database URL> (for example postgresql://user:pass@host/db)"
            )
        return url

    def database_revisions(self, env: str) -> list[str]:
        """alembic_version of env's database; [] when it does not exist yet (never creates it)."""
        url = self.database_url(env)
        if url.startswith("sqlite:///") and not (self.env_dir(env) / "app.db").is_file():
            return []
        return alembic.current_revisions(url)

    def port(self, env: str) -> int:
        port = self.ctx.env(env).port
        if port is None:
            raise GonogoError(f"environments.{env}.port is not set; the local provider needs it")
        return port

    def base_url(self, env: str) -> str:
        return self.ctx.env(env).url or f"http://127.0.0.1:{self.port(env)}"

    def _proc_file(self, env: str) -> Path:
        return self.env_dir(env) / "proc.json"

    def running(self, env: str) -> dict[str, Any] | None:
        """The recorded process of env if it is still alive."""
        path = self._proc_file(env)
        if not path.is_file():
            return None
        info: dict[str, Any] = json.loads(path.read_text())
        handle = procs.ProcHandle(int(info["pid"]), info.get("started"))
        return info if handle.alive() else None

    # -- planning (reads only) ---------------------------------------------------------

    def _web_command(self, sha: str) -> str:
        text = gitrepo.show(self.ctx.root, sha, "Procfile")
        return procfile.web_command(text, where=f"commit {sha[:7]}")

    def _check_port(self, env: str) -> None:
        port = self.port(env)
        if self.running(env) is None and not procs.port_free(port):
            raise GonogoError(
                f"port {port} of environment {env} is in use by another process; stop it or "
                f"change environments.{env}.port in {self.ctx.config_path.name}"
            )

    def _stop_step(self, env: str) -> list[Step]:
        live = self.running(env)
        if live is None:
            return []
        return [
            Step(
                "stop",
                f"stop v{live['version']} (pid {live['pid']})",
                {"env": env, "version": live["version"], "pid": live["pid"]},
            )
        ]

    def _start_step(self, env: str, version: int, sha: str, vars_: dict[str, str]) -> Step:
        command = self._web_command(sha)
        port = self.port(env)
        names = ", ".join(["PORT", "GIT_SHA", "DATABASE_URL", *sorted(vars_)])
        return Step(
            "start",
            f"start v{version}: `{command}` on 127.0.0.1:{port} with {names}",
            {"env": env, "version": version, "port": port, "command": command},
        )

    def plan_deploy(self, intent: DeployIntent) -> Plan:
        env, version = intent.env, intent.version
        self._check_port(env)
        if intent.reuse_artifact and not self.artifact_path(intent.reuse_artifact).is_file():
            raise NoGo(
                f"artifact {intent.reuse_artifact} verified on {intent.reuse_from} is gone from "
                f"{self._rel(self.artifact_path(intent.reuse_artifact))}; nothing was changed"
            )
        steps: list[Step] = []
        if intent.reuse_artifact:
            steps.append(
                Step(
                    "reuse-artifact",
                    f"reuse artifact {intent.reuse_artifact[:19]}… verified on {intent.reuse_from}",
                    {"digest": intent.reuse_artifact, "sha": intent.sha},
                )
            )
        else:
            steps.append(
                Step(
                    "pack",
                    f"pack {intent.sha[:7]} (git archive) into a tarball",
                    {"sha": intent.sha},
                )
            )
        steps.append(
            Step(
                "unpack",
                f"unpack it as {env} v{version} in {self._rel(self.release_dir(env, version))}",
                {"env": env, "version": version, "sha": intent.sha, "vars": intent.vars},
            )
        )
        steps += self._stop_step(env)
        steps.append(self._start_step(env, version, intent.sha, intent.vars))
        return Plan("deploy", env, tuple(steps))

    def plan_activate(self, intent: ActivateIntent) -> Plan:
        target = intent.target
        if not self.release_dir(intent.env, target.version).is_dir():
            raise GonogoError(
                f"{intent.env} {target.label}: its files are gone from "
                f"{self._rel(self.release_dir(intent.env, target.version))}"
            )
        self._check_port(intent.env)
        steps = self._stop_step(intent.env)
        steps.append(self._start_step(intent.env, target.version, target.sha, target.vars))
        return Plan("rollback", intent.env, tuple(steps))

    def migration_target(self, env: str, release: ReleaseRow) -> MigrationTarget:
        rel_dir = self.release_dir(env, release.version)
        where = f"{env} {release.label}"
        ini = release_ini(rel_dir, self.ctx.config.alembic_ini, where, self.ctx.config_path.name)
        return MigrationTarget(
            cwd=rel_dir,
            environ=self.process_env(env, release.version, release.sha, release.vars),
            database_url=self.database_url(env),
            ini=ini,
        )

    def plan_migrate(self, env: str, release: ReleaseRow) -> Plan:
        """One step per pending revision, so a failure stops at a known revision."""
        from gonogo.migrations.history import load_history, pending

        target = self.migration_target(env, release)
        todo = pending(load_history(target.cwd / target.ini), self.database_revisions(env))
        steps = tuple(
            Step(
                "migrate",
                f"alembic upgrade {rev} ({i}/{len(todo)}) with {release.label}'s migrations "
                f"against {env}'s database",
                {"env": env, "version": release.version, "config": target.ini, "revision": rev},
            )
            for i, rev in enumerate(todo, 1)
        )
        return Plan("migrate", env, steps)

    def plan_downgrade(
        self, env: str, release: ReleaseRow, undo: Sequence[tuple[str, str]]
    ) -> Plan:
        """One `alembic downgrade` per revision to undo, run with `release`'s migrations."""
        target = self.migration_target(env, release)
        steps = tuple(
            Step(
                "downgrade",
                f"alembic downgrade {to} (undo {rev}, {i}/{len(undo)}) with {release.label}'s "
                f"migrations against {env}'s database",
                {
                    "env": env,
                    "version": release.version,
                    "config": target.ini,
                    "revision": to,
                    "undo": rev,
                },
            )
            for i, (rev, to) in enumerate(undo, 1)
        )
        return Plan("rollback", env, steps)

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.ctx.root))
        except ValueError:
            return str(path)

    # -- performing --------------------------------------------------------------------

    def perform(self, step: Step, run: Run) -> dict[str, Any]:
        actions: dict[str, Callable[[dict[str, Any], Run], dict[str, Any]]] = {
            "pack": self._pack,
            "reuse-artifact": self._reuse,
            "unpack": self._unpack,
            "stop": self._stop,
            "start": self._start,
            "migrate": self._migrate,
            "downgrade": self._migrate,
        }
        return actions[step.action](step.params, run)

    def _pack(self, params: dict[str, Any], run: Run) -> dict[str, Any]:
        sha = params["sha"]
        store = self.ctx.state_dir / "artifacts"
        store.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=store, suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            gitrepo.archive(self.ctx.root, sha, tmp)
            digest = "sha256:" + _sha256(tmp)
            size = tmp.stat().st_size
            tmp.replace(self.artifact_path(digest))
        finally:
            tmp.unlink(missing_ok=True)
        self.ctx.ledger.add_artifact(
            ArtifactRow(
                digest=digest,
                sha=sha,
                kind="tarball",
                location=self._rel(self.artifact_path(digest)),
                size=size,
                created_at=now_iso(),
            ),
            actor=self.ctx.actor,
            run_id=run.id,
        )
        run.artifact = digest
        return {"digest": digest, "size": size}

    def _reuse(self, params: dict[str, Any], run: Run) -> dict[str, Any]:
        digest = params["digest"]
        path = self.artifact_path(digest)
        if not path.is_file() or "sha256:" + _sha256(path) != digest:
            raise NoGo(
                f"artifact {digest} is missing or altered at {self._rel(path)}; it is not the "
                "artifact that was verified, so nothing was changed"
            )
        run.artifact = digest
        return {"digest": digest}

    def _unpack(self, params: dict[str, Any], run: Run) -> dict[str, Any]:
        env, version = params["env"], params["version"]
        digest = run.artifact
        assert digest is not None
        dest = self.release_dir(env, version)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        with tarfile.open(self.artifact_path(digest)) as tar:
            tar.extractall(dest, filter="data")
        self.ctx.ledger.add_release(
            ReleaseRow(
                env=env,
                version=version,
                run_id=run.id,
                sha=params["sha"],
                artifact=digest,
                vars=params["vars"],
                state="pending",
                description=f"deploy {params['sha'][:7]}",
                created_at=now_iso(),
                verified_at=None,
                live_since=None,
            ),
            actor=self.ctx.actor,
        )
        return {"path": self._rel(dest), "digest": digest}

    def _stop(self, params: dict[str, Any], run: Run) -> dict[str, Any]:
        return {"result": self.stop(params["env"])}

    def stop(self, env: str) -> str:
        path = self._proc_file(env)
        if not path.is_file():
            return "not running"
        info = json.loads(path.read_text())
        child = self._children.pop(env, None)
        result = procs.stop(procs.ProcHandle(int(info["pid"]), info.get("started")))
        if child is not None:
            child.poll()
        path.unlink(missing_ok=True)
        procs.wait_port_free(int(info["port"]))
        return result

    def process_env(
        self, env: str, version: int, sha: str, vars_: dict[str, str]
    ) -> dict[str, str]:
        environ = {k: v for k in _INHERITED if (v := self.ctx.environ.get(k))}
        # The app's dependencies live beside gonogo's interpreter, as a buildpack would
        # install them next to the slug.
        bin_dir = str(Path(sys.executable).parent)
        environ["PATH"] = os.pathsep.join([bin_dir, self.ctx.environ.get("PATH", os.defpath)])
        environ.update(vars_)
        environ.update(
            {
                "PORT": str(self.port(env)),
                "HOST": "127.0.0.1",
                "GIT_SHA": sha,
                "DATABASE_URL": self.database_url(env),
                "GONOGO_ENV": env,
                "GONOGO_RELEASE": f"v{version}",
            }
        )
        return environ

    def _start(self, params: dict[str, Any], run: Run) -> dict[str, Any]:
        env, version = params["env"], params["version"]
        rel = self.ctx.ledger.release(env, version)
        assert rel is not None
        port = int(params["port"])
        if not procs.wait_port_free(port, timeout=5.0):
            raise DeployFailed(
                f"port {port} is still in use after stopping the previous release of {env}"
            )
        log = self.env_dir(env) / "logs" / f"v{version}.log"
        proc, handle = procs.spawn(
            ["/bin/sh", "-c", params["command"]],
            cwd=self.release_dir(env, version),
            env=self.process_env(env, version, rel.sha, rel.vars),
            log=log,
        )
        self._children[env] = proc
        self._proc_file(env).write_text(
            json.dumps(
                {
                    "pid": handle.pid,
                    "started": handle.started,
                    "version": version,
                    "port": port,
                    "since": now_iso(),
                    "log": self._rel(log),
                }
            )
        )
        self.ctx.ledger.set_live(env, version, actor=self.ctx.actor, run_id=run.id)
        return {"pid": handle.pid, "port": port, "log": self._rel(log)}

    def alive_check(self, env: str) -> Callable[[], bool | str] | None:
        info_path = self._proc_file(env)
        child = self._children.get(env)
        if not info_path.is_file():
            return lambda: "the release is not running"
        info = json.loads(info_path.read_text())
        handle = procs.ProcHandle(int(info["pid"]), info.get("started"))
        log = self.ctx.root / info["log"]

        def alive() -> bool | str:
            code = child.poll() if child is not None else None
            if code is not None or not handle.alive():
                how = f"exited with code {code}" if code is not None else "exited"
                tail = _last_line(log)
                return how + (f" (log: {tail})" if tail else "")
            return True

        return alive

    def _migrate(self, params: dict[str, Any], run: Run) -> dict[str, Any]:
        """`alembic upgrade REV` (step "migrate") or `alembic downgrade REV` ("downgrade")."""
        env, version = params["env"], params["version"]
        rel = self.ctx.ledger.release(env, version)
        assert rel is not None
        url = self.database_url(env)
        before = alembic.current_revisions(url)
        revision = params.get("revision", "head")
        verb = "downgrade" if "undo" in params else "upgrade"
        argv = (
            alembic.downgrade_argv(params["config"], revision)
            if verb == "downgrade"
            else alembic.upgrade_argv(params["config"], revision)
        )
        proc = subprocess.run(
            argv,
            cwd=self.release_dir(env, version),
            env=self.process_env(env, version, rel.sha, rel.vars),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        output = (proc.stdout + proc.stderr).strip()
        command = f"alembic -c {params['config']} {verb} {revision}"
        run.log(f"$ {command} (exit {proc.returncode})\n{output}")
        with (run.evidence.folder / "migrate.log").open("a", encoding="utf-8") as fh:
            fh.write(run.evidence.redactor.text(f"$ {command}\n{output}\n"))
        after = alembic.current_revisions(url)
        return {
            "ok": proc.returncode == 0,
            "exit_code": proc.returncode,
            "before": before,
            "after": after,
            "output_tail": output.splitlines()[-5:],
        }

    # -- observing ---------------------------------------------------------------------

    def preflight(self, env: str) -> None:
        return None  # a folder and a process on this machine: nothing remote to ask

    def platform_releases(self, env: str, limit: int) -> list[dict[str, Any]] | None:
        return None  # the releases folder is the ledger's; there is nothing else to map

    def recent_logs(self, env: str, lines: int) -> RecentLogs:
        """The last ``lines`` lines of the live release's log, ``logs/vN.log``."""
        release = self.ctx.ledger.live_release(env)
        if release is None:
            raise GonogoError(f"{env} has no live release, so no log to read")
        path = self.env_dir(env) / "logs" / f"{release.label}.log"
        try:
            tail = _tail(path, lines)
        except FileNotFoundError:
            raise GonogoError(f"{env} {release.label} has no log at {self._rel(path)}") from None
        except OSError as exc:
            raise GonogoError(
                f"cannot read {env} {release.label}'s log {self._rel(path)}: {exc.strerror or exc}"
            ) from None
        return RecentLogs(source=self._rel(path), lines=tail)

    def status(self, env: str) -> EnvStatus:
        info = self.running(env)
        if info is None:
            return EnvStatus(
                env, running=False, port=self.ctx.env(env).port, url=self.base_url(env)
            )
        return EnvStatus(
            env,
            running=True,
            pid=int(info["pid"]),
            port=int(info["port"]),
            version=int(info["version"]),
            url=self.base_url(env),
            detail={"since": info.get("since"), "log": info.get("log")},
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tail(path: Path, lines: int, *, max_bytes: int = 32 * 1024 * 1024) -> list[str]:
    """The last ``lines`` lines of a text file, read backwards in 64 KiB blocks until there
    are enough, or ``max_bytes`` were read (a log of endless lines cannot exhaust memory)."""
    if lines <= 0:
        return []
    block = 64 * 1024
    with path.open("rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        data = b""
        pos = end
        newlines = 0
        while pos > 0 and newlines <= lines and end - pos < max_bytes:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step)
            newlines += chunk.count(b"\n")
            data = chunk + data
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:]


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""
