from alembic import command
from alembic.config import Config
from fastapi import FastAPI

from app.flags import env_bool

app = FastAPI()


@app.on_event("startup")
def startup() -> None:
    if env_bool("AUTO_MIGRATE"):
        command.upgrade(Config("alembic.ini"), "head")
