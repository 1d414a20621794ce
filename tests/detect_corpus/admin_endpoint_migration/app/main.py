from alembic import command
from alembic.config import Config
from fastapi import FastAPI

app = FastAPI()


@app.post("/admin/migrate")
def migrate() -> dict[str, str]:
    command.upgrade(Config("alembic.ini"), "head")
    return {"status": "migrated"}
