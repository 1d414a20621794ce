"""The Heroku client against the fake Platform API on 127.0.0.1: every method, and faults.

The fake checks every request and answer against the public schema (a violation fails the
test at teardown), so these also prove the client sends what the API documents.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gonogo.heroku import (
    DOCKER_RELEASES_ACCEPT,
    HerokuClient,
    HerokuError,
    HerokuOutcomeUnknown,
    HerokuUnavailable,
    Release,
)

# pytest puts tests/integration (not tests/) on sys.path; the fakes live in tests/fakes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.heroku_api import API_KEY, DynoScript, FakeHeroku, ReleaseScript
from fakes.heroku_server import FakeServer, serve_fakes

pytestmark = pytest.mark.integration

APP = "acme-web"
OLD = "sha256:" + "0a" * 32
NEW = "sha256:" + "1b" * 32
WORKER = "sha256:" + "2c" * 32


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with serve_fakes() as running:
        yield running


@pytest.fixture
def fake(server: FakeServer) -> Iterator[FakeHeroku]:
    """A fresh fake per test (one server per module): app v1, v2 = OLD, NEW pushed."""
    fresh = server.fresh(stream_max_s=2.0)
    fresh.add_app(APP, config={"DATABASE_URL": "postgres://secret", "MODE": "a"})
    fresh.add_release(APP, {"web": OLD})
    fresh.push_image(APP, "web", NEW)
    fresh.push_image(APP, "worker", WORKER)
    yield fresh
    fresh.close()
    assert not fresh.violations, fresh.violations


class Sleeps:
    """Records requested waits; really sleeps only a sliver, to keep the tests fast."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(min(seconds, 0.01))


def client(fake: FakeHeroku, **options: Any) -> HerokuClient:
    settings: dict[str, Any] = {
        "base_url": fake.url,
        "deadline_s": 3.0,
        "timeout_s": 0.5,
        "base_delay": 0.01,
        "max_delay": 0.05,
        "poll_s": 0.05,
        "stream_idle_s": 1.0,
    }
    settings.update(options)
    return HerokuClient(settings.pop("api_key", API_KEY), **settings)


def new_releases(fake: FakeHeroku, before: int) -> list[int]:
    return [r.version for r in fake.releases_of(APP) if r.version > before]


# -- reading ---------------------------------------------------------------------------


def test_app_features_preboot_and_formation(fake: FakeHeroku) -> None:
    with client(fake) as heroku:
        app = heroku.app(APP)
        assert (app.name, app.region, app.stack) == (APP, "us", "container")
        assert {f.name for f in heroku.features(APP)} >= {"preboot"}
        assert heroku.preboot_enabled(APP) is False
        fake.apps[APP].features["preboot"] = True
        assert heroku.preboot_enabled(APP) is True
        [web] = heroku.formation(APP)
        assert (web.type, web.quantity) == ("web", 1)


def test_releases_are_paged_with_range_newest_first(fake: FakeHeroku) -> None:
    fake.max_page = 2
    for n in range(5):
        fake.add_release(APP, {"web": f"sha256:{n:02d}" + "e" * 62})
    with client(fake) as heroku:
        versions = [r.version for r in heroku.releases(APP)]
        oldest = [r.version for r in heroku.releases(APP, newest_first=False, limit=3)]
        latest = heroku.releases(APP, limit=1)
    assert versions == list(range(7, 0, -1))
    assert oldest == [1, 2, 3]
    assert latest[0].current and latest[0].version == 7
    ranges = [s.headers.get("range") for s in fake.seen("GET", r"/releases$")]
    assert ranges[0] == "version ..; max=1000, order=desc"
    assert any(r is not None and r.startswith("version ]") for r in ranges), "Next-Range followed"


def test_release_by_version_or_id_maps_to_ledger_fields(fake: FakeHeroku) -> None:
    with client(fake) as heroku:
        by_version = heroku.release(APP, 2)
        by_id = heroku.release(APP, by_version.id)
    assert by_id == by_version
    assert (by_version.version, by_version.status, by_version.current) == (2, "succeeded", True)
    assert by_version.image_id == OLD[7:19]
    assert by_version.description == f"Deployed web ({OLD[7:19]})"


