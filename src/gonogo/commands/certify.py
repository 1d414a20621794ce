"""gonogo certify ENV: the playbook's certify-autorisen, as checks and a signed attestation.

For the live release of ENV, each check is a step of one "certify" run (with the env lock)
and a verdict printed like a gate's:

``database``    the database is at the head of the release's migrations (verify's check);
``migrations``  on a throwaway copy: a second ``alembic upgrade head`` is a no-op, and
                stamp-back-one then ``upgrade head`` re-applies the head revision cleanly;
``probes``      every configured probe passes (as `gonogo verify`);
``version-sha`` the live app reports the release's git SHA (``/api/version`` gitSha);
``log-scan``    the release's recent log lines match none of ``[certify].log_patterns``
                (tracebacks, 5xx responses): counted, the first ones quoted, redacted.

Any NO-GO: exit 2 and no certificate is written; a certificate already at the path (an
older release's) is left as it is. All GO: a ``certification.issued`` ledger event, then
the certificate (an in-toto Statement, or a DSSE envelope when ``GONOGO_SIGNING_KEY`` is
set; see `gonogo.attest`), written atomically to ``[certify].output``
(default ``.release/<app>_certified``). ``gonogo certify --verify FILE`` checks one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gonogo import attest
from gonogo.commands._common import verify_live
from gonogo.context import Context
from gonogo.errors import EXIT_NOGO, DeployFailed, GonogoError, NoGo
from gonogo.executor import Run
from gonogo.ledger.store import ReleaseRow, now_iso
from gonogo.output import Output, mark, short
from gonogo.providers.base import Provider
from gonogo.providers.registry import provider_for
from gonogo.result import Result

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gonogo.probes import VerifyResult

VERSION_DEADLINE = 15.0  # seconds for reading the live version, retries included


@dataclass
class Check:
    """One certification check, reported like a gate verdict."""

    id: str
    verdict: str  # "GO", "NO-GO" or "SKIP"
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.verdict == "NO-GO"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "verdict": self.verdict, "reason": self.reason}


def certify(ctx: Context, env: str, *, output: str | None = None) -> Result:
    """Run every check on env's live release; on GO write and record the certificate."""
    cfg_env = ctx.env(env)
    key = _signing_key(ctx.environ)  # a bad key is a usage error before anything runs
    provider = provider_for(ctx, env)
    live = ctx.ledger.live_release(env)
    if live is None:
        raise GonogoError(f"{env} has no live release; run `gonogo deploy {env}` first")
    release: ReleaseRow = live
    app = cfg_env.app or ctx.config.project.name
    path = certificate_path(ctx, env, app, output)
    ctx.out.line(f"gonogo certify {env} {release.label} ({short(release.sha)})")
    started = now_iso()
    with Run(ctx, "certify", env, sha=release.sha, lock=True) as run:
        checks: list[Check] = []
        facts: dict[str, Any] = {}
        # In this order: the log scan comes last, so it also sees what the probes caused.
        plan: list[tuple[str, str, Callable[[], Check]]] = [
            (
                "database",
                f"{env}'s database at {release.label}'s head",
                lambda: _database_check(ctx, provider, env, release),
            ),
            (
                "migrations",
                "migration idempotence on a throwaway copy",
                lambda: _migrations_check(ctx, run, provider, env, release, checks[0]),
            ),
            (
                "probes",
                f"every probe of {release.label} passes",
                lambda: _probes_check(ctx, run, provider, env, release, facts),
            ),
            (
                "version-sha",
                f"the live version is {short(release.sha)}",
                lambda: _version_check(ctx, provider, env, release),
            ),
            (
                "log-scan",
                f"{release.label}'s recent logs are clean",
                lambda: _log_check(ctx, run, provider, env, release),
            ),
        ]
        for action, description, check in plan:
            checks.append(_step(ctx, run, action, description, check))
        data: dict[str, Any] = {
            "command": "certify",
            "env": env,
            "release": release.label,
            "sha": release.sha,
            "artifact": release.artifact,
            "run_id": run.id,
            "evidence": str(run.evidence.folder),
            "checks": [c.to_dict() for c in checks],
            "certificate": _display(ctx, path),
        }
        run.record["checks"] = [{**c.to_dict(), "detail": c.detail} for c in checks]
        run.evidence.write_json("certify.json", run.record["checks"])
        failed = [c for c in checks if c.failed]
        if failed:
            ids = ", ".join(c.id for c in failed)
            reasons = (
                failed[0].reason
                if len(failed) == 1
                else "; ".join(f"{c.id}: {c.reason}" for c in failed)
            )
            raise NoGo(
                f"NO-GO ({ids}): {reasons}; no certificate was written" + _left_alone(ctx, path),
                details={**data, "written": False},
            )
        # Verification has just stamped the release; the certificate shows it.
        stamped = ctx.ledger.live_release(env) or release
        predicate = _predicate(ctx, run, env, app, stamped, checks, facts, started)
        data.update(_issue(ctx, run, env, app, release, predicate, path, key))
        run.summary = (
            f"{env} {release.label} ({short(release.sha)}) certified: {_display(ctx, path)}"
            f"{' (signed)' if key is not None else ''}, ledger event #{data['ledger_event_seq']}"
        )
    return Result(0, run.summary, data)


