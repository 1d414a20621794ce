"""Against the real Heroku Platform API: runs only with HEROKU_API_KEY and
GONOGO_HEROKU_TEST_APP set (see README, "The heroku provider"). Read-only: it lists and
reads, it never releases, so it is safe against any app the key can see.

Network traffic leaves 127.0.0.1 only here, and only when a person asks for it.
"""

from __future__ import annotations

import os

import pytest

from gonogo.heroku import DEFAULT_BASE_URL, HerokuClient, HerokuError

KEY = os.environ.get("HEROKU_API_KEY", "")
APP = os.environ.get("GONOGO_HEROKU_TEST_APP", "")
# Only to try this file against the in-repo fake; the point of it is the real API.
API = os.environ.get("GONOGO_HEROKU_API_URL", DEFAULT_BASE_URL)

pytestmark = pytest.mark.skipif(
    not (KEY and APP),
    reason="live Heroku test: set HEROKU_API_KEY and GONOGO_HEROKU_TEST_APP to run it",
)


def test_the_real_api_answers_the_shapes_the_provider_reads() -> None:
    client = HerokuClient(KEY, base_url=API)
    app = client.app(APP)
    assert app.name == APP
    releases = client.releases(APP, limit=5)
    assert releases and releases == sorted(releases, key=lambda r: r.version, reverse=True)
    current = client.current_release(APP)
    assert current is not None and current.status in ("succeeded", "failed", "pending")
    assert isinstance(client.preboot_enabled(APP), bool)
    assert client.formation(APP) is not None
    diff = client.config_var_name_diff(APP, current, releases[-1])
    assert all(isinstance(name, str) for group in diff for name in group)


def test_a_wrong_key_is_one_line_without_the_key() -> None:
    with pytest.raises(HerokuError) as caught:
        HerokuClient("not-a-real-key-0000", base_url=API).app(APP)
    assert "not-a-real-key-0000" not in str(caught.value)
    assert "\n" not in str(caught.value)
