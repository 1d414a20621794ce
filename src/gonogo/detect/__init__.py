"""The implicit-migration detector: would releasing or booting this app change the schema?

`scan(root)` reads (never runs) the places a deploy executes commands by itself — Procfile,
heroku.yml, app.json, Dockerfile CMD / ENTRYPOINT / RUN, the scripts they call, and the
Python start-up code of the web process — and reports each path to a migration as a
`Detection` with its file:line, what would run and why. Files that cannot be read or parsed
are listed in `problems`: the gate turns them into NO-GO, never GO.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from gonogo.detect import app_json, dockerfile, heroku_yml, procfile
from gonogo.detect._base import Ctx, Detection, EnvVal, Repo

__all__ = ["Detection", "ScanResult", "scan"]


@dataclass(frozen=True)
class ScanResult:
    findings: tuple[Detection, ...]
    examined: tuple[str, ...]  # files read, repo-relative
    problems: tuple[str, ...]  # "<file>: <reason>" for files that could not be read / parsed

    @property
    def implicit(self) -> bool:
        return bool(self.findings)


def _configured_dockerfile(ctx: Ctx) -> str | None:
    if not ctx.repo.is_file("gonogo.toml"):
        return None
    text = ctx.repo.read("gonogo.toml")
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None  # `gonogo config validate` reports it
    build = data.get("build")
    value = build.get("dockerfile") if isinstance(build, dict) else None
    return Repo.norm(value) if isinstance(value, str) else None


def scan(root: Path, *, environ: Mapping[str, str] | None = None) -> ScanResult:
    """Scan the repository at ROOT for migrations that would run implicitly.

    ENVIRON: variables the target environment is known to set (for example the
    `[environments.X].vars` of gonogo.toml); they override image ENV defaults, as Heroku
    config vars do. Without it, guards are decided from the defaults in the repository.
    """
    ctx = Ctx(Repo(Path(root)))
    ctx.overlay = {
        key: EnvVal(value, "set in the environment's configuration")
        for key, value in (environ or {}).items()
    }
    _scan_all(ctx)
    findings = sorted(ctx.out.findings.values(), key=lambda d: (d.file, d.line))
    return ScanResult(
        tuple(findings),
        tuple(dict.fromkeys(ctx.repo.examined)),
        tuple(ctx.repo.problems),
    )


def _guarded(ctx: Ctx, what: str, step: Callable[[], object]) -> object:
    """Run one scanner; a detector bug becomes a problem (NO-GO), never a traceback."""
    try:
        return step()
    except Exception as exc:  # any failure must surface as a problem
        ctx.repo.problems.append(
            f"{what}: internal error while scanning ({type(exc).__name__}: {exc}); "
            "the result is incomplete"
        )
        return None


def _scan_all(ctx: Ctx) -> None:
    dockerfiles: list[str] = []
    if ctx.repo.is_file("Dockerfile"):
        dockerfiles.append("Dockerfile")
    # Procfile (buildpack slug / the local provider): no image ENV applies there.
    _guarded(ctx, "Procfile", lambda: procfile.scan(ctx))
    _guarded(ctx, ".profile / bin/*_compile", lambda: procfile.scan_buildpack_hooks(ctx))
    referenced = _guarded(ctx, "heroku.yml", lambda: heroku_yml.scan(ctx))
    for rel in referenced if isinstance(referenced, list) else []:
        if rel not in dockerfiles:
            dockerfiles.append(rel)
    _guarded(ctx, "app.json", lambda: app_json.scan(ctx))
    configured = _configured_dockerfile(ctx)
    if configured and configured not in dockerfiles and ctx.repo.is_file(configured):
        dockerfiles.append(configured)
    for rel in dockerfiles:
        df = _guarded(ctx, rel, partial(dockerfile.load, ctx, rel))
        if isinstance(df, dockerfile.Dockerfile):
            _guarded(ctx, rel, partial(dockerfile.scan_runs, ctx, df))
            _guarded(ctx, rel, partial(dockerfile.scan_entry, ctx, df))
