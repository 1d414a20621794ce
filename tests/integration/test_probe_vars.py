"""Probes may expect a config var's value: `{vars.NAME}` reads what the release runs with."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import config_text

pytestmark = pytest.mark.integration

PROBES = """\
[verify]
deadline = "{deadline}"

[[verify.probes]]
name = "health"
path = "/api/health"
json = {{ status = "healthy" }}

[[verify.probes]]
name = "version"
path = "/api/version"
json = {{ gitSha = "{{sha}}", version = "{{vars.EXPECTED_VERSION}}" }}
"""


def use_probes(project: Any, expected: str, deadline: str = "15s") -> None:
    text = config_text(
        project.staging_port, project.production_port, deadline=deadline,
        staging_vars=f'EXPECTED_VERSION = "{expected}", SECRET_TOKEN = "tok-never-shown-42"',
    )
    text = text.replace(f'[verify]\ndeadline = "{deadline}"\n', PROBES.format(deadline=deadline))
    project.write_config(text)


def test_a_probe_expecting_a_config_var_passes_and_fails_on_its_value(project: Any) -> None:
    use_probes(project, "0.2.10")  # the example app's version
    doc = project.json("deploy", "staging", check=0)
    assert doc["verification"]["ok"] is True

    use_probes(project, "9.9.9", deadline="3s")
    proc = project.gonogo("deploy", "staging", check=3)
    assert "version" in proc.stderr and "9.9.9" in proc.stderr, proc.stderr
    # Only the variables a probe names are read into the probe context.
    for path in (project.root / ".gonogo" / "evidence").rglob("probes-*.json"):
        assert "tok-never-shown-42" not in path.read_text()
