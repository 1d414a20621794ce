from alembic import command
from alembic.config import Config

from backend.helpers import env_flag


def upgrade_to_head() -> None:
    if env_flag("SKIP_MIGRATIONS"):
        return
    command.upgrade(Config("alembic.ini"), "head")
