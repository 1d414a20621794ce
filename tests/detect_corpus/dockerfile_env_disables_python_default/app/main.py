import os

from alembic import command
from alembic.config import Config
from fastapi import FastAPI

RUN_MIGRATIONS = os.getenv("RUN_MIGRATIONS", "1") == "1"

app = FastAPI()


@app.on_event("startup")
def startup() -> None:
    if RUN_MIGRATIONS:
        command.upgrade(Config("alembic.ini"), "head")
