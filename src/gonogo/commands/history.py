"""gonogo history [ENV]: releases, migrations, approvals, overrides, rollbacks and runs.

Newest first, who and when, read from the ledger's hash-chained events (the same record
`audit verify` checks), with filters: --since (a date, a timestamp, or a duration such as
`7d`), --sha (a prefix), --work-order (runs whose commit names it).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from gonogo.context import Context
from gonogo.errors import GonogoError
from gonogo.ledger.store import RunRow
from gonogo.output import short
from gonogo.result import Result

# The events a person asks "what happened" about; steps and locks are left to `audit export`.
TIMELINE = (
    "release.created",
    "release.live",
    "release.verified",
    "release.failed",
    "migration.approved",
    "migration.applied",
    "migration.failed",
    "migration.downgraded",
    "migration.downgrade_failed",
    "gate.override",
    "rollback",
    "rollback.automatic",
    "rollback.db",
    "run.finished",
)

_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> str:
    """An ISO timestamp from `2026-11-01`, `2026-11-01T10:00`, or a duration back from now."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        return (now - delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise GonogoError(
            f"--since {text!r}: give a date (2026-11-01), a time (2026-11-01T10:00) or a "
            "duration (90m, 24h, 7d, 2w)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _describe(kind: str, p: dict[str, Any], actor: str) -> str:
    """One line for a person; the payload stays in the JSON."""
    version = f"v{p['version']}" if "version" in p else ""
    texts = {
        "release.created": lambda: f"{version} created from {short(p.get('sha'))}",
        "release.live": lambda: f"{version} is live",
        "release.verified": lambda: f"{version} verified",
        "release.failed": lambda: f"{version} failed: {p.get('reason', '')}",
        "migration.approved": lambda: (
            f"approved {p.get('from')} → {p.get('to')} (sql {str(p.get('sql_sha256', ''))[:12]})"
        ),
        "migration.applied": lambda: f"migrated {p.get('from') or 'base'} → {p.get('to')}",
        "migration.failed": lambda: (
            f"migration failed at {p.get('from') or 'base'} (database at {p.get('to') or 'base'})"
        ),
        "migration.downgraded": lambda: f"downgraded {p.get('from')} → {p.get('to')}",
        "migration.downgrade_failed": lambda: (
            f"downgrade of {p.get('from')} failed (database at {p.get('to') or 'base'})"
        ),
        "gate.override": lambda: (
            f"{p.get('gate')} passed by {actor} for {p.get('command')}: "
            f"{p.get('reason')} (it said: {p.get('refusal')})"
        ),
        "rollback": lambda: (
            f"rolled back {p.get('from')} → {p.get('to')}"
            f"{'' if p.get('ok', True) else ' (verification failed)'}"
        ),
        "rollback.automatic": lambda: _automatic_rollback(p),
        "rollback.db": lambda: (
            f"database rolled back to {p.get('to')} (undid {', '.join(p.get('undone', []))})"
        ),
        "run.finished": lambda: (
            f"{p.get('status')} (exit {p.get('exit_code')}): {p.get('summary') or ''}"
        ),
    }
    return texts[kind]() if kind in texts else kind


def _automatic_rollback(p: dict[str, Any]) -> str:
    # The local provider records what failed and why; Heroku's rollback, the release it made.
    span = f"{p['from']} → {p.get('to')}" if p.get("from") else f"to {p.get('to')}"
    return (
        f"rolled back automatically {span}"
        + (f" after: {p['cause']}" if p.get("cause") else "")
        + (f" (Heroku release {p['heroku_release']})" if p.get("heroku_release") else "")
        + ("" if p.get("ok", True) else " (verification failed)")
    )


