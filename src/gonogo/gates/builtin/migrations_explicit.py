"""migrations-explicit: nothing runs schema migrations as a side effect of releasing or
booting the app (playbook §5 first STOP; §2 "release phase disabled")."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from gonogo import gitrepo
from gonogo.gates.model import Finding, GateInput, GateResult


@contextmanager
def tree_at(root: Path, sha: str | None) -> Iterator[Path]:
    """The files of commit `sha`: the working tree itself when it is that commit, unchanged."""
    if sha is None or (
        gitrepo.is_repo(root) and gitrepo.resolve(root) == sha and not gitrepo.dirty_files(root)
    ):
        yield root
        return
    import tarfile
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gonogo-tree-") as tmp:
        archive = Path(tmp) / "tree.tar"
        gitrepo.archive(root, sha, archive)
        dest = Path(tmp) / "tree"
        dest.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
        yield dest


def scan_result(
    root: Path,
    sha: str | None,
    gate_id: str = "migrations-explicit",
    environ: Mapping[str, str] | None = None,
) -> GateResult:
    """Scan the tree at `sha`; `environ` is what the environment sets (its config vars),
    which decides guards such as RUN_MIGRATIONS the way the platform would."""
    from gonogo.detect import scan

    where = f"{sha[:7]}" if sha else str(root)
    with tree_at(root, sha) as tree:
        result = scan(tree, environ=environ)
    evidence = (
        f"{len(result.examined)} file(s) at {where}: "
        + (", ".join(result.examined[:8]) + (" …" if len(result.examined) > 8 else ""))
        if result.examined
        else f"no Procfile, heroku.yml, app.json, Dockerfile or start-up code at {where}"
    )
    findings = tuple(
        Finding(d.file, d.line, f"{d.what}: {d.why}") for d in result.findings
    ) + tuple(Finding(p.split(":", 1)[0], None, p) for p in result.problems)
    if result.findings:
        first = result.findings[0]
        more = f" (and {len(result.findings) - 1} more)" if len(result.findings) > 1 else ""
        return GateResult(
            gate_id,
            "NO-GO",
            f"{first.file}:{first.line} would run `{first.what}` implicitly: {first.why}{more}",
            evidence,
            findings,
            fix="remove the migration from the release/start-up path and run it with "
            "`gonogo migrate ENV apply`",
        )
    if result.problems:
        return GateResult(
            gate_id,
            "NO-GO",
            f"could not read everything that could migrate implicitly: {result.problems[0]}",
            evidence,
            findings,
        )
    return GateResult(gate_id, "GO", "nothing runs migrations implicitly", evidence)


class MigrationsExplicit:
    id = "migrations-explicit"
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        return True

    def evaluate(self, inp: GateInput) -> GateResult:
        env_vars = inp.config.environments[inp.env].vars
        result = scan_result(inp.root, inp.sha, self.id, env_vars)
        phase = inp.extra.get("release_phase")
        if not phase or not result.go:
            return result
        runs = ", ".join(f"{r['version']} {r['status']}" for r in phase.get("runs", []))
        evidence = f"{result.evidence}; release phase: {phase.get('command') or 'none'}" + (
            f" (recent runs: {runs})" if runs else ""
        )
        if phase.get("error"):
            return GateResult(
                self.id,
                "NO-GO",
                f"cannot read the platform's release phase: {phase['error']}",
                evidence,
            )
        if phase.get("flagged"):
            return GateResult(
                self.id,
                "NO-GO",
                str(phase["reason"]),
                evidence,
                fix="make the release phase only echo (or remove the release process type) "
                "and run migrations with `gonogo migrate ENV apply`",
            )
        return replace(result, evidence=evidence)
