"""Alembic environment: the URL comes from DATABASE_URL (default sqlite:///./app.db).

Supports online mode and offline mode (``--sql``). Plain ``postgres://`` and
``postgresql://`` URLs are rewritten to the psycopg 3 driver.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from app.db import DEFAULT_DATABASE_URL, database_url, normalize_url
from app.models import metadata
from sqlalchemy import create_engine, pool

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _url() -> str:
    """``-x url=...`` wins, then DATABASE_URL, then a non-blank sqlalchemy.url, then the default.

    The environment beats the (committed) ini file so a stray URL in alembic.ini can never
    redirect a deploy's migration to the wrong database.
    """
    override = context.get_x_argument(as_dictionary=True).get("url")
    if override:
        return normalize_url(override)
    if os.environ.get("DATABASE_URL"):
        return database_url()
    configured = config.get_main_option("sqlalchemy.url")
    return normalize_url(configured or DEFAULT_DATABASE_URL)


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
