"""schema-compatible: a rollback puts back code that can run against the database it finds.

Rolling the app back does not undo a migration (playbook §8). A database ahead of the
old code (revisions it does not know) is refused before anything happens: that is what old
code cannot be trusted to run against, and what `gonogo verify` would fail on afterwards. A
database behind the old code's head is GO with a note (`migrate apply` brings it up). When the
database is ahead of the old code it names what the newer revisions did to the schema (a
dropped or renamed column is what breaks old code) and the command that rolls back both:
`gonogo rollback ENV --to vN --db <vN's head>`.

Inputs (GateInput.extra): ``db_revisions`` (or ``db_revisions_error``), ``db_after`` (the
revision `--db` will leave the database at, if given), ``live_sha`` (the code that knows
the newer revisions) and ``target_label``.
"""

from __future__ import annotations

from typing import Any

from gonogo.gates.builtin.migrations_explicit import tree_at
from gonogo.gates.model import Finding, GateInput, GateResult


class SchemaCompatible:
    id = "schema-compatible"
    overridable = True

    def applies(self, inp: GateInput) -> bool:
        # Only a rollback changes which code meets the database; elsewhere this is
        # `migrate status`'s business.
        return (
            inp.command == "rollback"
            and not inp.extra.get("db_only")
            and inp.config.migrations is not None
            and inp.sha is not None
        )

    def evaluate(self, inp: GateInput) -> GateResult:
        label = str(inp.extra.get("target_label") or (inp.sha or "")[:7])
        evidence = f"alembic history of {label} against {inp.env}'s alembic_version"
        if "db_revisions_error" in inp.extra:
            return GateResult(
                self.id,
                "NO-GO",
                f"cannot read {inp.env}'s migration revision: {inp.extra['db_revisions_error']}",
                evidence,
            )
        if "db_revisions" not in inp.extra:
            return GateResult(self.id, "GO", "no database state to compare", evidence)
        current = sorted(inp.extra["db_revisions"])
        db_after = inp.extra.get("db_after")
        after = current if db_after is None else ([] if db_after == "base" else [db_after])
        expected = self._heads(inp)
        if expected is None:
            return GateResult(self.id, "GO", f"{label} has no migration history", evidence)
        shown = ", ".join(after) or "base (empty)"
        heads = ", ".join(expected) or "base"
        if sorted(after) == sorted(expected):
            how = "after the downgrade " if db_after is not None else ""
            return GateResult(
                self.id, "GO", f"{inp.env}'s database is {how}at {shown}, {label}'s head", evidence
            )
        fix = f"gonogo rollback {inp.env} --to {label} --db {expected[0] if expected else 'base'}"
        ahead, findings = self._ahead(inp, after, expected)
        if ahead:
            breaking = [f for f in findings if f.message.startswith("!")]
            what = (
                f"; {len(breaking)} of them remove or change what older code may use "
                f"({breaking[0].message[2:]})"
                if breaking
                else "; they only add to the schema, but verify will still see the mismatch"
            )
            return GateResult(
                self.id,
                "NO-GO",
                f"{inp.env}'s database would be at {shown}, ahead of {label}'s head {heads}: "
                f"{len(ahead)} revision(s) {label} does not know ({', '.join(ahead)}){what}",
                evidence,
                tuple(Finding("", None, f.message.lstrip("! ")) for f in findings),
                fix=fix + " (rolls back the app and the database together), or "
                "--override schema-compatible --reason '<why the old code runs on it>'",
            )
        # Behind the old code's head: the old code ran like that before, and `migrate apply`
        # brings the database up; not a reason to refuse putting it back.
        return GateResult(
            self.id,
            "GO",
            f"{inp.env}'s database would be at {shown}, behind {label}'s head {heads}; "
            f"`gonogo migrate {inp.env} apply` brings it up after the rollback",
            evidence,
        )

    def _heads(self, inp: GateInput) -> list[str] | None:
        from gonogo.migrations.history import load_history

        config = inp.config.migrations
        assert config is not None and inp.sha is not None
        with tree_at(inp.root, inp.sha) as tree:
            ini = tree / config.config
            if not ini.is_file():
                return None
            return sorted(load_history(ini).heads)

    def _ahead(
        self, inp: GateInput, after: list[str], expected: list[str]
    ) -> tuple[list[str], list[Finding]]:
        """The revisions between the target's heads and `after`, read from the live code."""
        from gonogo.errors import GonogoError
        from gonogo.migrations.classify import classify_history
        from gonogo.migrations.history import load_history, to_undo

        config = inp.config.migrations
        live_sha = inp.extra.get("live_sha")
        if config is None or not live_sha or not after:
            return [], []
        with tree_at(inp.root, str(live_sha)) as tree:
            ini = tree / config.config
            if not ini.is_file():
                return [], []
            history = load_history(ini)
            try:
                undo = [r for head in expected for r in to_undo(history, after, head)]
            except GonogoError:
                return [], []
            newer = list(dict.fromkeys(undo))
            if not newer:
                return [], []
            classes = classify_history(history, revisions=newer).revisions
            return newer, [_finding(c) for c in classes]


def _finding(c: Any) -> Finding:
    """'! rev: reason' when the upgrade removed or narrowed something; '  rev: ...' if not."""
    harmful = [f for f in c.findings if f.direction == "upgrade"]
    if harmful:
        return Finding("", None, f"! {c.revision}: {harmful[0].reason}")
    return Finding("", None, f"  {c.revision}: adds {'; '.join(c.operations) or 'nothing'}")
