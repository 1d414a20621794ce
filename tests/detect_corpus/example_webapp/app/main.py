"""The FastAPI application: health, CSRF, version and a tiny notes endpoint.

Start-up never touches the schema; the schema is changed only by an explicit,
separate command (see README.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from app import __version__
from app.db import database_connected, dispose_engine, get_engine
from app.faults import Faults
from app.models import notes

log = logging.getLogger("webapp")

WRONG_SHA = "0000000"


class _Flapper:
    """Alternates healthy / failing on successive calls (first call is healthy)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0

    def fail_now(self) -> bool:
        with self._lock:
            self._calls += 1
            return self._calls % 2 == 0


def create_app(faults: Faults | None = None) -> FastAPI:
    faults = Faults.from_env() if faults is None else faults
    flapper = _Flapper()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        active = faults.active()
        if active:
            log.warning("misbehaviour switches on: %s", ", ".join(active))
        if faults.crash_on_boot:
            raise RuntimeError("WEBAPP_CRASH_ON_BOOT is set: refusing to start")
        if faults.slow_start:
            await asyncio.sleep(faults.slow_start)
        yield
        dispose_engine()

    app = FastAPI(title="gonogo example webapp", version=__version__, lifespan=lifespan)
    app.state.faults = faults

    @app.get("/api/health")
    def health() -> JSONResponse:
        if faults.health_500 or (faults.flap and flapper.fail_now()):
            return JSONResponse({"status": "error"}, status_code=500)
        connected = not faults.degraded and database_connected()
        status = "healthy" if connected else "degraded"
        return JSONResponse({"status": status, "database_connected": connected})

    @app.get("/api/auth/csrf")
    def csrf(request: Request) -> JSONResponse:
        token = secrets.token_urlsafe(32)
        response = JSONResponse({"csrf_token": token})
        if not faults.no_csrf_cookie:
            secure = request.headers.get("x-forwarded-proto", request.url.scheme) == "https"
            response.set_cookie(
                "csrf_token", token, path="/", samesite="lax", secure=secure, httponly=False
            )
        return response

    @app.get("/api/version")
    def version() -> dict[str, str]:
        sha = WRONG_SHA if faults.wrong_sha else os.environ.get("GIT_SHA") or "unknown"
        return {"gitSha": sha, "version": __version__}

    @app.get("/api/notes")
    def list_notes() -> JSONResponse:
        query = select(notes.c.id, notes.c.title, notes.c.body).order_by(notes.c.id)
        try:
            with get_engine().connect() as conn:
                rows: list[dict[str, Any]] = [dict(row._mapping) for row in conn.execute(query)]
        except SQLAlchemyError as exc:
            log.warning("notes query failed: %s", exc.__class__.__name__)
            return JSONResponse(
                {"error": "schema_unavailable", "detail": "notes table missing or out of date"},
                status_code=503,
            )
        return JSONResponse({"notes": rows})

    return app


app = create_app()