# -- releasing -------------------------------------------------------------------------


def test_container_release_is_followed_until_it_succeeds(fake: FakeHeroku) -> None:
    fake.script_next_release(APP, ReleaseScript(output=["Running migrations", "done"]))
    out: list[str] = []
    with client(fake) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW, "worker": WORKER})
        assert made.status == "pending" and made.output_stream_url
        final = heroku.follow_release(APP, made, deadline_s=3, on_output=out.append)
    assert (final.version, final.status, final.current) == (3, "succeeded", True)
    assert dict(final.images) == {"web": NEW[7:19], "worker": WORKER[7:19]}
    assert out == ["Running migrations", "done"]
    [patch] = fake.seen("PATCH", r"/formation$")
    assert patch.headers["accept"] == DOCKER_RELEASES_ACCEPT
    assert patch.body == {
        "updates": [
            {"type": "web", "docker_image": NEW},
            {"type": "worker", "docker_image": WORKER},
        ]
    }


def test_a_release_that_fails_is_reported_failed_with_its_output(fake: FakeHeroku) -> None:
    fake.script_next_release(
        APP, ReleaseScript(outcome="failed", output=["migrating", "ERROR: boom"])
    )
    out: list[str] = []
    with client(fake) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW})
        final = heroku.follow_release(APP, made.id, deadline_s=3, on_output=out.append)
        current = heroku.current_release(APP)
    assert final.status == "failed" and not final.current
    assert out == ["migrating", "ERROR: boom"]
    assert current is not None and current.version == 2  # the app keeps the old release


def test_following_past_the_deadline_returns_the_release_still_pending(
    fake: FakeHeroku,
) -> None:
    fake.script_next_release(APP, ReleaseScript(output=["slow"], duration_s=5))
    with client(fake) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW})
        started = time.monotonic()
        final = heroku.follow_release(APP, made, deadline_s=0.6, on_output=lambda _: None)
    assert final.status == "pending"
    assert time.monotonic() - started < 2.0


def test_output_stream_dropped_mid_release_resumes_without_repeating(
    fake: FakeHeroku,
) -> None:
    lines = [f"step {n}" for n in range(6)]
    fake.script_next_release(APP, ReleaseScript(output=lines, duration_s=0.3))
    fake.drop_release_stream(after_lines=2)
    out: list[str] = []
    with client(fake) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW})
        final = heroku.follow_release(APP, made, deadline_s=3, on_output=out.append)
    assert final.status == "succeeded"
    assert out == lines
    streams = fake.stream_requests
    assert len(streams) >= 2 and streams[-1].headers.get("range", "").startswith("bytes=")


def test_a_stream_dropped_after_the_release_ended_is_still_read_to_the_end(
    fake: FakeHeroku,
) -> None:
    lines = [f"step {n}" for n in range(4)]
    fake.script_next_release(APP, ReleaseScript(output=lines, duration_s=0.1))
    fake.drop_release_stream(after_lines=2)
    out: list[str] = []
    with client(fake) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW})
        time.sleep(0.3)  # the release phase is over before anyone follows it
        final = heroku.follow_release(APP, made, deadline_s=3, on_output=out.append)
    assert final.status == "succeeded"
    assert out == lines


def test_rollback_makes_one_release_copying_the_target(fake: FakeHeroku) -> None:
    fake.set_config(APP, MODE="b")  # v3: config only
    with client(fake) as heroku:
        made = heroku.rollback(APP, 2)
        config = heroku.release_config_vars(APP, made.version)
    assert (made.version, made.description) == (4, "Rollback to v2")
    assert made.rollback_of == 2
    assert config["MODE"] == "a"
    assert new_releases(fake, 3) == [4]


