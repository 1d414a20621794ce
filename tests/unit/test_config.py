"""gonogo.toml: locating key paths in source, loading, and the exact wording of every error."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gonogo.config import Config, find_config, load_config
from gonogo.config.load import CONFIG_FILE, _user_path, format_key_path
from gonogo.config.locate import line_of
from gonogo.config.schema import KeyPath
from gonogo.errors import ConfigError

# The example from DESIGN.md, "Configuration", verbatim.
DESIGN_EXAMPLE = """\
[project]
name = "autorisen"
work_order = { pattern = "WO-[0-9]+", sources = ["branch", "commit", "pr"] }

[build]
dockerfile = "Dockerfile"
args = { NODE_ENV = "{env.vars.NODE_ENV}" }
image = { user_not_root = true, dirs = ["/app/logs", "/app/tmp"] }

[test]
command = "make codex-test"

[migrations]
tool = "alembic"
config = "backend/alembic.ini"

[publish]
repository = "docker.io/stinkie/autorisen"
tags = ["v{version}", "latest", "docker-{engine}", "git-{sha}"]
platforms = ["linux/amd64", "linux/arm64"]

[verify]
deadline = "150s"
probes = [
  { name = "health",  path = "/api/health",    status = 200, json = { status = "healthy" } },
  { name = "csrf",    path = "/api/auth/csrf", status = 200, cookie = "csrf_token" },
  { name = "version", path = "/api/version",   status = 200, json = { gitSha = "{sha}" } },
]

[environments.staging]
provider = "heroku"
app = "autorisen"
url = "https://dev.cape-control.com"
branches = ["develop", "staging"]
vars = { NODE_ENV = "staging" }

[environments.production]
provider = "heroku"
app = "autorisen-dac8e65796e7"
url = "https://cape-control.com"
branches = ["main"]
vars = { NODE_ENV = "production", ENV = "prod" }
protected = true                 # ALLOW_PROD=1 and ALLOW_PROD_DEPLOY=YES, or --confirm <app>
promote_from = "staging"         # same artifact must be verified there first
"""

LOCAL_EXAMPLE = (
    DESIGN_EXAMPLE.replace('provider = "heroku"\napp = "autorisen"\n', 'provider = "local"\n')
    .replace('provider = "heroku"\napp = "autorisen-dac8e65796e7"\n', 'provider = "local"\n')
    .replace('url = "https://dev.cape-control.com"\n', "port = 8001\n")
    .replace('url = "https://cape-control.com"\n', "port = 8002\n")
)

MINIMAL = """\
[project]
name = "demo"

