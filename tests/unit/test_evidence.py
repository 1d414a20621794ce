"""Evidence folders and the Redactor: no secret from the environment lands in a file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gonogo.evidence import Evidence, Redactor, looks_secret, stamp

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (.*)$")


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "HEROKU_API_KEY",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
        "SMTP_PASSWD",
        "GOOGLE_CREDENTIALS",
        "BASIC_AUTH",
        "DATABASE_URL",
        "api_key",
    ],
)
def test_secret_looking_names(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["NODE_ENV", "PORT", "PATH", "HOME", "ENV", "ALLOW_PROD"])
def test_ordinary_names(name: str) -> None:
    assert not looks_secret(name)


# -- Redactor ------------------------------------------------------------------------------------


def test_redacts_known_secret_values() -> None:
    r = Redactor(["supersecretvalue"])
    assert (
        r.text("key=supersecretvalue; again supersecretvalue") == "key=<redacted>; again <redacted>"
    )
    assert r.text("nothing here") == "nothing here"


def test_longest_secret_wins_when_values_overlap() -> None:
    r = Redactor(["abcd", "abcdefgh"])
    assert r.text("abcdefgh") == "<redacted>"
    assert "efgh" not in r.text("x abcdefgh y")


def test_secret_with_regex_characters_is_matched_literally() -> None:
    r = Redactor(["p4$$.w*rd(1)"])
    assert r.text("pw=p4$$.w*rd(1)!") == "pw=<redacted>!"
    assert r.text("pw=p4$$xw*rd(1)") == "pw=p4$$xw*rd(1)"


def test_short_values_are_not_redacted() -> None:
    r = Redactor(["abc", "on", ""])
    assert r.text("abc on the table") == "abc on the table"
    env = Redactor.from_environ({"API_KEY": "abc", "DB_PASSWORD": "longenough"})
    assert env.text("abc and longenough") == "abc and <redacted>"


def test_from_environ_takes_only_secret_looking_names() -> None:
    r = Redactor.from_environ(
        {
            "HEROKU_API_KEY": "supersecretvalue",
            "NODE_ENV": "production",
            "GITHUB_TOKEN": "",
            "DATABASE_URL": "postgres://app:dbpass99@db:5432/app",
        },
        extra=["extra-secret-1"],
    )
    out = r.text("supersecretvalue production extra-secret-1 postgres://app:dbpass99@db:5432/app")
    assert "supersecretvalue" not in out
    assert "extra-secret-1" not in out
    assert "dbpass99" not in out
    assert "production" in out


@pytest.mark.parametrize(
    "url,expected",
    [
        ("postgresql://u:pw@h/db", "postgresql://u:<redacted>@h/db"),
        (
            "postgresql+psycopg://app:s3cr3t@db.internal:5432/app",
            "postgresql+psycopg://app:<redacted>@db.internal:5432/app",
        ),
        (
            "https://user:tok_123@registry.example/v2/",
            "https://user:<redacted>@registry.example/v2/",
        ),
        ("amqp://guest:guest@localhost:5672//", "amqp://guest:<redacted>@localhost:5672//"),
    ],
)
def test_url_passwords_are_redacted_without_knowing_them(url: str, expected: str) -> None:
    r = Redactor()
    assert r.text(url) == expected
    assert r.text(f"connecting to {url} now") == f"connecting to {expected} now"


def test_url_password_with_empty_user_is_redacted() -> None:
    """Heroku Redis hands out `rediss://:PASSWORD@host:port` (no user name)."""
    out = Redactor().text("REDIS_URL=rediss://:p4ssw0rdvalue@ec2-1-2-3-4.compute.example:6380")
    assert "p4ssw0rdvalue" not in out
    assert "rediss://" in out and "ec2-1-2-3-4.compute.example:6380" in out


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com:8443/path",
        "git@github.com:owner/repo.git",
        "ssh://git@github.com/owner/repo",
        "http://127.0.0.1:8000/api/health",
        "mailto:someone@example.com",
    ],
)
def test_urls_without_passwords_are_untouched(text: str) -> None:
    assert Redactor().text(text) == text


def test_data_redacts_nested_values_and_keeps_types() -> None:
    r = Redactor(["supersecretvalue"])
    data = {
        "a": "x supersecretvalue",
        "b": ["supersecretvalue", 1, None, True],
        "c": {"d": ("supersecretvalue", 2.5)},
        "e": 7,
    }
    out = r.data(data)
    assert out == {
        "a": "x <redacted>",
        "b": ["<redacted>", 1, None, True],
        "c": {"d": ["<redacted>", 2.5]},
        "e": 7,
    }
    assert data["a"] == "x supersecretvalue"  # the input is not modified


# -- Evidence ------------------------------------------------------------------------------------


def test_stamp_format() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp())


def test_evidence_creates_folder_and_logs_stamped_lines(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b" / "run-1"
    ev = Evidence(folder, Redactor())
    assert folder.is_dir()
    ev.log("first")
    ev.log("two\nlines")
    ev.log("")
    lines = (folder / "log.txt").read_text().splitlines()
    assert [LINE.match(line).group(1) for line in lines] == ["first", "two", "lines", ""]  # type: ignore[union-attr]


def test_evidence_log_redacts(tmp_path: Path) -> None:
    ev = Evidence(tmp_path / "ev", Redactor.from_environ({"HEROKU_API_KEY": "supersecretvalue"}))
    ev.log("Authorization: Bearer supersecretvalue")
    ev.log("db at postgresql://u:pw@h/db")
    text = ev.log_path.read_text()
    assert "supersecretvalue" not in text
    assert "Bearer <redacted>" in text
    assert "postgresql://u:<redacted>@h/db" in text


def test_secret_split_across_lines_of_one_log_call_is_still_redacted(tmp_path: Path) -> None:
    ev = Evidence(tmp_path / "ev", Redactor(["line1secret"]))
    ev.log("a line1secret\nb line1secret")
    assert "line1secret" not in ev.log_path.read_text()


def test_write_json_and_text_redact(tmp_path: Path) -> None:
    ev = Evidence(tmp_path / "ev", Redactor(["supersecretvalue"]))
    path = ev.write_json("doc.json", {"token": "supersecretvalue", "n": 1, "p": Path("/x")})
    assert path == tmp_path / "ev" / "doc.json"
    assert json.loads(path.read_text()) == {"token": "<redacted>", "n": 1, "p": "/x"}
    text = ev.write_text("t.txt", "curl -H 'X: supersecretvalue'")
    assert text.read_text() == "curl -H 'X: <redacted>'"


def test_reopening_an_evidence_folder_appends(tmp_path: Path) -> None:
    Evidence(tmp_path / "ev", Redactor()).log("one")
    Evidence(tmp_path / "ev", Redactor()).log("two")
    assert len((tmp_path / "ev" / "log.txt").read_text().splitlines()) == 2


def test_passwords_in_query_strings_are_redacted_without_knowing_them() -> None:
    out = Redactor().text(
        "GONOGO_LEDGER_URL=postgresql://team@10.0.0.5/ledger?sslmode=require&password=qq-secret-1"
        " and https://api.example/v1?api_key=k-123456&page=2"
    )
    assert "qq-secret-1" not in out and "k-123456" not in out
    assert "sslmode=require&password=<redacted>" in out and "api_key=<redacted>&page=2" in out


def test_from_environ_hides_pass_dsn_and_ledger_url_values_and_embedded_passwords() -> None:
    r = Redactor.from_environ(
        {
            "DB_PASS": "plain-db-pass",
            "SENTRY_DSN": "https://abc123public@o1.ingest.example/42",
            "GONOGO_LEDGER_URL": "postgresql://team@db/ledger?password=ledger-pw-9",
            "BACKUP_TARGET": "s3://backup:embedded-pw-7@bucket.example/x",
            "PWD": "/work/app",  # the working directory, not a password
        }
    )
    out = r.text(
        "plain-db-pass https://abc123public@o1.ingest.example/42 ledger-pw-9 embedded-pw-7 "
        "alone, in /work/app/logs"
    )
    for secret in ("plain-db-pass", "abc123public", "ledger-pw-9", "embedded-pw-7"):
        assert secret not in out
    assert "/work/app/logs" in out


def test_image_secret_names_stay_as_narrow_as_before() -> None:
    # looks_secret decides which image variables make a build NO-GO: a Passenger setting
    # or a DSN name alone must not refuse an image.
    assert not looks_secret("PASSENGER_APP_ENV")
    assert looks_secret("DB_PASSWORD")


def test_common_words_from_ci_settings_are_not_blanked_everywhere() -> None:
    r = Redactor.from_environ(
        {
            "DATABASE_URL": "postgresql://postgres:postgres@localhost:5432/app",
            "HTTP_PROXY": "http://ci:test@proxy:3128",
            "GIT_ASKPASS": "true",
            "DB_PASS": "docker",
        }
    )
    text = "dialect postgresql; CREATE ROLE postgres; pytest tests/ -q; status = true; docker"
    assert r.text(text) == text
    # ...while the URLs themselves still lose their passwords.
    assert r.text("postgresql://postgres:postgres@localhost:5432/app") == "<redacted>"
    assert r.text("via http://ci:test@proxy:3128") == "via http://ci:<redacted>@proxy:3128"
