"""The log scan: counting and quoting tracebacks and 5xx lines; its [certify] settings; the
local provider's tail of a release log."""

from __future__ import annotations

from pathlib import Path

import pytest

from gonogo.config import load_config
from gonogo.config.schema import Certify
from gonogo.errors import ConfigError
from gonogo.evidence import Redactor
from gonogo.logscan import DEFAULT_PATTERNS, compile_patterns, scan
from gonogo.providers.local import _tail

UVICORN_LOG = """\
INFO:     Started server process [4242]
INFO:     Application startup complete.
INFO:     127.0.0.1:40000 - "GET /api/health HTTP/1.1" 200 OK
INFO:     127.0.0.1:40002 - "GET /api/boom HTTP/1.1" 500 Internal Server Error
ERROR:    Exception in ASGI application
Traceback (most recent call last):
  File "/app/.venv/lib/python3.11/site-packages/uvicorn/protocols/http/h11_impl.py", line 403
    result = await app(  # type: ignore[func-returns-value]
  File "/app/app/main.py", line 120, in boom
    raise RuntimeError("boom with token=s3cr3t-value-123")
RuntimeError: boom with token=s3cr3t-value-123
INFO:     127.0.0.1:40004 - "GET /api/notes HTTP/1.1" 503 Service Unavailable
INFO:     127.0.0.1:40006 - "GET /api/version HTTP/1.1" 200 OK
"""


def test_a_clean_log_passes_and_says_what_it_looked_for() -> None:
    lines = [ln for ln in UVICORN_LOG.splitlines() if "200 OK" in ln or "Started" in ln]
    result = scan(lines, DEFAULT_PATTERNS, source="logs/v1.log", limit=1000)
    assert result.ok and result.total == 0
    assert result.counts == {"traceback": 0, "http_5xx": 0}
    assert result.summary == "no traceback, no http_5xx in the last 3 lines of logs/v1.log"
    assert result.to_dict()["quotes"] == {}


def test_tracebacks_and_5xx_are_counted_and_quoted_with_the_exception_line() -> None:
    result = scan(
        UVICORN_LOG.splitlines(),
        DEFAULT_PATTERNS,
        source="logs/v2.log",
        redact=Redactor(["s3cr3t-value-123"]).text,
    )
    assert not result.ok
    assert result.counts == {"traceback": 1, "http_5xx": 2}
    [tb] = result.quotes["traceback"]
    assert (tb.line, tb.text) == (6, "Traceback (most recent call last):")
    assert tb.ends_with == "RuntimeError: boom with token=<redacted>"
    first_5xx, second_5xx = result.quotes["http_5xx"]
    assert first_5xx.line == 4 and '"GET /api/boom HTTP/1.1" 500' in first_5xx.text
    assert first_5xx.ends_with is None
    assert second_5xx.line == 12 and "503" in second_5xx.text
    assert result.summary == (
        "1 traceback, 2 http_5xx in the last 13 lines of logs/v2.log; "
        'http_5xx at line 4: INFO: 127.0.0.1:40002 - "GET /api/boom HTTP/1.1" 500 Internal '
        "Server Error; traceback at line 6: Traceback (most recent call last): … "
        "RuntimeError: boom with token=<redacted>"
    )
    assert "s3cr3t" not in str(result.to_dict())


def test_heroku_router_lines_count_as_5xx_and_a_200_does_not() -> None:
    lines = [
        'at=error code=H12 desc="Request timeout" method=GET path="/" status=503 bytes=0',
        'at=info method=GET path="/api/health" status=200 bytes=40',
        '127.0.0.1 - - "GET /x HTTP/1.1" 5000 12',  # not a status: a size
    ]
    result = scan(lines, DEFAULT_PATTERNS)
    assert result.counts == {"traceback": 0, "http_5xx": 1}


def test_quotes_are_capped_lines_are_cut_and_patterns_are_configurable() -> None:
    lines = [f"ERROR something broke {'x' * 500} #{i}" for i in range(10)]
    result = scan(lines, {"error": r"^ERROR\b"}, quote=2, limit=50)
    assert result.counts == {"error": 10}
    assert [m.line for m in result.quotes["error"]] == [1, 2]
    assert all(len(m.text) <= 300 for m in result.quotes["error"])
    assert result.to_dict()["limit"] == 50
    assert scan(lines, {"error": r"^ERROR\b"}, quote=0).quotes == {}


def test_a_traceback_without_frames_has_no_exception_line() -> None:
    result = scan(["Traceback (most recent call last):", "INFO next"], DEFAULT_PATTERNS)
    [tb] = result.quotes["traceback"]
    assert tb.ends_with is None


def test_a_bad_pattern_is_named() -> None:
    with pytest.raises(ValueError, match="pattern 'oops' is not a valid regular expression"):
        compile_patterns({"oops": "("})


def test_certify_settings_have_the_playbooks_defaults() -> None:
    settings = Certify()
    assert settings.output == ".release/{app}_certified"
    assert settings.log_patterns == DEFAULT_PATTERNS
    assert settings.log_lines == 1000 and settings.quote == 3


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('log_patterns = { bad = "(" }', "certify.log_patterns: pattern 'bad' is not a valid"),
        ('output = ".release/{branch}"', "certify.output: may use only the fields"),
        ('version_path = "api/version"', "certify.version_path: must start with '/'"),
        ("log_lines = 0", "certify.log_lines"),
        ("colour = true", "certify.colour"),
    ],
)
def test_bad_certify_settings_name_the_key(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "gonogo.toml"
    path.write_text(
        '[project]\nname = "x"\n\n[certify]\n'
        + section
        + "\n\n[environments.staging]\nport = 8001\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in err.value.message


def test_certify_settings_load_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gonogo.toml"
    path.write_text(
        '[project]\nname = "x"\n\n[certify]\noutput = "out/{env}-{app}.json"\n'
        'log_lines = 50\nlog_patterns = { panic = "panic:" }\nversion_field = "build.sha"\n\n'
        "[environments.staging]\nport = 8001\n"
    )
    settings = load_config(path).certify
    assert settings.output == "out/{env}-{app}.json" and settings.log_lines == 50
    assert settings.log_patterns == {"panic": "panic:"}
    assert settings.version_field == "build.sha" and settings.version_path is None


def test_tail_reads_only_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "v1.log"
    log.write_text("".join(f"line {i}\n" for i in range(50_000)))
    assert _tail(log, 3) == ["line 49997", "line 49998", "line 49999"]
    assert len(_tail(log, 20_000)) == 20_000 and _tail(log, 20_000)[0] == "line 30000"
    log.write_text("a\nb\nno newline at the end")
    assert _tail(log, 2) == ["b", "no newline at the end"]
    assert _tail(log, 10) == ["a", "b", "no newline at the end"]
    log.write_bytes(b"")
    assert _tail(log, 5) == []
    log.write_bytes(b"ok\n\xff\xfe broken utf-8\n")
    assert _tail(log, 1) == ["\ufffd\ufffd broken utf-8"]
    log.write_text("x" * 10_000)  # one endless line: bounded by max_bytes
    assert _tail(log, 1, max_bytes=100_000) == ["x" * 10_000]
