"""A typed client for the Heroku Platform API (no `heroku` CLI); see api.py."""

from gonogo.heroku.api import HerokuClient
from gonogo.heroku.http import API_ACCEPT, DEFAULT_BASE_URL, DOCKER_RELEASES_ACCEPT
from gonogo.heroku.logs import MAX_LOG_LINES
from gonogo.heroku.models import (
    App,
    ConfigVarDiff,
    Dyno,
    Feature,
    FormationEntry,
    HerokuError,
    HerokuOutcomeUnknown,
    HerokuUnavailable,
    Release,
    StreamResult,
    short_image_id,
)

__all__ = [
    "API_ACCEPT",
    "DEFAULT_BASE_URL",
    "DOCKER_RELEASES_ACCEPT",
    "MAX_LOG_LINES",
    "App",
    "ConfigVarDiff",
    "Dyno",
    "Feature",
    "FormationEntry",
    "HerokuClient",
    "HerokuError",
    "HerokuOutcomeUnknown",
    "HerokuUnavailable",
    "Release",
    "StreamResult",
    "short_image_id",
]
