from alembic import command
from alembic.config import Config
from fastapi import FastAPI

app = FastAPI()

if __name__ == "__main__":
    command.upgrade(Config("alembic.ini"), "head")