[environments.dev]
port = 8000
"""


def _src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# -- line_of -----------------------------------------------------------------------------------

TRICKY = _src(
    """
    # [not.a.table] = { x = 1 }
    title = "a # not a comment [x] {y} = z"   # trailing comment with [brackets]
    lit = 'C:\\path\\[x]'
    esc = "quote \\" then [fake] { and = }"
    [project]
    name = "demo"
    work_order = { pattern = "WO-[0-9]+", sources = ["branch", "commit", "pr"] }

    [environments."my-env"]
    port = 8000

    [ environments . 'quoted.dots' ]   # spaces and a literal-string key
    port = 8001

    [environments.production]
    url = "https://x"
    verify.deadline = "30s"
    verify.probes = [
      # { name = "commented", path = "/" },
      { name = "health", path = "/api/health", json = { status = "ok" } },

      { name = "ver", path = "/v", status = "x", cookie = "a,}{]" },
      { name = "last", path = "/l" }
    ]

    [[release.steps]]
    name = "one"
    [[release.steps]]
    name = "two"
    [release.steps.meta]
    owner = "ops"
    [[release.steps.checks]]
    id = 1
    [[release.steps.checks]]
    id = 2

    [notes]
    body = \"\"\"
    [fake.header]
    key = "value" # still inside the string \\\"\"\"
    \"\"\"
    raw = '''
    [[also.fake]]
    '''
    after = 1
    matrix = [[1, 2], [3, [4, 5]]]
    """
)


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("title",), 2),
        (("lit",), 3),
        (("esc",), 4),
        (("project",), 5),
        (("project", "name"), 6),
        # inline table and an array inside it
        (("project", "work_order", "pattern"), 7),
        (("project", "work_order", "sources", 2), 7),
        # quoted header keys, with and without whitespace around the dots
        (("environments", "my-env"), 9),
        (("environments", "my-env", "port"), 10),
        (("environments", "quoted.dots", "port"), 13),
        # a table that only exists implicitly: its first sub-table's header
        (("environments",), 9),
        # dotted keys
        (("environments", "production", "verify", "deadline"), 17),
        (("environments", "production", "verify"), 17),
        # elements of a multi-line array of inline tables, skipping comments and blank lines
        (("environments", "production", "verify", "probes"), 18),
        (("environments", "production", "verify", "probes", 0), 20),
        (("environments", "production", "verify", "probes", 0, "json", "status"), 20),
        (("environments", "production", "verify", "probes", 1, "status"), 22),
        (("environments", "production", "verify", "probes", 1, "cookie"), 22),
        (("environments", "production", "verify", "probes", 2, "name"), 23),
        # missing things resolve to the deepest prefix that exists
        (("environments", "production", "verify", "probes", 1, "timeout"), 22),
        (("environments", "production", "verify", "probes", 7, "name"), 18),
        (("environments", "production", "app"), 15),
        (("environments", "staging", "port"), 9),
        # arrays of tables: the index counts [[...]] headers, nested ones per parent element
        (("release", "steps"), 26),
        (("release", "steps", 0, "name"), 27),
        (("release", "steps", 1), 28),
        (("release", "steps", 1, "name"), 29),
        (("release", "steps", 1, "meta", "owner"), 31),
        (("release", "steps", 1, "checks", 0, "id"), 33),
        (("release", "steps", 1, "checks", 1), 34),
        (("release", "steps", 1, "checks", 1, "id"), 35),
        # multi-line strings are not headers
        (("notes", "body"), 38),
        (("fake",), None),
        (("also",), None),
        (("notes", "raw"), 42),
        (("notes", "after"), 45),
        # nested arrays
        (("notes", "matrix", 1, 1, 0), 46),
        # nothing matches at all
        (("nope", "nothing"), None),
        ((), None),
    ],
)
def test_line_of(path: KeyPath, line: int | None) -> None:
    assert line_of(TRICKY, path) == line


def test_tricky_source_is_valid_toml() -> None:
    """The line_of fixture must be real TOML, or the expectations above prove nothing."""
    import tomllib

    data = tomllib.loads(TRICKY)
    assert data["environments"]["production"]["verify"]["probes"][1]["status"] == "x"
    assert data["release"]["steps"][1]["checks"][1]["id"] == 2
    assert "fake" not in data


def test_line_of_design_example() -> None:
    assert line_of(DESIGN_EXAMPLE, ("verify", "probes", 2, "json", "gitSha")) == 27
    assert line_of(DESIGN_EXAMPLE, ("environments", "production", "promote_from")) == 44
    assert line_of(DESIGN_EXAMPLE, ("environments", "production", "nope")) == 37
    assert line_of(DESIGN_EXAMPLE, ("build", "image", "dirs", 1)) == 8


def test_line_of_crlf_and_a_later_super_table() -> None:
    text = "[a.b]\r\nx = 1\r\n\r\n[a]\r\ny = [\r\n  1,\r\n  2,\r\n]\r\n"
    assert line_of(text, ("a", "b", "x")) == 2
    assert line_of(text, ("a",)) == 4  # where [a] is written, not where [a.b] implied it
    assert line_of(text, ("a", "y", 1)) == 7


@pytest.mark.parametrize(
    "text",
    ["[", "[[", "a = ", 'a = "unterminated\nb = 1', "a = [1, 2", "a = {", "= 1", "x = '''", "\\"],
)
def test_line_of_never_raises_on_broken_input(text: str) -> None:
    line_of(text, ("a", "b"))


def test_line_of_recovers_after_a_line_it_cannot_read() -> None:
    assert line_of("a = 1\n!!! ???\nb = 2\n", ("b",)) == 3


# -- loading valid files -----------------------------------------------------------------------


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(directory: Path, text: str) -> Path:
    path = directory / CONFIG_FILE
    path.write_text(_src(text), encoding="utf-8")
    return path


def test_load_design_example_heroku(in_tmp: Path) -> None:
    cfg = load_config(_write(in_tmp, DESIGN_EXAMPLE))
    assert isinstance(cfg, Config)
    assert cfg.project.name == "autorisen"
    assert cfg.project.work_order is not None
    assert cfg.project.work_order.sources == ["branch", "commit", "pr"]
    assert cfg.verify.deadline == 150.0
    assert [p.name for p in cfg.verify.probes] == ["health", "csrf", "version"]
    assert cfg.verify.probes[2].json_fields == {"gitSha": "{sha}"}
    prod = cfg.env("production")
    assert (prod.provider, prod.app, prod.protected, prod.promote_from) == (
        "heroku",
        "autorisen-dac8e65796e7",
        True,
        "staging",
    )
    assert cfg.publish is not None and cfg.publish.platforms == ["linux/amd64", "linux/arm64"]


def test_load_design_example_local(in_tmp: Path) -> None:
    assert 'provider = "heroku"' not in LOCAL_EXAMPLE
    cfg = load_config(_write(in_tmp, LOCAL_EXAMPLE))
    assert cfg.env("staging").provider == "local"
    assert (cfg.env("staging").port, cfg.env("production").port) == (8001, 8002)
    assert cfg.verify_for("production") is cfg.verify


def test_load_accepts_absolute_path_outside_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, MINIMAL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_config(path).project.name == "demo"


# -- error messages ----------------------------------------------------------------------------


def _error(directory: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(_write(directory, text))
    return info.value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            MINIMAL + "\n[bogus]\nx = 1\n",
            "gonogo.toml:7 bogus: unknown key "
            "(allowed: project, build, test, migrations, publish, verify, gates, certify, "
            "environments)",
            id="unknown-top-level-key",
        ),
        pytest.param(
            """
            [project]
            name = "demo"

            [verify]
            probes = [
              { name = "health", path = "/api/health" },
              # { stauts = "in a comment" },
              { name = "csrf", path = "/api/auth/csrf", stauts = 200 },
            ]

            [environments.dev]
            port = 8000
            """,
            "gonogo.toml:8 verify.probes.1.stauts: unknown key "
            "(allowed: name, path, status, json, cookie, timeout)",
            id="unknown-key-in-inline-probe",
        ),
        pytest.param(
            MINIMAL + 'typo = "x"\n',
            "gonogo.toml:6 environments.dev.typo: unknown key (allowed: provider, app, url, "
            "port, branches, vars, protected, guard, promote_from, verify, database_url_env, "
            "gates, heroku)",
            id="unknown-key-in-environment",
        ),
        pytest.param(
            MINIMAL + 'branches = "main"\n',
            "gonogo.toml:6 environments.dev.branches: Input should be an array",
            id="wrong-type-array",
        ),
        pytest.param(
            'project = "demo"\n[environments.dev]\nport = 8000\n',
            "gonogo.toml:1 project: Input should be a table",
            id="wrong-type-table",
        ),
        pytest.param(
            MINIMAL + '\n[verify]\nprobes = [ { name = "h", path = "/h", status = "ok" } ]\n',
            "gonogo.toml:8 verify.probes.0.status: "
            "Input should be a valid integer",
            id="wrong-type-scalar",
        ),
        pytest.param(
            MINIMAL + '\n[verify]\nprobes = [ { name = "h", path = "/h", json = "x" } ]\n',
            "gonogo.toml:8 verify.probes.0.json: Input should be a table",
            id="alias-json-not-json_fields",
        ),
        pytest.param(
            MINIMAL + '\n[verify]\ndeadline = "150x"\n',
            "gonogo.toml:8 verify.deadline: must be a duration such as '30s', '2m' or '500ms'",
            id="bad-duration",
        ),
        pytest.param(
            """
            [project]
            work_order = { pattern = "WO-[0-9]+" }

            [environments.dev]
            port = 8000
            """,
            "gonogo.toml:1 project.name: required key missing",
            id="missing-project-name",
        ),
        pytest.param(
            "[environments.dev]\nport = 8000\n",
            "gonogo.toml: project: required key missing",
            id="missing-project-table",
        ),
        pytest.param(
            '[project]\nname = "demo"\n\n[environments.dev]\nprovider = "local"\n',
            "gonogo.toml:4 environments.dev: "
            "a local environment needs 'port' (the port its app listens on)",
            id="model-validator-names-the-table",
        ),
        pytest.param(
            'environments = {}\n[project]\nname = "demo"\n',
            "gonogo.toml:1 environments: Table should have at least 1 item, not 0",
            id="empty-environments",
        ),
        pytest.param(
            '[project]\nname = "demo"\n\n[environments.dev]\nport = 80\n',
            "gonogo.toml:5 environments.dev.port: Input should be greater than or equal to 1024",
            id="out-of-range",
        ),
        pytest.param(
            '[project]\nname = "demo"\n\n[environments."Prod Env"]\nport = 8000\n',
            "gonogo.toml:4 environments: environment name 'Prod Env' must be lower-case "
            "letters, digits, '-' or '_'",
            id="bad-environment-name",
        ),
        pytest.param(
            """
            [project]
            name = "demo"

            [environments.staging]
            port = 8001

            [environments.production]
            port = 8002
            promote_from = "stagin"
            """,
            "gonogo.toml:9 environments.production.promote_from: "
            "unknown environment 'stagin' (known: production, staging)",
            id="promote-from-unknown-env",
        ),
        pytest.param(
            """
            [project]
            name = "demo"

            [environments.a]
            port = 8000

            [environments.b]
            port = 8000
            """,
            "gonogo.toml:8 environments.b.port: 8000 is already used by environments.a",
            id="duplicate-port",
        ),
        pytest.param(
            '[project]\nname = "demo"\n\n[environments.dev]\nport = \n',
            "gonogo.toml:5: invalid TOML: Invalid value (column 8)",
            id="invalid-toml",
        ),
        pytest.param(
            MINIMAL + "port = 8001\n",
            "gonogo.toml:6: invalid TOML: Cannot overwrite a value (column 12)",
            id="invalid-toml-duplicate-key",
        ),
        pytest.param(
            '[project]\nname = "demo',
            "gonogo.toml:2: invalid TOML: Unterminated string",
            id="invalid-toml-at-end",
        ),
        pytest.param(
            MINIMAL + '\n[migrations.lint]\nignore = ["Lock Timeout"]\n',
            "gonogo.toml:8 migrations.lint.ignore: 'Lock Timeout' is not a lint rule name "
            "(lowercase words joined by '-', as `gonogo migrate ENV lint` prints them)",
            id="lint-rule-name",
        ),
        pytest.param(
            MINIMAL + '\n[migrations.lint]\nerrors = ["lossy-operation"]\n'
            'ignore = ["lossy-operation"]\n',
            "gonogo.toml:7 migrations.lint: rule(s) lossy-operation cannot be in both errors "
            "and ignore",
            id="lint-rule-both",
        ),
    ],
)
def test_error_message(in_tmp: Path, text: str, expected: str) -> None:
    assert _error(in_tmp, text).message == expected


def test_error_details(in_tmp: Path) -> None:
    err = _error(in_tmp, MINIMAL + '\n[verify]\ndeadline = "150x"\n')
    assert err.exit_code == 1
    assert err.details == {
        "errors": [
            {
                "file": "gonogo.toml",
                "line": 8,
                "path": "verify.deadline",
                "message": "must be a duration such as '30s', '2m' or '500ms'",
            }
        ]
    }


def test_invalid_toml_details(in_tmp: Path) -> None:
    err = _error(in_tmp, "[project\n")
    assert err.message.startswith("gonogo.toml:1: invalid TOML: ")
    assert err.details["errors"] == [
        {"file": "gonogo.toml", "line": 1, "path": "", "message": err.message.split(": ", 1)[1]}
    ]


def test_missing_file(in_tmp: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(in_tmp / "nope.toml")
    assert info.value.message == "nope.toml: cannot read: No such file or directory"


def test_unreadable_path_is_a_directory(in_tmp: Path) -> None:
    (in_tmp / "conf").mkdir()
    with pytest.raises(ConfigError) as info:
        load_config(in_tmp / "conf")
    assert info.value.message == "conf: cannot read: Is a directory"


def test_not_utf8(in_tmp: Path) -> None:
    path = in_tmp / CONFIG_FILE
    path.write_bytes(b'[project]\nname = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message == "gonogo.toml: cannot read: not UTF-8 text (invalid start byte)"


def test_file_outside_cwd_is_named_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, MINIMAL + "bogus = 1\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message.startswith(f"{path}:6 environments.dev.bogus: unknown key")


def test_subdirectory_file_is_named_relative_to_cwd(in_tmp: Path) -> None:
    (in_tmp / "sub").mkdir()
    path = _write(in_tmp / "sub", MINIMAL + "bogus = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message.startswith("sub/gonogo.toml:6 environments.dev.bogus:")


MANY_PROBLEMS = """
[project]
name = ""
colour = "blue"

