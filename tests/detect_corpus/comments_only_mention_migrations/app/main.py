"""Start-up never calls command.upgrade(cfg, "head"); see docs/migrations.md."""

import logging

from fastapi import FastAPI

log = logging.getLogger(__name__)
app = FastAPI()


@app.on_event("startup")
def announce() -> None:
    # command.upgrade(cfg, "head")  -- removed on purpose
    log.info("run `alembic upgrade head` explicitly before releasing")
