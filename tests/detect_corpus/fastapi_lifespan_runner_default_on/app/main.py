from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.db import run_migrations


@asynccontextmanager
async def lifespan(app: FastAPI):
    run_migrations()
    yield


app = FastAPI(lifespan=lifespan)