def test_config_var_diff_gives_names_only(fake: FakeHeroku) -> None:
    fake.set_config(APP, MODE="b", NEW_FLAG="on", DATABASE_URL=None)
    with client(fake) as heroku:
        diff = heroku.config_var_name_diff(APP, 2, 3)
        live = heroku.config_vars(APP)
    added, removed, changed = diff
    assert (added, removed, changed) == (("NEW_FLAG",), ("DATABASE_URL",), ("MODE",))
    assert "secret" not in repr(diff) and "on" not in repr(diff.added)
    assert live == {"MODE": "b", "NEW_FLAG": "on"}


# -- one-off dynos and logs --------------------------------------------------------------


def test_migration_dyno_output_and_exit_status_zero(fake: FakeHeroku) -> None:
    fake.script_next_dyno(APP, DynoScript(output=["upgrade a -> b", "upgrade b -> c"]))
    lines: list[str] = []
    with client(fake) as heroku:
        dyno = heroku.run_detached(APP, "alembic upgrade head", env={"LOG": "1"})
        assert dyno.type == "run" and dyno.name.startswith("run.")
        status = heroku.dyno_exit_status(APP, dyno.name, deadline_s=3, on_line=lines.append)
    assert status == 0
    assert [line.split(": ", 1)[1] for line in lines if "app[" in line] == [
        "upgrade a -> b",
        "upgrade b -> c",
    ]
    assert lines[-1].endswith(f"heroku[{dyno.name}]: Process exited with status 0")
    [create] = fake.seen("POST", r"/dynos$")
    assert create.body == {
        "command": "alembic upgrade head",
        "attach": False,
        "type": "run",
        "env": {"LOG": "1"},
    }


def test_a_dyno_that_exits_1_gives_1(fake: FakeHeroku) -> None:
    fake.script_next_dyno(APP, DynoScript(output=["relation exists"], exit_code=1))
    with client(fake) as heroku:
        dyno = heroku.run_detached(APP, "alembic upgrade head")
        status = heroku.dyno_exit_status(APP, dyno.name, deadline_s=3, on_line=lambda _: None)
    assert status == 1


def test_no_exit_line_by_the_deadline_is_unknown(fake: FakeHeroku) -> None:
    fake.script_next_dyno(APP, DynoScript(output=["still going"], exit_code=None))
    lines: list[str] = []
    with client(fake, stream_idle_s=0.3) as heroku:
        dyno = heroku.run_detached(APP, "alembic upgrade head")
        started = time.monotonic()
        status = heroku.dyno_exit_status(APP, dyno.name, deadline_s=1.0, on_line=lines.append)
    assert status is None
    assert time.monotonic() - started < 2.5
    assert any(line.endswith("still going") for line in lines)
    assert len(lines) == len(set(lines)), "no line delivered twice across reconnects"


def test_recent_logs_and_log_sessions(fake: FakeHeroku) -> None:
    fake.add_log(APP, "app", "web.1", "GET /healthz 200")
    fake.add_log(APP, "heroku", "router", "at=info method=GET path=/")
    with client(fake) as heroku:
        recent = heroku.recent_logs(APP, lines=2)
        url = heroku.log_session(APP, source="app", lines=10)
        got: list[str] = []
        result = heroku.stream_log(url, deadline_s=2, on_line=got.append)
    assert [line.split(" ", 1)[1] for line in recent] == [
        "app[web.1]: GET /healthz 200",
        "heroku[router]: at=info method=GET path=/",
    ]
    assert result.ended == "closed" and all(" app[" in line for line in got)


def test_stream_urls_never_get_the_api_key(fake: FakeHeroku) -> None:
    fake.script_next_release(APP, ReleaseScript(output=["x"]))
    with client(fake) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW})
        heroku.follow_release(APP, made, deadline_s=3, on_output=lambda _: None)
        heroku.recent_logs(APP)
    assert fake.stream_requests
    for seen in fake.stream_requests:
        assert "authorization" not in seen.headers
        assert API_KEY not in str(seen.headers)


# -- retries and faults -------------------------------------------------------------------


def test_a_429_storm_is_waited_out_as_retry_after_says(fake: FakeHeroku) -> None:
    fake.fail_next(3, "429", path=f"^/apps/{APP}$", retry_after=2)
    sleeps = Sleeps()
    with client(fake, sleep=sleeps, deadline_s=10) as heroku:
        app = heroku.app(APP)
    assert app.name == APP
    assert sleeps.waits == [2.0, 2.0, 2.0]
    assert len(fake.seen("GET", f"^/apps/{APP}$")) == 4


