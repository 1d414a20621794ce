import logging
import os

from alembic import command
from alembic.config import Config

log = logging.getLogger(__name__)


def run_migrations() -> None:
    if os.getenv("RUN_MIGRATIONS", "1") != "1":
        log.info("skipping migrations")
        return
    cfg = Config("alembic.ini")
    command.upgrade(cfg, "head")
