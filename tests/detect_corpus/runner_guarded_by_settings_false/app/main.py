from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.db import run_migrations
from app.settings import get_settings


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = get_settings()
    if settings.AUTO_MIGRATE:
        run_migrations()
    yield


app = FastAPI(lifespan=lifespan)
