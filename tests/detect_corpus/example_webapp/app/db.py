"""Database access: one SQLAlchemy engine built from ``DATABASE_URL``."""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Any

from sqlalchemy import Engine, create_engine, text

DEFAULT_DATABASE_URL = "sqlite:///./app.db"
CONNECT_TIMEOUT_SECONDS = 2

log = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """Use the psycopg 3 driver for the plain URLs Heroku hands out.

    ``postgres://…`` and ``postgresql://…`` become ``postgresql+psycopg://…``;
    URLs that already name a driver are left alone.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_url(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return normalize_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL)


def engine_options(url: str) -> dict[str, Any]:
    """Keep failures fast: a health check must not hang on an unreachable database."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": CONNECT_TIMEOUT_SECONDS, "check_same_thread": False}}
    if url.startswith("postgresql"):
        return {
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        }
    return {"pool_pre_ping": True}


@cache
def get_engine() -> Engine:
    url = database_url()
    return create_engine(url, **engine_options(url))


def dispose_engine() -> None:
    """Close pooled connections, if an engine was ever created."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()


def database_connected() -> bool:
    """Connect and run ``SELECT 1``. Connectivity only: the schema is not looked at."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure (driver, URL, network, file) means "not connected"
        log.warning("database check failed: %s: %s", type(exc).__name__, exc)
        return False
    return True