def certificate_path(ctx: Context, env: str, app: str, output: str | None) -> Path:
    template = output or ctx.config.certify.output
    try:
        name = template.format(app=app, env=env, project=ctx.config.project.name)
    except (AttributeError, KeyError, IndexError, ValueError):
        raise GonogoError(
            f"--output {template!r}: only the fields {{app}}, {{env}} and {{project}} are known"
        ) from None
    path = Path(name).expanduser()
    return path if path.is_absolute() else ctx.root / path


# -- the checks ---------------------------------------------------------------------------------


def _step(
    ctx: Context, run: Run, action: str, description: str, check: Callable[[], Check]
) -> Check:
    """Run one check as a step of the run, print its verdict, record it."""
    with run.step(action, description) as handle:
        result = check()
        handle.detail.update(verdict=result.verdict, reason=result.reason)
        handle.status = {"GO": "ok", "NO-GO": "failed"}.get(result.verdict, "skipped")
    symbol = "-" if result.verdict == "SKIP" else mark(result.verdict)
    ctx.out.line(f"  {symbol} {result.id:<12} {result.reason}")
    run.log(f"check {result.id}: {result.verdict}: {result.reason}")
    return result


def _database_check(ctx: Context, provider: Provider, env: str, release: ReleaseRow) -> Check:
    from gonogo.commands.verify import _schema_check

    if ctx.config.migrations is None:
        return Check("database", "SKIP", f"no [migrations] in {ctx.config_path.name}")
    try:
        schema = _schema_check(ctx, provider, env, release)
    except GonogoError as exc:
        return Check("database", "NO-GO", exc.message.splitlines()[0])
    assert schema is not None
    verdict = "GO" if schema["ok"] else "NO-GO"
    return Check("database", verdict, str(schema["reason"]), detail=schema)


def _migrations_check(
    ctx: Context, run: Run, provider: Provider, env: str, release: ReleaseRow, database: Check
) -> Check:
    """A second upgrade at the head is a no-op; stamp-back one, upgrade: clean."""
    from gonogo.migrations.rehearse import rehearse

    if ctx.config.migrations is None:
        return Check("migrations", "SKIP", f"no [migrations] in {ctx.config_path.name}")
    if database.verdict != "GO":
        return Check("migrations", "SKIP", "not rehearsed: the database is not at the head")
    try:
        target = provider.migration_target(env, release)
        # The copy may hold real rows: a temporary folder, never the evidence.
        with tempfile.TemporaryDirectory(prefix="gonogo-certify-") as tmp:
            result = rehearse(target, workdir=Path(tmp), second_upgrade=True)
            log = Path(result.log)
            if log.is_file():
                run.evidence.write_text("rehearsal.log", log.read_text(errors="replace"))
    except GonogoError as exc:
        return Check("migrations", "NO-GO", exc.message.splitlines()[0])
    doc = result.to_dict()
    run.evidence.write_json("rehearsal.json", doc)
    head = result.head or "base"
    detail = {
        "head": result.head,
        "basis": result.basis,
        "second_upgrade_ok": result.second_upgrade_ok,
        "reapply_ok": result.reapply_ok,
        "summary": result.summary,
    }
    if result.head is None:
        return Check("migrations", "GO", "no migration revisions", detail=detail)
    if not result.ok:  # revisions were pending after all: their round trip failed
        return Check("migrations", "NO-GO", result.summary, detail=detail)
    if result.second_upgrade_ok is not True:
        return Check(
            "migrations",
            "NO-GO",
            f"{head}: a second `alembic upgrade head` is not a no-op: "
            f"{result.second_upgrade_error or 'not run'}",
            detail=detail,
        )
    if result.reapply_ok is not True:
        stamp = next((s for s in result.steps if s.action == "stamp-back"), None)
        if stamp is not None and not stamp.ok:
            why = f"{head}: stamp back one revision failed: {stamp.error}"
        else:
            why = (
                f"{head} does not re-apply cleanly after stamp-back one (its upgrade is not "
                f"idempotent): {result.reapply_error or 'not run'}"
            )
        return Check("migrations", "NO-GO", why, detail=detail)
    return Check(
        "migrations",
        "GO",
        f"at {head}: a second upgrade is a no-op and {head} re-applies cleanly after "
        f"stamp-back one ({result.basis})",
        detail=detail,
    )


