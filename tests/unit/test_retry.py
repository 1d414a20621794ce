"""The one retry policy for remote calls: what is retried, how long it waits, when it stops."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from gonogo.retry import RemoteError, call_with_retry

# pytest puts tests/unit (not tests/) on sys.path; the fakes live in tests/fakes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes import github as fake_github
from fakes.github import FakeGitHub

github_fake = fake_github.github_fake  # the fixture, for this module's tests

URL = "http://127.0.0.1:9/repos/acme/app"
WALL = 1_700_000_000.0


class FakeTime:
    """A clock that only moves when the policy sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def t() -> FakeTime:
    return FakeTime()


def response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", URL))


def script(*answers: httpx.Response | Exception) -> tuple[Callable[[], httpx.Response], list[int]]:
    """A call that gives these answers in turn (the last one repeats); counts its calls."""
    calls = [0]

    def fn() -> httpx.Response:
        answer = answers[min(calls[0], len(answers) - 1)]
        calls[0] += 1
        if isinstance(answer, Exception):
            raise answer
        return answer

    return fn, calls


def retry(fn: Callable[[], httpx.Response], t: FakeTime, **kw: object) -> httpx.Response:
    options: dict[str, object] = {
        "deadline_s": 30.0,
        "sleep": t.sleep,
        "clock": t.clock,
        "rng": lambda: 1.0,
        "wall": lambda: WALL,
    }
    options.update(kw)
    return call_with_retry(fn, **options)  # type: ignore[arg-type]


def test_500_500_200_returns_the_200_after_three_calls(t: FakeTime) -> None:
    fn, calls = script(response(500), response(502), response(200))
    assert retry(fn, t).status_code == 200
    assert calls[0] == 3
    assert len(t.sleeps) == 2


def test_backoff_is_exponential_with_full_jitter_and_capped(t: FakeTime) -> None:
    fn, _ = script(response(503))
    draws = iter([0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(RemoteError):
        retry(fn, t, attempts=6, base_delay=0.5, max_delay=3.0, rng=lambda: next(draws))
    # rng() * min(max_delay, base * 2**n): 0.5*0.5, 1.0, 2.0, then capped at 3.0.
    assert t.sleeps == [0.25, 1.0, 2.0, 3.0, 3.0]


def test_jitter_draws_a_fraction_of_the_backoff(t: FakeTime) -> None:
    fn, _ = script(response(500), response(200))
    retry(fn, t, base_delay=1.0, rng=lambda: 0.25)
    assert t.sleeps == [0.25]


def test_429_retry_after_seconds_is_honoured(t: FakeTime) -> None:
    fn, calls = script(response(429, {"Retry-After": "7"}), response(200))
    assert retry(fn, t).status_code == 200
    assert t.sleeps == [7.0]
    assert calls[0] == 2


def test_429_retry_after_http_date_is_honoured(t: FakeTime) -> None:
    when = format_datetime(datetime.fromtimestamp(WALL + 12, UTC), usegmt=True)
    fn, _ = script(response(429, {"Retry-After": when}), response(200))
    assert retry(fn, t).status_code == 200
    assert t.sleeps == [pytest.approx(12.0)]


def test_github_403_rate_limit_waits_for_the_reset(t: FakeTime) -> None:
    limited = response(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(WALL) + 9)})
    fn, calls = script(limited, response(200))
    assert retry(fn, t).status_code == 200
    assert t.sleeps == [pytest.approx(9.0)]
    assert calls[0] == 2


def test_ietf_ratelimit_headers_are_understood(t: FakeTime) -> None:
    fn, _ = script(
        response(429, {"RateLimit-Remaining": "0", "RateLimit-Reset": "4"}), response(200)
    )
    assert retry(fn, t).status_code == 200
    assert t.sleeps == [4.0]


