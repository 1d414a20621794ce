from alembic import command
from alembic.config import Config
from fastapi import FastAPI

app = FastAPI()


@app.on_event("startup")
def apply_migrations() -> None:
    command.upgrade(Config("alembic.ini"), "head")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
