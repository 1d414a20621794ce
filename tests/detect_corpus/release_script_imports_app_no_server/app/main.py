from alembic import command
from alembic.config import Config
from fastapi import FastAPI

app = FastAPI()


@app.on_event("startup")
def migrate() -> None:
    command.upgrade(Config("alembic.ini"), "head")
