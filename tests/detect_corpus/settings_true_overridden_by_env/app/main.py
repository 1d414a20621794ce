from alembic import command
from alembic.config import Config
from fastapi import FastAPI

from app.config import settings

app = FastAPI()


@app.on_event("startup")
def startup() -> None:
    if not settings.auto_migrate:
        return
    command.upgrade(Config("alembic.ini"), "head")
