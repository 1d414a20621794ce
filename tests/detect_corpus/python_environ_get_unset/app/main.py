import os

from alembic import command
from alembic.config import Config
from fastapi import FastAPI

app = FastAPI()


@app.on_event("startup")
def maybe_migrate() -> None:
    if os.environ.get("RUN_MIGRATIONS") == "1":
        command.upgrade(Config("alembic.ini"), "head")
