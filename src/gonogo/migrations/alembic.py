"""Alembic facts about a database and the argv to change it (the caller runs it)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from gonogo.errors import GonogoError


def normalise_url(url: str) -> str:
    """Heroku hands out postgres:// URLs; SQLAlchemy wants an explicit dialect+driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def display_url(url: str) -> str:
    """The URL without its password, for messages: the one in the user-info part and any
    query parameter that carries a credential (libpq accepts `?password=` and
    `?sslpassword=` as well)."""
    shown = _PASSWORD.sub(r"\g<1><redacted>@", url)
    return _SECRET_PARAM.sub(r"\g<1><redacted>", shown)


_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@]*:)[^@]*@", re.IGNORECASE)
_SECRET_PARAM = re.compile(
    r"([?&][^=&#]*(?:password|passwd|secret|token|key)[^=&#]*=)[^&#]*", re.IGNORECASE
)


def current_revisions(url: str, *, connect_timeout: int = 10) -> list[str]:
    """Revisions stamped in alembic_version; [] for an empty database.

    A database that cannot be reached is a GonogoError naming it (without its password),
    not a driver traceback.
    """
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    normal = normalise_url(url)
    args = {"connect_timeout": connect_timeout} if normal.startswith("postgresql") else {}
    try:
        engine = create_engine(normal, connect_args=args)
    except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as exc:
        raise _unusable(url, exc) from None
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return []
            rows = conn.execute(text("SELECT version_num FROM alembic_version"))
            return sorted(str(r[0]) for r in rows)
    except DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc) else ""
        raise GonogoError(
            f"cannot read alembic_version from {display_url(url)}: {first}; check that the "
            "database is reachable and the URL is right"
        ) from None
    except (ValueError, ImportError) as exc:
        # A port that is not a number, or a driver that is not installed, only shows when
        # SQLAlchemy first connects.
        raise _unusable(url, exc) from None
    finally:
        engine.dispose()


def _unusable(url: str, exc: BaseException) -> GonogoError:
    if isinstance(exc, ImportError):
        why = f"its driver is not installed ({exc})"
    else:
        why = " ".join(str(exc).split()) or type(exc).__name__
    return GonogoError(
        f"database URL {display_url(url)} is not usable: {why}; check the URL (and its "
        "driver: gonogo ships psycopg for PostgreSQL and sqlite3)"
    )


def server_version(url: str, *, connect_timeout: int = 10) -> str | None:
    """The PostgreSQL server's version as squawk wants it ("15.5", "9.6"); None for another
    database or one that does not answer (the caller then lints without it)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import ArgumentError, DBAPIError

    normal = normalise_url(url)
    if not normal.startswith("postgresql"):
        return None
    try:
        engine = create_engine(normal, connect_args={"connect_timeout": connect_timeout})
    except (ArgumentError, ValueError, ImportError):
        return None
    try:
        with engine.connect() as conn:
            number = int(conn.execute(text("SHOW server_version_num")).scalar_one())
    except (DBAPIError, ValueError, ImportError):
        return None
    finally:
        engine.dispose()
    # 150005 is 15.5; before version 10 the scheme was major.minor.patch: 90624 is 9.6(.24).
    if number >= 100000:
        return f"{number // 10000}.{number % 10000}"
    return f"{number // 10000}.{number // 100 % 100}"


def upgrade_argv(config: str, target: str = "head") -> list[str]:
    return [sys.executable, "-m", "alembic", "-c", config, "upgrade", target]


def downgrade_argv(config: str, target: str) -> list[str]:
    return [sys.executable, "-m", "alembic", "-c", config, "downgrade", target]


def downgrade_command(config: str, revision: str | None) -> str:
    return f"python -m alembic -c {config} downgrade {revision or 'base'}"


def config_exists(release_dir: Path, config: str) -> bool:
    return (release_dir / config).is_file()