def test_a_wait_past_the_deadline_gives_up_at_once(t: FakeTime) -> None:
    fn, calls = script(response(429, {"Retry-After": "120"}), response(200))
    with pytest.raises(RemoteError) as err:
        retry(fn, t, deadline_s=10.0)
    assert calls[0] == 1
    assert t.sleeps == []
    assert "120s" in str(err.value) and "deadline" in str(err.value)
    assert err.value.status == 429


def test_404_is_returned_without_retrying(t: FakeTime) -> None:
    fn, calls = script(response(404), response(200))
    assert retry(fn, t).status_code == 404
    assert calls[0] == 1
    assert t.sleeps == []


@pytest.mark.parametrize("status", [400, 401, 403, 410, 422])
def test_other_4xx_are_never_retried(t: FakeTime, status: int) -> None:
    fn, calls = script(response(status), response(200))
    assert retry(fn, t).status_code == status
    assert calls[0] == 1


def test_deadline_bounds_the_total_time(t: FakeTime) -> None:
    fn, calls = script(response(500))
    with pytest.raises(RemoteError) as err:
        retry(fn, t, deadline_s=2.0, attempts=1000, base_delay=0.2, max_delay=1.0)
    assert sum(t.sleeps) <= 2.0
    assert calls[0] < 1000
    assert "HTTP 500" in str(err.value)


def test_attempts_bound_the_count(t: FakeTime) -> None:
    fn, calls = script(response(503))
    with pytest.raises(RemoteError) as err:
        retry(fn, t, attempts=3)
    assert calls[0] == 3
    assert "3 attempt(s)" in str(err.value)
    assert err.value.status == 503


def test_transport_errors_are_retried(t: FakeTime) -> None:
    request = httpx.Request("GET", URL)
    fn, calls = script(
        httpx.ConnectError("connection refused", request=request),
        httpx.ReadTimeout("timed out", request=request),
        response(200),
    )
    assert retry(fn, t).status_code == 200
    assert calls[0] == 3


def test_remote_error_is_one_line_naming_host_and_last_error(t: FakeTime) -> None:
    request = httpx.Request("GET", URL)
    fn, _ = script(httpx.ConnectError("[Errno 111] Connection refused\nmore", request=request))
    with pytest.raises(RemoteError) as err:
        retry(fn, t, attempts=2)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("127.0.0.1: ")
    assert "ConnectError" in message and "Connection refused" in message


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    yield port


def test_connection_refused_is_retried_then_remote_error(closed_port: int) -> None:
    calls = [0]
    with httpx.Client(trust_env=False) as client:

        def fn() -> httpx.Response:
            calls[0] += 1
            return client.get(f"http://127.0.0.1:{closed_port}/", timeout=1.0)

        with pytest.raises(RemoteError) as err:
            call_with_retry(fn, deadline_s=5.0, attempts=3, base_delay=0.01)
    assert calls[0] == 3
    assert "127.0.0.1" in str(err.value) and "ConnectError" in str(err.value)


def test_real_server_500_500_200(github_fake: FakeGitHub) -> None:
    github_fake.add_repo("acme/app")
    github_fake.fail_next(2, "500")
    with httpx.Client(trust_env=False) as client:
        res = call_with_retry(
            lambda: client.get(
                f"{github_fake.url}/repos/acme/app/issues",
                headers={"Authorization": f"Bearer {github_fake.token}"},
            ),
            deadline_s=5.0,
            base_delay=0.01,
        )
    assert res.status_code == 200
    assert len(github_fake.seen("/issues")) == 3


def test_real_server_dropped_connection_is_retried(github_fake: FakeGitHub) -> None:
    github_fake.add_repo("acme/app")
    github_fake.fail_next(1, "drop")
    with httpx.Client(trust_env=False) as client:
        res = call_with_retry(
            lambda: client.get(
                f"{github_fake.url}/repos/acme/app/issues",
                headers={"Authorization": f"Bearer {github_fake.token}"},
            ),
            deadline_s=5.0,
            base_delay=0.01,
        )
    assert res.status_code == 200
