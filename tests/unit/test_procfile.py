"""Procfile parsing: Heroku's `name: command` lines."""

from __future__ import annotations

import pytest

from gonogo.errors import GonogoError
from gonogo.procfile import parse, web_command


def test_parse_processes_comments_and_blank_lines() -> None:
    text = """\
# the web process
web: uvicorn app.main:app --host 0.0.0.0 --port $PORT

   # indented comment
worker:   python -m worker
release: alembic upgrade head
clock:python clock.py
"""
    assert parse(text) == {
        "web": "uvicorn app.main:app --host 0.0.0.0 --port $PORT",
        "worker": "python -m worker",
        "release": "alembic upgrade head",
        "clock": "python clock.py",
    }


def test_parse_keeps_colons_in_commands() -> None:
    assert (
        parse("web: gunicorn app:app -b 0.0.0.0:$PORT")["web"]
        == "gunicorn app:app -b 0.0.0.0:$PORT"
    )


def test_parse_handles_crlf_and_dashes_underscores() -> None:
    assert parse("web: run\r\nworker_2: w\r\nmy-proc: p\r\n") == {
        "web": "run",
        "worker_2": "w",
        "my-proc": "p",
    }


def test_parse_ignores_lines_that_are_not_processes() -> None:
    assert parse("this is not a process\nweb:\nweb : ok\n: nothing") == {"web": "ok"}


def test_commented_out_web_line_does_not_count() -> None:
    assert parse("# web: uvicorn app:app") == {}


def test_last_definition_wins() -> None:
    assert parse("web: one\nweb: two\n")["web"] == "two"


def test_web_command() -> None:
    assert web_command("worker: w\nweb: python -m app\n", where="abc1234") == "python -m app"


def test_missing_web_line_names_it() -> None:
    with pytest.raises(GonogoError) as info:
        web_command("# web: commented\nworker: python w.py\n", where="abc1234")
    assert "web:" in info.value.message
    assert "abc1234" in info.value.message
    assert info.value.exit_code == 1


def test_missing_procfile() -> None:
    with pytest.raises(GonogoError) as info:
        web_command(None, where="abc1234")
    assert "Procfile" in info.value.message
    assert "web:" in info.value.message


def test_empty_procfile() -> None:
    with pytest.raises(GonogoError, match="web:"):
        web_command("", where="HEAD")
