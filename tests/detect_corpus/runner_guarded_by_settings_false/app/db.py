import os

from alembic import command
from alembic.config import Config


def run_migrations() -> None:
    if os.getenv("RUN_MIGRATIONS", "1") == "1":
        command.upgrade(Config("alembic.ini"), "head")
