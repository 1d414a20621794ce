"""Helpers shared by the integration tests: process and ledger inspection from outside."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def pid_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (an exited process nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def group_alive(pgid: int) -> bool:
    """True if any live (non-zombie) process is in process group pgid.

    The app is started as `sh -c "uvicorn ..."` in its own session; the shell may go while
    the server it started keeps running, so the leader's pid alone is not enough.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def ledger_rows(project: Any, query: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Rows of the project's ledger; [] while the ledger or the table does not exist yet."""
    path = project.root / ".gonogo" / "ledger.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=15)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(query, params))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def revision_file(
    revision: str,
    doc: str,
    upgrade: str,
    downgrade: str,
    *,
    down: str = "0003_create_audit_log",
    imports: str = "",
) -> str:
    """The text of an alembic revision on top of the example app's history."""
    return (
        f'"""{doc}"""\n{imports}from alembic import op\n\n'
        f'revision = "{revision}"\ndown_revision = "{down}"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        f"def upgrade() -> None:\n    {upgrade}\n\n\n"
        f"def downgrade() -> None:\n    {downgrade}\n"
    )


INDEX_TITLE_UP = 'op.create_index("ix_notes_title", "notes", ["title"])'
INDEX_TITLE_DOWN = 'op.drop_index("ix_notes_title", table_name="notes")'
DROP_BODY = revision_file(
    "0004_drop_body",
    "drop notes.body",
    'with op.batch_alter_table("notes") as batch:\n        batch.drop_column("body")',
    'with op.batch_alter_table("notes") as batch:\n'
    '        batch.add_column(sa.Column("body", sa.Text(), nullable=True))',
    imports="import sqlalchemy as sa\n",
)

# Certify re-applies the head revision after a stamp-back; the example app's own head
# (CREATE TABLE audit_log) is not idempotent, so certify tests put this one on top.
IDEMPOTENT_HEAD = revision_file(
    "0004_certify_marks",
    "an idempotent head: safe to run twice",
    'op.create_table("certify_marks", sa.Column("id", sa.Integer(), primary_key=True), '
    "if_not_exists=True)",
    'op.drop_table("certify_marks", if_exists=True)',
    imports="import sqlalchemy as sa\n",
)
