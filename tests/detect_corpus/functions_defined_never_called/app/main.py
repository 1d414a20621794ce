from alembic import command
from alembic.config import Config
from fastapi import FastAPI


def run_migrations() -> None:
    command.upgrade(Config("alembic.ini"), "head")


app = FastAPI()