[verify]
deadline = "soon"
probes = [
  { name = "health", path = "api/health", status = 9000 },
]

[environments.staging]
provider = "heroku"
portt = 8000
"""


def test_every_problem_is_one_line_in_file_order(in_tmp: Path) -> None:
    err = _error(in_tmp, MANY_PROBLEMS)
    assert err.message.splitlines() == [
        "gonogo.toml:2 project.name: String should have at least 1 character",
        "gonogo.toml:3 project.colour: unknown key (allowed: name, work_order)",
        "gonogo.toml:6 verify.deadline: must be a duration such as '30s', '2m' or '500ms'",
        "gonogo.toml:8 verify.probes.0.path: must start with '/' (a path on the environment's URL)",
        "gonogo.toml:8 verify.probes.0.status: Input should be less than or equal to 599",
        "gonogo.toml:13 environments.staging.portt: unknown key (allowed: provider, app, url, "
        "port, branches, vars, protected, guard, promote_from, verify, database_url_env, "
        "gates, heroku)",
    ]
    assert len(err.details["errors"]) == 6  # type: ignore[arg-type]
    for text in (err.message, str(err)):
        assert "Traceback" not in text
        assert "pydantic" not in text.lower()
        assert "Value error" not in text
        assert "errors.pydantic.dev" not in text


def test_semantic_errors_only_after_schema_passes(in_tmp: Path) -> None:
    err = _error(
        in_tmp,
        """
        [project]
        name = "demo"

        [environments.a]
        port = 8000
        promote_from = "a"

        [environments.b]
        port = 8000
        promote_from = "zzz"
        """,
    )
    assert err.message.splitlines() == [
        "gonogo.toml:6 environments.a.promote_from: cannot name itself",
        "gonogo.toml:9 environments.b.port: 8000 is already used by environments.a",
        "gonogo.toml:10 environments.b.promote_from: unknown environment 'zzz' (known: a, b)",
    ]


# -- helpers -----------------------------------------------------------------------------------


def test_user_path_drops_pydantic_bookkeeping() -> None:
    data = {"verify": {"probes": [{"name": "x"}, {"name": "y", "json": {"a": 1}}]}}
    loc = ("verify", "function-after[_backoff_order(), Verify]", "probes", 1, "Probe", "json")
    assert _user_path(loc, data, missing=False) == ("verify", "probes", 1, "json")
    assert _user_path(
        ("build", "args", "K", "[key]"), {"build": {"args": {"K": 1}}}, missing=False
    ) == (
        "build",
        "args",
        "K",
    )
    assert _user_path(("project", "name"), {"project": {}}, missing=True) == ("project", "name")


def test_format_key_path_quotes_keys_that_need_it() -> None:
    assert format_key_path(("environments", "my-env", "verify", "probes", 1)) == (
        "environments.my-env.verify.probes.1"
    )
    assert format_key_path(("environments", "my.env", 'say "hi"')) == (
        'environments."my.env"."say \\"hi\\""'
    )


# -- find_config -------------------------------------------------------------------------------


def test_find_config_walks_up(tmp_path: Path) -> None:
    config = _write(tmp_path, MINIMAL)
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_config(deep) == config
    assert find_config(tmp_path) == config
    assert find_config(config) == config


def test_find_config_prefers_the_nearest(tmp_path: Path) -> None:
    _write(tmp_path, MINIMAL)
    (tmp_path / "inner").mkdir()
    inner = _write(tmp_path / "inner", MINIMAL)
    assert find_config(tmp_path / "inner") == inner


def test_find_config_relative_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _write(tmp_path, MINIMAL)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert find_config(Path()).resolve() == config.resolve()


def test_find_config_not_found(tmp_path: Path) -> None:
    start = tmp_path / "empty"
    start.mkdir()
    # The temporary directory must have no gonogo.toml above it, or this test proves nothing.
    assert not any((p / CONFIG_FILE).is_file() for p in start.parents)
    with pytest.raises(ConfigError) as info:
        find_config(start)
    assert info.value.message == (
        f"no gonogo.toml found in {start} or its parents; run `gonogo init` or cd into your project"
    )


@pytest.mark.parametrize(
    ("line", "path"),
    [
        ('port = "8001"', "environments.staging.port"),
        ('protected = "yes"', "environments.staging.protected"),
    ],
)
def test_strings_are_not_coerced(in_tmp: Path, line: str, path: str) -> None:
    text = f'[project]\nname = "x"\n[environments.staging]\n{line}\nurl = "http://127.0.0.1:1"\n'
    message = _error(in_tmp, text).message
    assert message.startswith(f"gonogo.toml:4 {path}: Input should be a valid"), message