def _probes_check(
    ctx: Context,
    run: Run,
    provider: Provider,
    env: str,
    release: ReleaseRow,
    facts: dict[str, Any],
) -> Check:
    result = verify_live(ctx, run, provider, env, release)
    facts["probes"] = result
    detail = _probe_summary(result)
    if result.ok:
        names = ", ".join(p.name for p in result.probes)
        return Check("probes", "GO", f"{names}: {result.reason}", detail=detail)
    failing = [f"{p.name}: {'; '.join(p.reasons)}" for p in result.probes if not p.ok]
    return Check("probes", "NO-GO", "; ".join(failing) or result.reason, detail=detail)


def _probe_summary(result: VerifyResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "reason": result.reason,
        "rounds": result.rounds,
        "results": [
            {"name": p.name, "ok": p.ok, "status": p.status, "reasons": list(p.reasons)}
            for p in result.probes
        ],
    }


def version_source(ctx: Context, env: str) -> tuple[str, str]:
    """(path, JSON field) of the live version: [certify] settings, else the probe whose JSON
    expects "{sha}", else /api/version's gitSha."""
    settings = ctx.config.certify
    if settings.version_path or settings.version_field:
        return settings.version_path or "/api/version", settings.version_field or "gitSha"
    for probe in ctx.config.verify_for(env).probes:
        for name, expected in probe.json_fields.items():
            if expected == "{sha}":
                return probe.path, name
    return "/api/version", "gitSha"


def _version_check(ctx: Context, provider: Provider, env: str, release: ReleaseRow) -> Check:
    import httpx

    from gonogo.probes import redact_url
    from gonogo.retry import RemoteError, call_with_retry

    path, name = version_source(ctx, env)
    url = provider.base_url(env).rstrip("/") + path
    detail: dict[str, Any] = {
        "url": redact_url(url),
        "field": name,
        "expected": release.sha,
        "reported": None,
    }
    where = f"GET {path}"
    try:
        with httpx.Client(follow_redirects=False, trust_env=False, timeout=5.0) as client:
            response = call_with_retry(
                lambda: client.get(url), deadline_s=VERSION_DEADLINE, host=redact_url(url)
            )
    except RemoteError as exc:
        return Check("version-sha", "NO-GO", f"{where}: {exc}", detail=detail)
    detail["status"] = response.status_code
    if response.status_code != 200:
        return Check(
            "version-sha", "NO-GO", f"{where}: status {response.status_code}", detail=detail
        )
    try:
        body = response.json()
    except ValueError:
        return Check("version-sha", "NO-GO", f"{where}: the body is not JSON", detail=detail)
    reported = _lookup(body, name)
    if reported is None:
        return Check("version-sha", "NO-GO", f"{where}: no {name} in the body", detail=detail)
    shown = str(reported)[:80]
    detail["reported"] = shown
    if shown.strip().lower() != release.sha.lower():
        return Check(
            "version-sha",
            "NO-GO",
            f"the live app reports {name} {shown} but {release.label} is {release.sha}",
            detail=detail,
        )
    return Check(
        "version-sha", "GO", f"{path} {name} is {release.sha}, {release.label}'s", detail=detail
    )


