"""The fake Heroku Platform API against the public schema, and the schema facts it relies on.

The fake is only worth its contract tests if it is strict: these requests go to it raw
(httpx, no gonogo client) and check that it enforces what the schema and HEROKU_NOTES say
(auth, Accept and its docker-releases variant, unknown fields, types, Range paging,
RateLimit-Remaining, error bodies), and that an answer the schema forbids is caught.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# pytest puts tests/unit (not tests/) on sys.path; the fakes live in tests/fakes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.heroku_api import (
    API_KEY,
    IMPLEMENTED,
    DynoScript,
    FakeHeroku,
    ReleaseScript,
    SchemaViolation,
    default_schema,
)
from fakes.heroku_server import FakeServer, serve_fakes

APP = "acme-web"
IMAGE = "sha256:" + "1b" * 32
V3 = "application/vnd.heroku+json; version=3"
DOCKER = "application/vnd.heroku+json; version=3.docker-releases"
ERROR_KEYS = {"id", "message"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with serve_fakes() as running:
        yield running


@pytest.fixture
def fake(server: FakeServer) -> Iterator[FakeHeroku]:
    fresh = server.fresh(stream_max_s=1.0)
    fresh.add_app(APP, config={"SECRET": "s3cr3t"})
    fresh.push_image(APP, "web", IMAGE)
    yield fresh
    fresh.close()
    assert not fresh.violations, fresh.violations


def call(
    fake: FakeHeroku,
    method: str,
    path: str,
    *,
    body: Any = None,
    accept: str | None = V3,
    key: str | None = API_KEY,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    sent = dict(headers or {})
    if accept is not None:
        sent["Accept"] = accept
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    with httpx.Client(trust_env=False, timeout=5) as client:
        return client.request(method, f"{fake.url}{path}", json=body, headers=sent)


def assert_error(response: httpx.Response, status: int, error_id: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_KEYS and body["id"] == error_id
    assert isinstance(body["message"], str) and body["message"]


# -- the schema, and what the fake takes from it -------------------------------------------


def test_every_route_the_fake_serves_is_a_schema_link() -> None:
    schema = default_schema()
    keys = {link.key for link in schema.links}
    assert keys >= IMPLEMENTED
    routes = {(schema.link(*k).method, schema.link(*k).href) for k in IMPLEMENTED}
    assert (
        "PATCH",
        "/apps/{(%23%2Fdefinitions%2Fapp%2Fdefinitions%2Fidentity)}/formation",
    ) in routes
    assert schema.link("release", "List").pattern.match("/apps/acme-web/releases")
    assert not schema.link("release", "List").pattern.match("/apps/acme-web/releases/3")


def test_schema_facts_the_client_relies_on() -> None:
    doc = default_schema().original["definitions"]
    # Per-release config vars exist: the config diff needs no workaround.
    titles = {(link["method"], link["title"]) for link in doc["config-var"]["links"]}
    assert ("GET", "Info for App Release") in titles
    # The plain formation update has no docker_image: only the variant header adds it.
    update = doc["formation"]["definitions"]["update"]
    assert update["additionalProperties"] is False and "docker_image" not in update["properties"]
    # Log sessions filter on `dyno_name` (older docs said `dyno`).
    [create] = doc["log-session"]["links"]
    assert (
        "dyno_name" in create["schema"]["properties"]
        and "dyno" not in create["schema"]["properties"]
    )
    # Release create and rollback share one href and method: the body decides.
    posts = [link for link in doc["release"]["links"] if link["method"] == "POST"]
    assert {link["title"] for link in posts} == {"Create", "Rollback"}
    assert len({link["href"] for link in posts}) == 1
    assert doc["release"]["definitions"]["status"]["enum"] == [
        "failed",
        "pending",
        "succeeded",
        "expired",
    ]


# -- requests the fake refuses --------------------------------------------------------------


def test_no_key_or_a_wrong_key_is_401(fake: FakeHeroku) -> None:
    assert_error(call(fake, "GET", f"/apps/{APP}", key=None), 401, "unauthorized")
    assert_error(call(fake, "GET", f"/apps/{APP}", key="nope"), 401, "unauthorized")


def test_the_api_version_is_required(fake: FakeHeroku) -> None:
    assert_error(call(fake, "GET", f"/apps/{APP}", accept=None), 400, "missing_version")
    assert_error(
        call(fake, "GET", f"/apps/{APP}", accept="application/json"), 400, "missing_version"
    )
    assert_error(
        call(fake, "GET", f"/apps/{APP}", accept="application/vnd.heroku+json; version=3.nope"),
        400,
        "bad_request",
    )


def test_an_unknown_field_is_400_and_a_wrong_type_422(fake: FakeHeroku) -> None:
    path = f"/apps/{APP}/dynos"
    unknown = call(fake, "POST", path, body={"command": "true", "detached": True})
    assert_error(unknown, 400, "invalid_params")
    assert "detached" in unknown.json()["message"]
    assert_error(call(fake, "POST", path, body={"command": 5}), 422, "invalid_params")
    assert_error(call(fake, "POST", path, body={"attach": False}), 422, "invalid_params")
    assert_error(
        call(fake, "POST", path, body={"command": "x", "env": {"A-B": "1"}}), 400, "invalid_params"
    )
    assert_error(
        call(fake, "POST", f"/apps/{APP}/log-sessions", body={"dyno": "run.1"}),
        400,
        "invalid_params",
    )
    assert fake.apps[APP].dynos == {}


def test_docker_image_needs_the_docker_releases_variant(fake: FakeHeroku) -> None:
    body = {"updates": [{"type": "web", "docker_image": IMAGE}]}
    path = f"/apps/{APP}/formation"
    assert_error(call(fake, "PATCH", path, body=body), 400, "invalid_params")
    assert len(fake.releases_of(APP)) == 1
    bad = {"updates": [{"type": "web", "docker_image": "registry.heroku.com/x:latest"}]}
    assert_error(call(fake, "PATCH", path, body=bad, accept=DOCKER), 422, "invalid_params")
    ok = call(fake, "PATCH", path, body=body, accept=DOCKER)
    assert ok.status_code == 200 and [f["type"] for f in ok.json()] == ["web"]
    assert fake.releases_of(APP)[-1].description == f"Deployed web ({IMAGE[7:19]})"


def test_release_post_is_told_apart_by_its_body(fake: FakeHeroku) -> None:
    path = f"/apps/{APP}/releases"
    first = fake.releases_of(APP)[0]
    rollback = call(fake, "POST", path, body={"release": first.id})
    assert rollback.status_code == 201 and rollback.json()["description"] == "Rollback to v1"
    assert_error(call(fake, "POST", path, body={"slug": first.id}), 404, "not_found")
    assert_error(
        call(fake, "POST", path, body={"release": first.id, "slug": first.id}),
        400,
        "invalid_params",
    )
    assert_error(call(fake, "POST", path, body={"release": "v1"}), 422, "invalid_params")


def test_paths_are_checked_against_the_schema_identities(fake: FakeHeroku) -> None:
    assert_error(call(fake, "GET", "/apps/Not_An_App"), 404, "not_found")
    assert_error(call(fake, "GET", f"/apps/{APP}/releases/v1"), 404, "not_found")
    assert call(fake, "GET", f"/apps/{fake.apps[APP].id}").status_code == 200
    assert call(fake, "GET", f"/apps/{APP}/releases/1").status_code == 200
    assert_error(call(fake, "GET", "/no/such/endpoint"), 404, "not_found")
    assert_error(call(fake, "DELETE", f"/apps/{APP}"), 501, "not_implemented")


# -- answers -------------------------------------------------------------------------------


def test_every_answer_carries_ratelimit_remaining(fake: FakeHeroku) -> None:
    answers = [
        call(fake, "GET", f"/apps/{APP}"),
        call(fake, "GET", "/apps/nope"),
        call(fake, "GET", f"/apps/{APP}", key="nope"),
    ]
    remaining = [int(r.headers["RateLimit-Remaining"]) for r in answers]
    assert remaining[0] > remaining[1] > remaining[2] > 0


def test_an_empty_pool_is_429_rate_limit(fake: FakeHeroku) -> None:
    fake.rate_limit_remaining = 0.5
    fake.refill_per_s = 0
    answer = call(fake, "GET", f"/apps/{APP}")
    assert_error(answer, 429, "rate_limit")
    assert answer.headers["RateLimit-Remaining"] == "0"


def test_range_pages_206_with_next_range(fake: FakeHeroku) -> None:
    for n in range(4):
        fake.add_release(APP, {"web": f"sha256:{n:02d}" + "f" * 62})
    path = f"/apps/{APP}/releases"
    first = call(fake, "GET", path, headers={"Range": "version ..; max=2, order=desc"})
    assert first.status_code == 206
    assert first.headers["Accept-Ranges"] == "id, version"
    assert [r["version"] for r in first.json()] == [5, 4]
    second = call(fake, "GET", path, headers={"Range": first.headers["Next-Range"]})
    assert [r["version"] for r in second.json()] == [3, 2] and second.status_code == 206
    third = call(fake, "GET", path, headers={"Range": second.headers["Next-Range"]})
    assert third.status_code == 200 and "Next-Range" not in third.headers
    assert [r["version"] for r in third.json()] == [1]
    ascending = call(fake, "GET", path, headers={"Range": "version 2..3"})
    assert [r["version"] for r in ascending.json()] == [2, 3]
    unranged = [r["id"] for r in call(fake, "GET", path).json()]
    assert unranged == sorted(unranged)  # by id, not by version, unless asked
    assert_error(
        call(fake, "GET", path, headers={"Range": "name ..; max=2"}),
        416,
        "requested_range_not_satisfiable",
    )


def test_error_bodies_and_release_objects_have_the_documented_shape(fake: FakeHeroku) -> None:
    body = call(fake, "GET", f"/apps/{APP}/releases/1").json()
    assert {"id", "version", "status", "current", "description", "output_stream_url"} <= set(body)
    assert_error(call(fake, "GET", f"/apps/{APP}/releases/99"), 404, "not_found")


# -- answers the schema forbids ---------------------------------------------------------------


def good_release(fake: FakeHeroku) -> dict[str, Any]:
    answer = call(fake, "GET", f"/apps/{APP}/releases/1").json()
    assert isinstance(answer, dict)
    return answer


@pytest.mark.parametrize(
    ("mutation", "where"),
    [
        (lambda r: r.update(docker_image="sha256:x"), "docker_image"),
        (lambda r: r.pop("current"), "current"),
        (lambda r: r.update(status="done"), "status"),
        (lambda r: r.update(version="3"), "version"),
        (lambda r: r.update(created_at="yesterday"), "created_at"),
        (lambda r: r.update(id="not-a-uuid"), "id"),
        (lambda r: r["user"].update(name="ops"), "user"),
    ],
)
def test_a_release_answer_the_schema_forbids_raises(
    fake: FakeHeroku, mutation: Any, where: str
) -> None:
    schema = default_schema()
    link = schema.link("release", "Info")
    release = good_release(fake)
    schema.validate_response(link, 200, release)
    broken = copy.deepcopy(release)
    mutation(broken)
    with pytest.raises(SchemaViolation) as err:
        schema.validate_response(link, 200, broken)
    assert where in str(err.value)


def test_an_error_body_with_other_fields_raises() -> None:
    schema = default_schema()
    link = schema.link("app", "Info")
    with pytest.raises(SchemaViolation):
        schema.validate_response(link, 404, {"id": "not_found", "message": "x", "extra": 1})
    with pytest.raises(SchemaViolation):
        schema.validate_response(link, 404, {"message": "x"})


def test_a_bad_answer_in_the_server_is_recorded_and_never_sent(fake: FakeHeroku) -> None:
    def add_field(link: Any, answer: Any) -> Any:
        if link.key == ("release", "List"):
            return [{**r, "image": "x"} for r in answer]
        return answer

    fake.response_mutators.append(add_field)
    answer = call(fake, "GET", f"/apps/{APP}/releases")
    assert_error(answer, 500, "fake_schema_violation")
    assert call(fake, "GET", f"/apps/{APP}").status_code == 200  # others unaffected
    assert len(fake.violations) == 1 and "image" in fake.violations[0]
    fake.violations.clear()  # seen and expected: the fixture fails a test on any other


# -- streams ---------------------------------------------------------------------------------


def test_log_session_lines_look_like_logplex(fake: FakeHeroku) -> None:
    fake.script_next_dyno(APP, DynoScript(output=["hello"], exit_code=3))
    dyno = call(
        fake, "POST", f"/apps/{APP}/dynos", body={"command": "echo hello", "attach": False}
    ).json()
    assert dyno["state"] == "starting" and re.fullmatch(r"run\.\d+", dyno["name"])
    session = call(
        fake, "POST", f"/apps/{APP}/log-sessions", body={"dyno_name": dyno["name"], "tail": True}
    )
    assert session.status_code == 201 and set(session.json()) == {
        "created_at",
        "id",
        "logplex_url",
        "updated_at",
    }
    lines: list[str] = []
    with (
        httpx.Client(timeout=5) as client,
        client.stream("GET", session.json()["logplex_url"]) as stream,
    ):
        for line in stream.iter_lines():
            lines.append(line)
            if "Process exited" in line:
                break
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"
    name = re.escape(dyno["name"])
    assert re.fullmatch(rf"{stamp} app\[{name}\]: hello", lines[2])
    assert re.fullmatch(rf"{stamp} heroku\[{name}\]: Process exited with status 3", lines[-1])


def test_release_output_resumes_with_a_byte_range(fake: FakeHeroku) -> None:
    fake.script_next_release(APP, ReleaseScript(output=["one", "two", "three"], duration_s=0.05))
    made = call(
        fake,
        "PATCH",
        f"/apps/{APP}/formation",
        body={"updates": [{"type": "web", "docker_image": IMAGE}]},
        accept=DOCKER,
    )
    assert made.status_code == 200
    url = fake.releases_of(APP)[-1]
    release = call(fake, "GET", f"/apps/{APP}/releases/{url.version}").json()
    with httpx.Client(timeout=5) as client:
        whole = client.get(release["output_stream_url"])
        rest = client.get(release["output_stream_url"], headers={"Range": "bytes=4-"})
    assert (whole.status_code, whole.text) == (200, "one\ntwo\nthree\n")
    assert (rest.status_code, rest.text) == (206, "two\nthree\n")
