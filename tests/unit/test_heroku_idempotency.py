"""A release, a rollback or a one-off dyno is requested once, however its answer is lost.

The client against the fake Platform API on 127.0.0.1. The fake's `slow` fault holds a
request before acting on it, so the client's timeout fires while Heroku is still working
on it: the request must not be sent again (it would then be applied twice). What it made
is adopted when it shows up in time, and otherwise the call fails saying the outcome is
unknown and what to look at. A request is sent again only when Heroku certainly did not act
on it: the connection was never made, or it answered 429 or 503.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gonogo.heroku import HerokuClient, HerokuOutcomeUnknown

# pytest puts tests/unit (not tests/) on sys.path; the fakes live in tests/fakes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.heroku_api import API_KEY, DynoScript, FakeHeroku
from fakes.heroku_server import FakeServer, serve_fakes

APP = "acme-web"
OLD = "sha256:" + "0a" * 32
NEW = "sha256:" + "1b" * 32
COMMAND = "python -m alembic upgrade head"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with serve_fakes() as running:
        yield running


@pytest.fixture
def fake(server: FakeServer) -> Iterator[FakeHeroku]:
    """App v1, v2 = OLD (current), NEW pushed; a fresh fake per test."""
    fresh = server.fresh(stream_max_s=2.0)
    fresh.add_app(APP)
    fresh.add_release(APP, {"web": OLD})
    fresh.push_image(APP, "web", NEW)
    yield fresh
    fresh.close()
    assert not fresh.violations, fresh.violations


def client(fake: FakeHeroku, **options: Any) -> HerokuClient:
    # A short request timeout, so that the fake's `slow` fault outlasts it.
    settings: dict[str, Any] = {
        "base_url": fake.url,
        "deadline_s": 3.0,
        "timeout_s": 0.3,
        "base_delay": 0.01,
        "max_delay": 0.05,
        "poll_s": 0.05,
        "reconcile_s": 2.0,
    }
    settings.update(options)
    return HerokuClient(API_KEY, **settings)


def new_releases(fake: FakeHeroku, after: int = 2) -> list[tuple[int, str]]:
    return [(r.version, r.description) for r in fake.releases_of(APP) if r.version > after]


def eventually(what: Callable[[], Any], *, within: float = 5.0) -> Any:
    """`what()` once it is truthy (the fake acts on a held request late), bounded."""
    until = time.monotonic() + within
    while True:
        value = what()
        if value or time.monotonic() >= until:
            return value
        time.sleep(0.05)


def assert_unknown(err: pytest.ExceptionInfo[HerokuOutcomeUnknown], check: str) -> None:
    message = str(err.value)
    assert "whether it was done is unknown" in message and "not sent again" in message
    assert check in message and APP in message
    assert "\n" not in message and API_KEY not in message


# -- a request Heroku is still working on when the client gives up --------------------------


def test_a_release_still_being_made_after_the_timeout_is_adopted_not_requested_again(
    fake: FakeHeroku,
) -> None:
    fake.fail_next(1, "slow", method="PATCH", path="/formation$", delay=0.8)
    with client(fake) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW})
        assert heroku.counters.reconciled == 1
    assert len(fake.seen("PATCH", "/formation$")) == 1
    assert new_releases(fake) == [(3, f"Deployed web ({NEW[7:19]})")]
    assert made.version == 3 and made.has_images({"web": NEW})


def test_a_release_that_does_not_show_in_time_is_unknown_and_never_requested_twice(
    fake: FakeHeroku,
) -> None:
    fake.fail_next(1, "slow", method="PATCH", path="/formation$", delay=2.0)
    started = time.monotonic()
    with (
        client(fake, reconcile_s=0.6, reconcile_checks=4) as heroku,
        pytest.raises(HerokuOutcomeUnknown) as err,
    ):
        heroku.create_container_release(APP, {"web": NEW})
    # Bounded: one timed-out request, then at most four looks within 0.6 s.
    assert time.monotonic() - started < 2.0
    assert_unknown(err, f"`heroku releases -a {APP}`")
    assert "PATCH /apps/acme-web/formation" in str(err.value) and "4 looks" in str(err.value)
    assert len(fake.seen("GET", "/releases$")) == 1 + 4  # the version before, then the looks
    # Heroku finishes the one request it got: one release, never two.
    assert eventually(lambda: new_releases(fake)) == [(3, f"Deployed web ({NEW[7:19]})")]
    assert len(fake.seen("PATCH", "/formation$")) == 1


def test_a_rollback_still_being_made_after_the_timeout_is_adopted_not_requested_again(
    fake: FakeHeroku,
) -> None:
    fake.add_release(APP, {"web": NEW})  # v3
    fake.fail_next(1, "slow", method="POST", path="/releases$", delay=0.8)
    with client(fake) as heroku:
        made = heroku.rollback(APP, 2)
        assert heroku.counters.reconciled == 1
    assert len(fake.seen("POST", "/releases$")) == 1
    assert new_releases(fake, 3) == [(4, "Rollback to v2")]
    assert (made.version, made.rollback_of) == (4, 2)


def test_a_rollback_that_does_not_show_in_time_is_unknown_and_never_requested_twice(
    fake: FakeHeroku,
) -> None:
    fake.add_release(APP, {"web": NEW})  # v3
    fake.fail_next(1, "slow", method="POST", path="/releases$", delay=2.0)
    with (
        client(fake, reconcile_s=0.6, reconcile_checks=4) as heroku,
        pytest.raises(HerokuOutcomeUnknown) as err,
    ):
        heroku.rollback(APP, 2)
    assert_unknown(err, f"`heroku releases -a {APP}`")
    assert "'Rollback to v2'" in str(err.value)
    assert eventually(lambda: new_releases(fake, 3)) == [(4, "Rollback to v2")]
    assert len(fake.seen("POST", "/releases$")) == 1


def test_a_dyno_still_being_started_after_the_timeout_is_adopted_not_started_again(
    fake: FakeHeroku,
) -> None:
    fake.script_next_dyno(APP, DynoScript(output=["upgrading"], line_s=0.5))
    fake.fail_next(1, "slow", method="POST", path="/dynos$", delay=0.8)
    with client(fake) as heroku:
        dyno = heroku.run_detached(APP, COMMAND)
        assert heroku.counters.reconciled == 1
    assert len(fake.seen("POST", "/dynos$")) == 1
    assert list(fake.apps[APP].dynos) == [dyno.name]
    assert dyno.command == COMMAND and dyno.type == "run"


def test_a_dyno_that_does_not_show_in_time_is_unknown_and_never_started_twice(
    fake: FakeHeroku,
) -> None:
    fake.script_next_dyno(APP, DynoScript(output=["upgrading"], line_s=0.5))
    fake.fail_next(1, "slow", method="POST", path="/dynos$", delay=2.0)
    with (
        client(fake, reconcile_s=0.6, reconcile_checks=4) as heroku,
        pytest.raises(HerokuOutcomeUnknown) as err,
    ):
        heroku.run_detached(APP, COMMAND)
    assert_unknown(err, f"`heroku ps -a {APP}`")
    assert eventually(lambda: list(fake.apps[APP].dynos)) == ["run.4821"]
    assert len(fake.seen("POST", "/dynos$")) == 1


# -- the answer lost after Heroku acted, or before ------------------------------------------


def test_a_release_applied_then_dropped_is_found_at_the_first_look(fake: FakeHeroku) -> None:
    fake.fail_next(1, "drop", method="PATCH", path="/formation$")
    with client(fake) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW})
        assert heroku.counters.reconciled == 1
    assert new_releases(fake) == [(3, f"Deployed web ({NEW[7:19]})")] and made.version == 3
    assert len(fake.seen("PATCH", "/formation$")) == 1
    assert len(fake.seen("GET", "/releases$")) == 2  # the version before, one look


def test_a_connection_dropped_before_heroku_acted_is_unknown_not_sent_again(
    fake: FakeHeroku,
) -> None:
    """Changed with the new policy: a dropped connection looks the same to the client
    whether Heroku acted or not, so this is no longer sent again (it used to be)."""
    fake.fail_next(1, "drop-unapplied", method="PATCH", path="/formation$")
    with (
        client(fake, reconcile_s=0.3, reconcile_checks=3) as heroku,
        pytest.raises(HerokuOutcomeUnknown) as err,
    ):
        heroku.create_container_release(APP, {"web": NEW})
    assert_unknown(err, f"`heroku releases -a {APP}`")
    assert "RemoteProtocolError" in str(err.value)
    assert len(fake.seen("PATCH", "/formation$")) == 1
    assert new_releases(fake) == []


def test_a_500_does_not_say_it_was_not_done_so_it_is_not_sent_again(fake: FakeHeroku) -> None:
    fake.fail_next(1, "error", method="POST", path="/dynos$", status=500)
    with (
        client(fake, reconcile_s=0.3, reconcile_checks=3) as heroku,
        pytest.raises(HerokuOutcomeUnknown) as err,
    ):
        heroku.run_detached(APP, COMMAND)
    assert "answer 500" in str(err.value)
    assert len(fake.seen("POST", "/dynos$")) == 1 and not fake.apps[APP].dynos


# -- sent again only when Heroku certainly did not act --------------------------------------


@pytest.mark.parametrize("kind", ["429", "503"])
def test_a_release_turned_away_with_429_or_503_is_sent_again(fake: FakeHeroku, kind: str) -> None:
    fake.fail_next(2, kind, method="PATCH", path="/formation$", retry_after=0.05)
    with client(fake) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW})
        assert (heroku.counters.retries, heroku.counters.reconciled) == (2, 0)
    assert len(fake.seen("PATCH", "/formation$")) == 3
    assert new_releases(fake) == [(3, f"Deployed web ({NEW[7:19]})")] and made.version == 3


class RefuseFirst(httpx.BaseTransport):
    """A real transport to the fake, except that the first request of `method` fails to
    connect (nothing was sent), as when the API's address refuses connections."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.refused = 0
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == self.method and not self.refused:
            self.refused += 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return self.real.handle_request(request)

    def close(self) -> None:
        self.real.close()


def test_a_connection_refused_before_sending_is_sent_again(fake: FakeHeroku) -> None:
    transport = RefuseFirst("POST")
    with (
        httpx.Client(transport=transport, trust_env=False) as http,
        client(fake, client=http) as heroku,
    ):
        dyno = heroku.run_detached(APP, COMMAND)
        assert (heroku.counters.retries, heroku.counters.reconciled) == (1, 0)
    assert transport.refused == 1
    assert len(fake.seen("POST", "/dynos$")) == 1  # the refused one never arrived
    assert list(fake.apps[APP].dynos) == [dyno.name]