def _lookup(value: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            return None
    return value


def _log_check(ctx: Context, run: Run, provider: Provider, env: str, release: ReleaseRow) -> Check:
    from gonogo.logscan import scan

    settings = ctx.config.certify
    try:
        logs = provider.recent_logs(env, settings.log_lines)
    except GonogoError as exc:
        return Check("log-scan", "NO-GO", exc.message.splitlines()[0])
    result = scan(
        logs.lines,
        settings.log_patterns,
        source=logs.source,
        limit=settings.log_lines,
        quote=settings.quote,
        redact=run.evidence.redactor.text,
    )
    doc = result.to_dict()
    run.evidence.write_json("log-scan.json", doc)
    return Check("log-scan", "GO" if result.ok else "NO-GO", result.summary, detail=doc)


# -- the certificate ----------------------------------------------------------------------------


def _signing_key(environ: Mapping[str, str]) -> Ed25519PrivateKey | None:
    value = environ.get(attest.SIGNING_KEY_ENV, "")
    if not value.strip():
        return None
    return attest.load_signing_key(value)


def _predicate(
    ctx: Context,
    run: Run,
    env: str,
    app: str,
    release: ReleaseRow,
    checks: list[Check],
    facts: dict[str, Any],
    started: str,
) -> dict[str, Any]:
    by_id = {c.id: c for c in checks}
    database = by_id["database"].detail
    current = database.get("current") or []
    probes: VerifyResult = facts["probes"]
    certified_at = now_iso()
    predicate: dict[str, Any] = {
        "app": app,
        "project": ctx.config.project.name,
        "environment": env,
        "release": release.label,
        "sha": release.sha,
        "artifact": release.artifact,
        "checks": [c.to_dict() for c in checks],
        "gates": _deploy_gates(ctx, release),
        "overrides": _overrides(ctx, release),
        "migration_revision": ", ".join(current) if current else None,
        "migrations": by_id["migrations"].detail or None,
        "probes": _probe_summary(probes),
        "version": by_id["version-sha"].detail,
        "log_scan": by_id["log-scan"].detail,
        "timestamps": {
            "release_created_at": release.created_at,
            "release_live_since": release.live_since,
            "release_verified_at": release.verified_at,
            "checks_started_at": started,
            "certified_at": certified_at,
        },
        "certified_at": certified_at,
        "certified_by": ctx.actor,
        "run_id": run.id,
    }
    redacted: dict[str, Any] = run.evidence.redactor.data(predicate)
    return redacted


def _deploy_gates(ctx: Context, release: ReleaseRow) -> dict[str, Any] | None:
    """The gate verdicts of the run that made the release (its evidence's gates.json)."""
    row = ctx.ledger.run(release.run_id)
    if row is None or not row.evidence:
        return None
    folder = Path(row.evidence)
    folder = folder if folder.is_absolute() else ctx.root / folder
    try:
        report = json.loads((folder / "gates.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict):
        return None
    gates = [
        {
            "id": g.get("id"),
            "verdict": g.get("verdict"),
            "reason": g.get("reason"),
            "overridden": g.get("override") is not None,
        }
        for g in report.get("gates", [])
        if isinstance(g, dict)
    ]
    return {
        "run_id": release.run_id,
        "command": row.command,
        "verdict": report.get("verdict"),
        "results": gates,
    }


def _overrides(ctx: Context, release: ReleaseRow) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for event in ctx.ledger.events(run_id=release.run_id, kind="gate.override"):
        try:
            payload = json.loads(event["payload"])
        except (TypeError, ValueError):
            continue
        out.append(
            {
                "gate": payload.get("gate"),
                "reason": payload.get("reason"),
                "by": event["actor"],
                "at": payload.get("at") or event["ts"],
                "run_id": event["run_id"],
            }
        )
    return out


def _issue(
    ctx: Context,
    run: Run,
    env: str,
    app: str,
    release: ReleaseRow,
    predicate: dict[str, Any],
    path: Path,
    key: Ed25519PrivateKey | None,
) -> dict[str, Any]:
    """Record the certification in the ledger, then write the file that names the event."""
    subject = attest.subject(app, release.label, release.artifact, release.sha)
    statement = attest.statement([subject], predicate)
    digest = attest.content_digest(statement)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GonogoError(
            f"cannot create {_display(ctx, path.parent)}: {exc.strerror or exc}; "
            "no certificate was written"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise GonogoError(f"{_display(ctx, path.parent)} is not writable; no certificate written")
    keyid = attest.key_id(key.public_key()) if key is not None else None
    event_hash = ctx.ledger.record(
        attest.EVENT_KIND,
        actor=ctx.actor,
        env=env,
        run_id=run.id,
        payload={
            "statement_sha256": digest,
            "predicate_type": attest.PREDICATE_TYPE,
            "subject": subject["name"],
            "release": release.label,
            "sha": release.sha,
            "artifact": release.artifact,
            "certificate": _display(ctx, path),
            "signed": key is not None,
            "keyid": keyid,
        },
    )
    seq = next(
        int(e["seq"])
        for e in ctx.ledger.events(run_id=run.id, kind=attest.EVENT_KIND)
        if e["hash"] == event_hash
    )
    final = attest.with_ledger_event(statement, event_hash=event_hash, seq=seq)
    document = attest.sign(final, key) if key is not None else final
    try:
        attest.write_atomic(path, attest.render(document))
    except OSError as exc:
        raise DeployFailed(
            f"ledger event #{seq} records the certification, but writing "
            f"{_display(ctx, path)} failed: {exc.strerror or exc}; run `gonogo certify {env}` "
            "again",
            details={"ledger_event_seq": seq, "ledger_event_hash": event_hash},
        ) from None
    run.evidence.write_json("certificate.json", document)
    ctx.out.line(f"  certificate: {_display(ctx, path)} (ledger event #{seq})")
    data: dict[str, Any] = {
        "written": True,
        "signed": key is not None,
        "statement_sha256": digest,
        "ledger_event_seq": seq,
        "ledger_event_hash": event_hash,
    }
    if key is not None:
        data["keyid"] = keyid
        data["public_key"] = attest.public_key_text(key.public_key())
    return data


def _display(ctx: Context, path: Path) -> str:
    try:
        return str(path.relative_to(ctx.root))
    except ValueError:
        return str(path)


def _left_alone(ctx: Context, path: Path) -> str:
    """Say that an existing certificate (an earlier release's) was not touched."""
    if not path.is_file():
        return ""
    label = ""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and attest.is_envelope(doc):
            payload = attest.b64decode(str(doc.get("payload", "")))
            doc = json.loads(payload) if payload else {}
        predicate = doc.get("predicate") if isinstance(doc, dict) else None
        if isinstance(predicate, dict) and predicate.get("release"):
            label = f" (for {predicate.get('environment')} {predicate['release']})"
    except (OSError, ValueError):
        pass
    return f"; the existing {_display(ctx, path)}{label} was left as it is"


# -- verification -------------------------------------------------------------------------------


def verify_certificate(
    out: Output,
    path: Path,
    *,
    public_key: str | None = None,
    directory: Path | None = None,
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Result:
    """Check a certificate against its signature and the project's ledger.

    Exit 0 valid, 2 invalid (one line naming what is wrong), 1 unreadable input.
    """
    environ = dict(os.environ) if environ is None else environ
    doc = _read_certificate(path)
    key = attest.load_public_key(public_key) if public_key else None
    signed = attest.is_envelope(doc)
    if signed and key is None:
        private = _signing_key(environ)
        if private is None:
            raise GonogoError(
                f"{path} is signed: give --public-key K (or set {attest.SIGNING_KEY_ENV})"
            )
        key = private.public_key()
    ctx = Context.load(directory, out=out, environ=environ)
    data: dict[str, Any] = {
        "command": "certify --verify",
        "certificate": str(path),
        "signed": signed,
        "valid": False,
    }
    try:
        if not environ.get("GONOGO_LEDGER_URL") and not (ctx.state_dir / "ledger.db").is_file():
            raise attest.CertificateInvalid(
                "unknown event", f"there is no ledger at {_display(ctx, ctx.state_dir)}"
            )
        verified = attest.verify(
            doc, ctx.ledger, public_key=key, require_signature=public_key is not None
        )
        predicate = verified.predicate
        if env is not None and predicate.get("environment") != env:
            raise attest.CertificateInvalid(
                "wrong environment",
                f"the certificate is for {predicate.get('environment')}, not {env}",
            )
    except attest.CertificateInvalid as exc:
        data.update(problem=exc.kind, reason=exc.detail)
        return Result(EXIT_NOGO, f"INVALID: {path}: {exc}", data)
    finally:
        ctx.close()
    for warning in verified.warnings:
        out.line(f"  ! {warning}")
    data.update(
        valid=True,
        keyid=verified.keyid,
        environment=predicate["environment"],
        release=predicate["release"],
        sha=predicate["sha"],
        certified_at=predicate.get("certified_at"),
        ledger_event_seq=verified.event_seq,
        ledger_event_hash=verified.event_hash,
        warnings=verified.warnings,
    )
    how = f"signature of key {verified.keyid[:16]} verified, " if verified.keyid else "unsigned, "
    return Result(
        0,
        f"valid: {predicate['app']}@{predicate['release']} on {predicate['environment']} "
        f"({short(str(predicate['sha']))}) certified at {predicate.get('certified_at')}; "
        f"{how}ledger event #{verified.event_seq} and the chain up to it intact",
        data,
    )


def _read_certificate(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GonogoError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise GonogoError(f"{path} is not a certificate (not UTF-8 text)") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise GonogoError(f"{path} is not a certificate (not JSON: {exc})") from None
    if not isinstance(doc, dict):
        raise GonogoError(f"{path} is not a certificate (not a JSON object)")
    return doc
