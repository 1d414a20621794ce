"""Run the fake Heroku Platform API (heroku_api.FakeHeroku) with uvicorn on 127.0.0.1.

`with serve_fakes() as server:` binds a socket on a free port (no race: uvicorn is handed
the bound socket), runs uvicorn in a daemon thread, waits a bounded time for it to start,
and on exit stops it: streams see `fake.closing` and end, uvicorn gets one second of
graceful shutdown, the thread is joined with a timeout.

Starting and stopping uvicorn costs a few tenths of a second, so one server can serve many
tests: `server.fresh(**options)` puts a new, empty FakeHeroku behind the same URL (the old
one is closed; requests still in flight finish against it). `serve_fake()` is the
one-fake shorthand. `fake.url` is the API's base URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from fakes.heroku_api import FakeHeroku

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class FakeServer:
    """An ASGI app that hands each request to the current fake."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fake: FakeHeroku | None = None

    def fresh(self, **options: Any) -> FakeHeroku:
        if self.fake is not None:
            self.fake.close()
        fake = FakeHeroku(**options)
        fake.url = self.url
        self.fake = fake
        return fake

    def close(self) -> None:
        if self.fake is not None:
            self.fake.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        fake = self.fake
        if fake is None:
            raise RuntimeError("no fake installed: call FakeServer.fresh() first")
        await fake(scope, receive, send)


class _ThreadServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Signal handlers belong to the test process, not to a server in a thread.
        yield

    async def main_loop(self) -> None:
        # uvicorn looks at should_exit every 0.1 s; every 10 ms makes stopping quicker.
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            await asyncio.sleep(0.01)


@contextlib.contextmanager
def serve_fakes() -> Iterator[FakeServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app = FakeServer(f"http://127.0.0.1:{sock.getsockname()[1]}")
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        # A dropped-connection fault is logged by uvicorn as an error: expected here.
        log_level="critical",
        timeout_graceful_shutdown=1,
    )
    server = _ThreadServer(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-heroku", daemon=True
    )
    thread.start()
    try:
        started_by = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the fake Heroku API server stopped while starting")
            if time.monotonic() > started_by:
                raise RuntimeError(f"the fake Heroku API did not start in {START_TIMEOUT_S}s")
            time.sleep(0.01)
        yield app
    finally:
        app.close()
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT_S)
        sock.close()


@contextlib.contextmanager
def serve_fake(**options: Any) -> Iterator[FakeHeroku]:
    """One fake on its own server."""
    with serve_fakes() as server:
        yield server.fresh(**options)