def test_a_retry_after_past_the_deadline_gives_up_at_once(fake: FakeHeroku) -> None:
    fake.fail_next(1, "429", path=f"^/apps/{APP}$", retry_after=60)
    sleeps = Sleeps()
    with (
        client(fake, sleep=sleeps, deadline_s=5) as heroku,
        pytest.raises(HerokuUnavailable) as err,
    ):
        heroku.app(APP)
    assert sleeps.waits == []
    assert "60s" in str(err.value) and "\n" not in str(err.value)


def test_low_ratelimit_remaining_slows_down_before_a_429(fake: FakeHeroku) -> None:
    fake.rate_limit_remaining = 12
    fake.refill_per_s = 0
    sleeps = Sleeps()
    with client(fake, sleep=sleeps, rate_limit_floor=20, refill_s=0.8) as heroku:
        heroku.app(APP)
        heroku.app(APP)
        assert heroku.rate_limit_remaining == 10
        assert heroku.counters.paced == 1
    assert sleeps.waits == [0.8]


def test_503s_are_retried(fake: FakeHeroku) -> None:
    fake.fail_next(2, "503", path="/releases$")
    with client(fake) as heroku:
        releases = heroku.releases(APP)
        assert heroku.counters.retries == 2
    assert [r.version for r in releases] == [2, 1]


def test_a_timeout_is_one_line_and_bounded(fake: FakeHeroku) -> None:
    fake.fail_next(20, "slow", path=f"^/apps/{APP}$", delay=1.0)
    started = time.monotonic()
    with (
        client(fake, deadline_s=1.0, timeout_s=0.3) as heroku,
        pytest.raises(HerokuUnavailable) as err,
    ):
        heroku.app(APP)
    message = str(err.value)
    assert time.monotonic() - started < 2.5
    assert f"GET /apps/{APP}" in message and "Timeout" in message
    assert "\n" not in message and API_KEY not in message


def test_patch_applied_then_connection_dropped_makes_exactly_one_release(
    fake: FakeHeroku,
) -> None:
    fake.fail_next(1, "drop", method="PATCH", path="/formation$")
    with client(fake) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW})
        assert heroku.counters.reconciled == 1
    assert new_releases(fake, 2) == [3] and made.version == 3
    assert len(fake.seen("PATCH", "/formation$")) == 1


def test_patch_applied_then_answer_too_late_makes_exactly_one_release(
    fake: FakeHeroku,
) -> None:
    fake.fail_next(1, "slow-after", method="PATCH", path="/formation$", delay=1.0)
    with client(fake, timeout_s=0.3) as heroku:
        made = heroku.create_container_release(APP, {"web": NEW})
    assert new_releases(fake, 2) == [3] and made.has_images({"web": NEW})
    assert len(fake.seen("PATCH", "/formation$")) == 1


def test_patch_dropped_before_it_was_applied_is_unknown_and_not_sent_again(
    fake: FakeHeroku,
) -> None:
    # A dropped connection looks the same whether Heroku acted or not: never sent twice.
    fake.fail_next(1, "drop-unapplied", method="PATCH", path="/formation$")
    with (
        client(fake, reconcile_s=0.3, reconcile_checks=3) as heroku,
        pytest.raises(HerokuOutcomeUnknown) as err,
    ):
        heroku.create_container_release(APP, {"web": NEW})
    assert "unknown" in str(err.value) and f"heroku releases -a {APP}" in str(err.value)
    assert new_releases(fake, 2) == []
    assert len(fake.seen("PATCH", "/formation$")) == 1


def test_rollback_applied_then_dropped_makes_exactly_one_release(fake: FakeHeroku) -> None:
    fake.add_release(APP, {"web": NEW})  # v3
    fake.fail_next(1, "drop", method="POST", path="/releases$")
    with client(fake) as heroku:
        made = heroku.rollback(APP, 2)
    assert made.description == "Rollback to v2"
    assert new_releases(fake, 3) == [4]


