from typing import TYPE_CHECKING

from alembic import command
from fastapi import FastAPI

app = FastAPI()

if False:
    command.upgrade(None, "head")

if TYPE_CHECKING:
    command.upgrade(None, "head")


@app.on_event("startup")
def startup() -> None:
    if 0:
        command.upgrade(None, "head")
