from fastapi import FastAPI

from app.config import settings
from app.migrate import run_migrations

app = FastAPI()


@app.on_event("startup")
async def startup() -> None:
    if settings.AUTO_MIGRATE:
        run_migrations()
