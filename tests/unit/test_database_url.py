"""Database URLs: shown without their password; the server they name, asked for its version."""

from __future__ import annotations

import pytest

from gonogo.errors import GonogoError
from gonogo.migrations.alembic import current_revisions, display_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db.internal:5432/app",
         "postgresql://app:<redacted>@db.internal:5432/app"),
        ("postgres://app:p%40ss@127.0.0.1/app?sslmode=require",
         "postgres://app:<redacted>@127.0.0.1/app?sslmode=require"),
        ("postgresql://app@127.0.0.1/app?password=s3cret&sslmode=disable",
         "postgresql://app@127.0.0.1/app?password=<redacted>&sslmode=disable"),
        ("postgresql://127.0.0.1/app?sslmode=verify-full&sslpassword=k3y",
         "postgresql://127.0.0.1/app?sslmode=verify-full&sslpassword=<redacted>"),
        ("sqlite:///var/app.db", "sqlite:///var/app.db"),
        ("postgresql://app@127.0.0.1/app", "postgresql://app@127.0.0.1/app"),
    ],
)
def test_password_is_redacted_wherever_the_url_holds_it(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_an_unreachable_database_is_named_without_its_query_password() -> None:
    # Port 1 on 127.0.0.1 refuses at once: the error names the URL, not the secret.
    url = "postgresql://app@127.0.0.1:1/app?password=hunter2-secret"
    with pytest.raises(GonogoError) as caught:
        current_revisions(url, connect_timeout=2)
    message = str(caught.value)
    assert "hunter2-secret" not in message
    assert "127.0.0.1:1/app?password=<redacted>" in message


def test_server_version_is_none_for_other_databases_and_unreachable_servers() -> None:
    from gonogo.migrations.alembic import server_version

    assert server_version("sqlite:///nowhere.db") is None
    assert server_version("postgresql://app@127.0.0.1:1/app", connect_timeout=2) is None
