"""`gonogo releases ENV` on the local provider: the ledger's releases, newest first."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def test_releases_lists_what_gonogo_released_newest_first(project: Any) -> None:
    empty = project.json("releases", "staging", check=0)
    assert empty["releases"] == [] and empty["platform"] is None
    assert not (project.root / ".gonogo" / "ledger.db").exists()  # reading created nothing

    first = project.head()
    project.gonogo("deploy", "staging", check=0)
    (project.root / "README.md").write_text("second\n")
    second = project.commit("WO-2: second")
    project.gonogo("deploy", "staging", check=0)

    doc = project.json("releases", "staging", check=0)
    assert [(r["version"], r["sha"], r["state"]) for r in doc["releases"]] == [
        ("v2", second, "live"),
        ("v1", first, "retired"),
    ]
    assert all(r["verified_at"] for r in doc["releases"])
    assert doc["platform"] is None  # the local provider keeps no releases of its own

    text = project.gonogo("releases", "staging", "--limit", "1", check=0).stdout
    assert "v2" in text and second[:7] in text and " v1 " not in text
    assert project.gonogo("releases", "nowhere", check=1).stderr.count("\n") == 1
    bad = project.gonogo("releases", "staging", "--limit", "0", check=1)
    assert "--limit 0" in bad.stderr and "Traceback" not in bad.stderr
