"""Alembic facts about a database and the argv to change it (the caller runs it)."""

from __future__ import annotations

import sys
from pathlib import Path


def normalise_url(url: str) -> str:
    """Heroku hands out postgres:// URLs; SQLAlchemy wants an explicit dialect+driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def current_revisions(url: str) -> list[str]:
    """Revisions stamped in alembic_version; [] for an empty database."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return []
            rows = conn.execute(text("SELECT version_num FROM alembic_version"))
            return sorted(str(r[0]) for r in rows)
    finally:
        engine.dispose()


def upgrade_argv(config: str, target: str = "head") -> list[str]:
    return [sys.executable, "-m", "alembic", "-c", config, "upgrade", target]


def downgrade_command(config: str, revision: str | None) -> str:
    return f"python -m alembic -c {config} downgrade {revision or 'base'}"


def config_exists(release_dir: Path, config: str) -> bool:
    return (release_dir / config).is_file()
