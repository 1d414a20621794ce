import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI

from backend import migrations


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await asyncio.to_thread(migrations.upgrade_to_head)
        yield

    return FastAPI(lifespan=lifespan)