def test_dyno_started_then_dropped_is_not_started_twice(fake: FakeHeroku) -> None:
    fake.script_next_dyno(APP, DynoScript(output=["x"], line_s=0.5))
    fake.fail_next(1, "drop", method="POST", path="/dynos$")
    with client(fake) as heroku:
        dyno = heroku.run_detached(APP, "alembic upgrade head")
        assert heroku.counters.reconciled == 1
    assert list(fake.apps[APP].dynos) == [dyno.name]
    assert len(fake.seen("POST", "/dynos$")) == 1


# -- errors ----------------------------------------------------------------------------


def test_404_is_not_retried_and_says_heroku_id_and_message(fake: FakeHeroku) -> None:
    with client(fake) as heroku, pytest.raises(HerokuError) as err:
        heroku.app("nope")
    assert str(err.value) == "heroku API 404 not_found: Couldn't find that app. (GET /apps/nope)"
    assert (err.value.status, err.value.error_id) == (404, "not_found")
    assert not isinstance(err.value, HerokuUnavailable)
    assert len(fake.seen("GET", "^/apps/nope$")) == 1


def test_422_is_not_retried(fake: FakeHeroku) -> None:
    unpushed = "sha256:" + "9f" * 32
    with client(fake) as heroku, pytest.raises(HerokuError) as err:
        heroku.create_container_release(APP, {"web": unpushed})
    assert err.value.status == 422 and err.value.error_id == "invalid_params"
    assert str(err.value).startswith("heroku API 422 invalid_params: Image sha256:")
    assert str(err.value).endswith(f"(PATCH /apps/{APP}/formation)")
    assert len(fake.seen("PATCH", "/formation$")) == 1
    assert new_releases(fake, 2) == []


def test_the_api_key_is_never_in_an_error(fake: FakeHeroku) -> None:
    messages: list[str] = []
    with client(fake, api_key="HRKU-wrong-key-0000") as wrong, pytest.raises(HerokuError) as e1:
        wrong.app(APP)
    assert e1.value.status == 401
    messages.append(str(e1.value))
    fake.fail_next(
        1, "error", status=403, error_id="forbidden", message=f"key {API_KEY} may not do this"
    )
    with client(fake) as heroku:
        with pytest.raises(HerokuError) as e2:
            heroku.app(APP)
        messages.append(str(e2.value))
        fake.fail_next(50, "503")
        with pytest.raises(HerokuUnavailable) as e3:
            heroku.release(APP, 1)
        messages.append(str(e3.value))
    assert "<redacted>" in messages[1]
    for message in messages:
        assert API_KEY not in message and "HRKU-wrong" not in message
        assert "\n" not in message


def test_bad_input_is_refused_before_any_request(fake: FakeHeroku) -> None:
    with pytest.raises(HerokuError, match="plain http"):
        HerokuClient(API_KEY, base_url="http://api.example.com")
    with pytest.raises(HerokuError, match="API key"):
        HerokuClient("two words")
    with client(fake) as heroku:
        with pytest.raises(HerokuError, match="config digest"):
            heroku.create_container_release(APP, {"web": "registry.heroku.com/x/web:latest"})
        with pytest.raises(HerokuError, match="process type"):
            heroku.create_container_release(APP, {"web/../x": NEW})
    assert fake.seen("PATCH") == []


def test_release_model_reads_the_api_shape() -> None:
    release = Release.from_api(
        {
            "id": "01234567-89ab-cdef-0123-456789abcdef",
            "version": 12,
            "status": "succeeded",
            "current": True,
            "description": "Deploy 575bfa8",
            "output_stream_url": None,
            "slug": {"id": "11234567-89ab-cdef-0123-456789abcdef"},
        }
    )
    assert (release.commit, release.image_id, release.slug_id) == (
        "575bfa8",
        None,
        "11234567-89ab-cdef-0123-456789abcdef",
    )
    with pytest.raises(HerokuError, match="'version'"):
        Release.from_api({"id": "x", "version": "12", "status": "succeeded"})