def _commit_messages(ctx: Context, shas: Iterable[str]) -> dict[str, str]:
    wanted = sorted({s for s in shas if s})
    if not wanted:
        return {}
    proc = subprocess.run(
        ["git", "-C", str(ctx.root), "show", "-s", "--format=%H%x00%B%x01", *wanted],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    messages: dict[str, str] = {}
    for chunk in proc.stdout.split("\x01"):
        sha, _, body = chunk.strip().partition("\x00")
        if sha:
            messages[sha] = body
    return messages


def _work_order_runs(ctx: Context, runs: list[RunRow], work_order: str) -> set[str]:
    """Runs whose commit message, or whose recorded gate verdicts, name the work order."""
    pattern = re.compile(rf"(?<![\w-]){re.escape(work_order)}(?![\w])", re.IGNORECASE)
    messages = _commit_messages(ctx, (r.sha for r in runs if r.sha))
    hits = {r.id for r in runs if r.sha and pattern.search(messages.get(r.sha, ""))}
    for r in runs:
        if r.id in hits:
            continue
        for ev in ctx.ledger.events(run_id=r.id, kind="run.finished"):
            if pattern.search(ev["payload"]):
                hits.add(r.id)
    return hits


def history(
    ctx: Context,
    env: str | None = None,
    *,
    limit: int = 50,
    since: str | None = None,
    sha: str | None = None,
    work_order: str | None = None,
) -> Result:
    from gonogo.commands._run_state import shown_status

    if env is not None:
        ctx.env(env)
    since_ts = parse_since(since) if since else None
    all_runs = ctx.ledger.runs(env, limit=100_000)
    runs_by_id = {r.id: r for r in all_runs}
    keep_runs = set(runs_by_id)
    if sha:
        keep_runs = {r.id for r in all_runs if r.sha and r.sha.startswith(sha.lower())}
    if work_order:
        keep_runs &= _work_order_runs(ctx, all_runs, work_order)
    filtered = sha is not None or work_order is not None

    entries: list[dict[str, Any]] = []
    for ev in reversed(ctx.ledger.events(env=env)):
        if ev["kind"] not in TIMELINE or (since_ts and ev["ts"] < since_ts):
            continue
        if filtered and ev["run_id"] not in keep_runs:
            continue
        payload = json.loads(ev["payload"]) if ev["payload"] else {}
        run = runs_by_id.get(ev["run_id"] or "")
        entries.append(
            {
                "ts": ev["ts"],
                "kind": ev["kind"],
                "env": ev["env"],
                "actor": ev["actor"],
                "run_id": ev["run_id"],
                "command": run.command if run else None,
                "sha": payload.get("sha") or (run.sha if run else None),
                "text": _describe(ev["kind"], payload, ev["actor"]),
                "payload": payload,
            }
        )
        if len(entries) >= limit:
            break

    runs = [
        r for r in all_runs if r.id in keep_runs and (since_ts is None or r.started_at >= since_ts)
    ][:limit]
    origins = _origins(ctx, env)
    rows: list[dict[str, Any]] = [
        {
            "run_id": r.id,
            "command": r.command,
            "env": r.env,
            # A run the ledger calls running whose process is gone is shown as crashed.
            "status": shown_status(ctx, r),
            "exit_code": r.exit_code,
            "sha": r.sha,
            "actor": r.actor,
            "host": r.host,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "summary": r.summary,
            "evidence": r.evidence,
            "origin": origins.get(r.id),
        }
        for r in runs
    ]
    envs = [env] if env else list(ctx.config.environments)
    rels: list[dict[str, Any]] = [
        {
            "env": r.env,
            "release": r.label,
            "sha": r.sha,
            "artifact": r.artifact,
            "state": r.state,
            "created_at": r.created_at,
            "verified_at": r.verified_at,
            "run_id": r.run_id,
        }
        for name in envs
        for r in ctx.ledger.releases(name)
        if (not filtered or r.run_id in keep_runs)
        and (since_ts is None or r.created_at >= since_ts)
    ]
    overrides = [
        {**e["payload"], "by": e["actor"], "run_id": e["run_id"], "ts": e["ts"]}
        for e in entries
        if e["kind"] == "gate.override"
    ]
    _print(ctx, env, entries, rels)
    return Result(
        0,
        "",
        {
            "command": "history",
            "env": env,
            "filters": {"since": since_ts, "sha": sha, "work_order": work_order},
            "entries": entries,
            "runs": rows,
            "releases": rels,
            "overrides": overrides,
        },
    )


def _origins(ctx: Context, env: str | None) -> dict[str, Any]:
    """Where each run ran (a CI run or a person's machine), from its run.started event."""
    found: dict[str, Any] = {}
    for ev in ctx.ledger.events(kind="run.started", env=env):
        payload = json.loads(ev["payload"]) if ev["payload"] else {}
        if ev["run_id"] and payload.get("origin"):
            found[ev["run_id"]] = payload["origin"]
    return found


def _print(
    ctx: Context, env: str | None, entries: list[dict[str, Any]], rels: list[dict[str, Any]]
) -> None:
    ctx.out.line(f"{env or 'all environments'}: releases")
    for rel in rels:
        verified = "verified" if rel["verified_at"] else "unverified"
        where = "" if env else f"{rel['env']:<12} "
        ctx.out.line(
            f"  {where}{rel['release']:<5} {short(rel['sha'])} {rel['state']:<8} "
            f"{verified:<10} {str(rel['created_at'])[:19]}  {rel['artifact'][:19]}"
        )
    ctx.out.line(f"{env or 'all environments'}: what happened (newest first)")
    for e in entries:
        where = "" if env else f"{e['env'] or '-':<12} "
        ctx.out.line(f"  {e['ts'][:19]} {where}{e['actor']:<12} {e['text']}")
