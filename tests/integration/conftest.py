"""Fixtures shared by the integration modules that build images or talk to the fake Heroku."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from buildah_env import require_buildah
from fakes.heroku_server import FakeServer, serve_fakes


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private buildah store (its storage.conf) for every CLI run of one test module."""
    require_buildah()
    base = tmp_path_factory.mktemp("buildah")
    conf = base / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{base / "root"}"\nrunroot = "{base / "run"}"\n'
    )
    yield conf
    shutil.rmtree(base / "root", ignore_errors=True)
    shutil.rmtree(base / "run", ignore_errors=True)


@pytest.fixture(scope="module")
def api_server() -> Iterator[FakeServer]:
    """The fake Heroku Platform API on 127.0.0.1, one per test module."""
    with serve_fakes() as running:
        yield running
