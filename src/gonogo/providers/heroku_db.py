"""The heroku provider's database side: where migrations are read, and how they run.

Reading (status, plan, approve, lint, rehearse) needs the release's files and the app's
database: the release's commit is unpacked from git into
`.gonogo/heroku/<env>/releases/<sha>/` (once), and the database URL is the app's
DATABASE_URL config var, held in memory only and redacted wherever it could be written.

Applying runs the configured command (`migrate_command`, `downgrade_command`) in a detached
one-off dyno, one per revision, and reads the dyno's output and its real exit status from
a log session. Exit 0 is success; any other status, or none by `migrate_timeout` (the
status is then unknown), is a failure.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gonogo import gitrepo
from gonogo.errors import GonogoError
from gonogo.migrations.alembic import current_revisions
from gonogo.migrations.pending import MigrationTarget, release_ini
from gonogo.output import short

if TYPE_CHECKING:
    from gonogo.executor import Run
    from gonogo.ledger.store import ReleaseRow
    from gonogo.providers.heroku_site import Site

_INHERITED = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME", "SYSTEMROOT")
_DONE = ".gonogo-complete"


def release_dir(site: Site, sha: str) -> Path:
    return site.ctx.state_dir / "heroku" / site.env / "releases" / sha


def release_files(site: Site, release: ReleaseRow) -> Path:
    """The release's commit unpacked (git archive), made once and reused."""
    dest = release_dir(site, release.sha)
    if (dest / _DONE).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest.parent))
    try:
        archive = work / "release.tar"
        try:
            gitrepo.archive(site.ctx.root, release.sha, archive)
        except GonogoError as exc:
            raise GonogoError(
                f"{site.env} {release.label} is commit {short(release.sha)}, which this "
                f"repository cannot archive ({exc.message}); fetch it (git fetch) first"
            ) from None
        tree = work / "tree"
        tree.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        (tree / _DONE).write_text(release.sha + "\n")
        if dest.exists():
            shutil.rmtree(dest)  # an earlier unpack that did not finish
        tree.replace(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def fetch_database_url(site: Site) -> str:
    """The app's DATABASE_URL config var (a secret: never logged or recorded)."""
    with site.api() as api:
        config = api.config_vars(site.app)
    url = config.get("DATABASE_URL", "").strip()
    if not url:
        raise GonogoError(
            f"Heroku app {site.app} ({site.env}) has no DATABASE_URL config var, so gonogo "
            "cannot read its migration revision; attach a database (heroku addons:create "
            f"heroku-postgresql -a {site.app})"
        )
    return url


def url_secrets(url: str) -> list[str]:
    """The URL and its password, for a redactor."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return [url, *([password] if password else [])]


def environ_for(site: Site, release: ReleaseRow, database_url: str) -> dict[str, str]:
    """What a local alembic run (offline SQL, rehearsal) gets: the release's variables and
    the app's database, plus this interpreter's bin directory first on PATH."""
    environ = {k: v for k in _INHERITED if (v := site.ctx.environ.get(k))}
    bin_dir = str(Path(sys.executable).parent)
    environ["PATH"] = os.pathsep.join([bin_dir, site.ctx.environ.get("PATH", os.defpath)])
    environ.update(release.vars)
    environ.update(
        {
            "DATABASE_URL": database_url,
            "GIT_SHA": release.sha,
            "GONOGO_ENV": site.env,
            "GONOGO_RELEASE": release.label,
        }
    )
    return environ


def migration_target(site: Site, release: ReleaseRow, database_url: str) -> MigrationTarget:
    files = release_files(site, release)
    where = f"{site.env} {release.label} (commit {short(release.sha)})"
    ini = release_ini(files, site.ctx.config.alembic_ini, where, site.ctx.config_path.name)
    return MigrationTarget(
        cwd=files,
        environ=environ_for(site, release, database_url),
        database_url=database_url,
        ini=ini,
    )


def command_for(site: Site, template: str, revision: str) -> str:
    return template.format(revision=revision, config=site.ctx.config.alembic_ini)


def _own_output(line: str, dyno: str | None) -> str | None:
    """`<time> app[run.1234]: text` → `text`, for the dyno's own lines only."""
    if dyno is None:
        return None
    marker = f" app[{dyno}]: "
    index = line.find(marker)
    return line[index + len(marker) :] if index >= 0 else None


def run_in_dyno(site: Site, params: dict[str, Any], run: Run, database_url: str) -> dict[str, Any]:
    """One migration (or downgrade) step in a detached one-off dyno; see the module doc."""
    site.protect(run, *url_secrets(database_url))
    redact = run.evidence.redactor.text
    command = params["command"]
    timeout = site.settings.migrate_timeout
    before = current_revisions(database_url)
    lines: list[str] = []
    status: int | None = None
    problem: str | None = None
    dyno: str | None = None
    with (run.evidence.folder / "migrate.log").open("a", encoding="utf-8") as fh:
        fh.write(redact(f"$ {command}   # detached one-off dyno of {site.app}\n"))
        fh.flush()
        try:
            with site.api() as api:
                started = api.run_detached(site.app, command)
                dyno = started.name
                fh.write(f"# {dyno} started (release v{started.release_version})\n")
                fh.flush()
                run.log(f"{dyno}: `{command}` started on {site.app}")

                def on_line(line: str) -> None:
                    lines.append(line)
                    fh.write(redact(line) + "\n")
                    fh.flush()
                    run.log(line)

                status = api.dyno_exit_status(site.app, dyno, deadline_s=timeout, on_line=on_line)
        except GonogoError as exc:
            from gonogo.heroku import HerokuOutcomeUnknown

            if dyno:
                problem = f"unknown exit status: {exc.message}"
            elif isinstance(exc, HerokuOutcomeUnknown):
                # It may be running now: starting another would run the migration twice.
                problem = (
                    "whether the one-off dyno started is unknown (it was not started twice): "
                    f"{exc.message}; then `gonogo migrate {site.env} status` before applying "
                    "again"
                )
            else:
                problem = f"the dyno did not start: {exc.message}"
        if status is None and problem is None:
            problem = (
                f"unknown exit status: no 'Process exited' line for {dyno} within "
                f"{timeout:g}s (the dyno may still be running: heroku ps -a {site.app})"
            )
        fh.write(f"# exit status: {status if status is not None else 'unknown'}\n")
    try:
        after = current_revisions(database_url)
    except GonogoError as exc:
        after = []
        problem = (problem + "; " if problem else "") + exc.message
    own = [text for line in lines if (text := _own_output(line, dyno)) is not None]
    tail = own[-5:] + ([problem] if problem else [])
    return {
        "ok": status == 0 and problem is None,
        "exit_code": status,
        "before": before,
        "after": after,
        "output_tail": [redact(t) for t in tail],
        "dyno": dyno,
    }
