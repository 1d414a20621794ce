"""A private buildah store for the image tests.

vfs storage under a temp dir with chroot isolation builds as root without a daemon, and
keeps every test image out of the machine's own store. Removed when the tests finish.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gonogo.images.build import Builder

INSTALL = "buildah is not installed: apt-get install buildah (the image tests build real images)"


def require_buildah() -> str:
    """The buildah path; a missing buildah fails the tests (a skip would hide a gap in CI)."""
    path = shutil.which("buildah")
    if path is None:
        pytest.fail(INSTALL, pytrace=False)
    return path


@dataclass(frozen=True)
class BuildahStore:
    executable: str
    root: Path
    runroot: Path

    @property
    def global_args(self) -> tuple[str, ...]:
        return ("--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", "vfs")

    def builder(self) -> Builder:
        return Builder("buildah", self.executable, "test store (vfs)", True, self.global_args)


@contextmanager
def buildah_store(base: Path) -> Iterator[BuildahStore]:
    store = BuildahStore(require_buildah(), base / "root", base / "runroot")
    try:
        yield store
    finally:
        for path in (store.root, store.runroot):
            if path.exists():  # absent when no test in the session built anything
                shutil.rmtree(path)
