"""The implicit-migration detector: corpus, guard evaluators, command table, bad input."""

from __future__ import annotations

import ast
import json
import os
import shlex
from pathlib import Path

import pytest

from gonogo.detect import Detection, ScanResult, _yaml, commands, dockerfile, scan
from gonogo.detect._base import MAX_SCRIPT_DEPTH, Ctx, EnvVal, Repo, Trail
from gonogo.detect.shell import Interp, Launch, Loc, SlugView, State, parse
from gonogo.detect.startup import Frame, Module, Py

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = REPO_ROOT / "tests" / "detect_corpus"
EXAMPLE_APP = REPO_ROOT / "examples" / "webapp"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.json").is_file())
SOURCES = {"procfile", "heroku.yml", "app.json", "dockerfile", "script", "startup-code"}


def expected(case: str) -> dict[str, object]:
    data = json.loads((CORPUS / case / "expected.json").read_text())
    assert isinstance(data, dict)
    return data


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    return root


# --------------------------------------------------------------------------------------------
# the corpus


def test_corpus_is_large_and_balanced() -> None:
    verdicts = [bool(expected(c)["implicit"]) for c in CASES]
    assert len(CASES) >= 40
    assert sum(verdicts) >= len(CASES) // 3
    assert len(CASES) - sum(verdicts) >= len(CASES) // 3


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str) -> None:
    want = expected(case)
    result = scan(CORPUS / case)
    got = {(f.file, f.line) for f in result.findings}
    findings = want["findings"]
    assert isinstance(findings, list)
    assert result.implicit is want["implicit"], [f.why for f in result.findings]
    assert got == {(f["file"], f["line"]) for f in findings}, [f.why for f in result.findings]
    assert result.problems == ()
    for finding in result.findings:
        assert finding.source in SOURCES
        assert finding.what
        assert f"{finding.file}:{finding.line}" in finding.why


def test_real_example_webapp_is_safe() -> None:
    result = scan(EXAMPLE_APP)
    assert not result.implicit
    assert result.findings == ()
    assert result.problems == ()
    assert {"Procfile", "Dockerfile", "app/main.py"} <= set(result.examined)


def test_example_webapp_corpus_copy_matches_the_real_files() -> None:
    copy = CORPUS / "example_webapp"
    for rel in ("Procfile", "Dockerfile", "app/main.py", "app/db.py"):
        assert (copy / rel).read_text() == (EXAMPLE_APP / rel).read_text(), rel


# --------------------------------------------------------------------------------------------
# the why of a finding


def test_finding_names_the_hook_chain_and_the_guard_default(tmp_path: Path) -> None:
    result = scan(CORPUS / "fastapi_lifespan_runner_default_on")
    (finding,) = result.findings
    assert finding == Detection(
        "app/db.py", 15, "command.upgrade(cfg, 'head')", finding.why, "startup-code"
    )
    assert finding.why.startswith("Procfile web process runs on every dyno start")
    assert "lifespan lifespan() app/main.py:9" in finding.why
    assert "app/db.py:10 run_migrations()" in finding.why
    assert "RUN_MIGRATIONS defaults to '1'" in finding.why


def test_unevaluable_guard_is_assumed_to_run_and_says_so(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Procfile": "web: uvicorn app:app\n",
            "app.py": "import json\nfrom alembic import command\nfrom fastapi import FastAPI\n"
            "app = FastAPI()\ncfg = json.load(open('c.json'))\n"
            "if cfg['migrate']:\n    command.upgrade(None, 'head')\n",
        },
    )
    (finding,) = scan(tmp_path).findings
    assert finding.line == 7
    assert "guard `cfg['migrate']` (app.py:6) could not be evaluated; assumed it may run" in (
        finding.why
    )


def test_environ_overlay_decides_environment_checks(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Procfile": "web: uvicorn app:app\n",
            "app.py": "import os\nfrom alembic import command\nfrom fastapi import FastAPI\n"
            "app = FastAPI()\nif os.getenv('ENV') == 'prod':\n    command.upgrade(None, 'head')\n",
        },
    )
    assert not scan(tmp_path).implicit  # ENV unset by default: not taken
    result = scan(tmp_path, environ={"ENV": "prod"})
    assert result.implicit
    assert "ENV='prod' (set in the environment's configuration)" in result.findings[0].why


def test_scan_result_implicit_follows_findings() -> None:
    assert not ScanResult((), (), ()).implicit
    detection = Detection("Procfile", 1, "alembic upgrade head", "why", "procfile")
    assert ScanResult((detection,), ("Procfile",), ()).implicit


# --------------------------------------------------------------------------------------------
# bad input lands in problems, never in an exception


def test_invalid_app_json_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, {"app.json": '{"scripts": {"postdeploy": '})
    result = scan(tmp_path)
    assert not result.implicit
    assert len(result.problems) == 1
    assert result.problems[0].startswith("app.json: invalid JSON")


def test_undecodable_python_on_the_start_path_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, {"Procfile": "web: uvicorn app:app\n", "app.py": b"\xff\xfe bad \xfa\n"})
    result = scan(tmp_path)
    assert result.problems == ("app.py: not valid UTF-8 (byte 0); cannot be scanned",)


def test_python_syntax_error_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, {"Procfile": "web: gunicorn app:app\n", "app.py": "def broken(:\n"})
    (problem,) = scan(tmp_path).problems
    assert problem.startswith("app.py: cannot be parsed as Python")


def test_binary_script_and_malformed_heroku_yml_are_problems(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Procfile": "release: ./bin/release\n",
            "bin/release": b"\x7fELF\x00\x00\x01",
            "heroku.yml": "release:\n  command: [\n\tbad\n",
        },
    )
    problems = scan(tmp_path).problems
    assert any(p.startswith("bin/release: binary file") for p in problems)
    assert any(p.startswith("heroku.yml: cannot be parsed") for p in problems)


def test_oversized_file_is_a_problem_not_read(tmp_path: Path) -> None:
    write(tmp_path, {"Procfile": "release: ./big.sh\n", "big.sh": "#!/bin/sh\n" + "#" * 1_100_000})
    result = scan(tmp_path)
    assert "big.sh" not in result.examined
    assert any(p.startswith("big.sh: not read:") for p in result.problems)


def test_symlink_outside_the_repository_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.sh"
    outside.write_text("#!/bin/sh\nalembic upgrade head\n")
    repo = tmp_path / "repo"
    write(repo, {"Procfile": "release: ./release.sh\n"})
    os.symlink(outside, repo / "release.sh")
    result = scan(repo)
    assert not result.implicit
    assert "outside.sh" not in " ".join(result.examined)


def test_file_cap_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, {"a": "1", "b": "2", "c": "3"})
    repo = Repo(tmp_path, max_files=2)
    assert repo.read("a") == "1"
    assert repo.read("b") == "2"
    assert repo.read("c") is None
    assert repo.problems == ["c: not read: scan limit of 2 files reached"]


def test_script_depth_is_bounded(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"Procfile": "release: ./s0.sh\n"}
    for i in range(MAX_SCRIPT_DEPTH + 2):
        files[f"s{i}.sh"] = f"#!/bin/sh\n./s{i + 1}.sh\n"
    files[f"s{MAX_SCRIPT_DEPTH + 2}.sh"] = "#!/bin/sh\nalembic upgrade head\n"
    result = scan(write(tmp_path, files))
    assert not result.implicit
    assert any("not followed: scripts nested deeper than" in p for p in result.problems)


def test_script_calling_itself_terminates(tmp_path: Path) -> None:
    write(tmp_path, {"Procfile": "release: ./a.sh\n", "a.sh": "#!/bin/sh\n./a.sh\nsh a.sh\n"})
    result = scan(tmp_path)
    assert result.findings == ()
    assert result.problems == ()


def test_no_files_at_all_is_safe_and_empty(tmp_path: Path) -> None:
    assert scan(tmp_path) == ScanResult((), (), ())


# --------------------------------------------------------------------------------------------
# the Python guard evaluator


def py_guard(
    tmp_path: Path, expr: str, env: dict[str, str] | None = None, prelude: str = ""
) -> bool | None:
    ctx = Ctx(Repo(tmp_path))
    launch_env = {k: EnvVal(v, "test") for k, v in (env or {}).items()}
    py = Py(ctx, Launch(SlugView(), "/app", launch_env), ["."])
    mod = Module("m", "m.py", ast.parse("import os\n" + prelude), "")
    py.index(mod)
    py.walk_module(mod, Trail("test"), main=False)
    frame = Frame(mod, mod.globals, module_level=True)
    return py.truth(py.eval(ast.parse(expr, mode="eval").body, frame, Trail("test")))


@pytest.mark.parametrize(
    ("expr", "env", "want"),
    [
        ('os.getenv("RUN_MIGRATIONS", "1") == "1"', {}, True),
        ('os.getenv("RUN_MIGRATIONS", "1") == "1"', {"RUN_MIGRATIONS": "0"}, False),
        ('os.environ.get("RUN_MIGRATIONS") == "1"', {}, False),
        ('os.environ.get("RUN_MIGRATIONS") == "1"', {"RUN_MIGRATIONS": "1"}, True),
        ('os.environ["RUN_MIGRATIONS"] == "1"', {}, False),
        ('not os.getenv("SKIP_MIGRATIONS")', {}, True),
        ('os.getenv("X", "false").lower() in ("1", "true", "yes")', {}, False),
        ('os.getenv("X", "false").strip().lower() in {"1", "true"}', {"X": " True "}, True),
        ('bool(int(os.getenv("X", "0")))', {}, False),
        ('int(os.getenv("X", "1")) == 1 and os.getenv("Y") is None', {}, True),
        ('os.getenv("X") != "0" or False', {}, True),
        ('"RUN_MIGRATIONS" in os.environ', {}, False),
        ('"RUN_MIGRATIONS" in os.environ', {"RUN_MIGRATIONS": ""}, True),
        ('os.getenv("DATABASE_URL")', {}, True),  # set by the platform
        ('os.getenv("DATABASE_URL") == "x"', {}, None),
        ("some_function_we_cannot_see()", {}, None),
        ("False", {}, False),
        ("0", {}, False),
        ('__name__ == "__main__"', {}, False),
    ],
)
def test_python_guard(tmp_path: Path, expr: str, env: dict[str, str], want: bool | None) -> None:
    assert py_guard(tmp_path, expr, env) is want


SETTINGS = """
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic import Field
from dataclasses import dataclass

class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_")
    AUTO_MIGRATE: bool = False
    run_on_start: bool = Field(True, alias="RUN_ON_START")

@dataclass
class Plain:
    migrate: bool = True

class Init:
    def __init__(self):
        self.migrate = os.getenv("MIGRATE", "0") == "1"

def helper(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.lower() in ("1", "true")

settings = Settings()
"""


@pytest.mark.parametrize(
    ("expr", "env", "want"),
    [
        ("settings.AUTO_MIGRATE", {}, False),
        ("settings.AUTO_MIGRATE", {"APP_AUTO_MIGRATE": "1"}, True),
        ("settings.AUTO_MIGRATE", {"app_auto_migrate": "true"}, True),  # case-insensitive
        ("settings.AUTO_MIGRATE", {"AUTO_MIGRATE": "1"}, False),  # prefix required
        ("settings.run_on_start", {}, True),
        ("settings.run_on_start", {"RUN_ON_START": "off"}, False),
        ("Settings(AUTO_MIGRATE=True).AUTO_MIGRATE", {}, True),
        ("Plain().migrate", {}, True),
        ("Init().migrate", {}, False),
        ("Init().migrate", {"MIGRATE": "1"}, True),
        ('helper("AUTO")', {}, False),
        ('helper("AUTO", default=True)', {}, True),
        ('helper("AUTO")', {"AUTO": "TRUE"}, True),
    ],
)
def test_settings_and_helper_guards(
    tmp_path: Path, expr: str, env: dict[str, str], want: bool
) -> None:
    assert py_guard(tmp_path, expr, env, SETTINGS) is want


# --------------------------------------------------------------------------------------------
# the shell guard evaluator


def shell_lines(tmp_path: Path, script: str, env: dict[str, str] | None = None) -> list[int]:
    ctx = Ctx(Repo(tmp_path))
    environment = {k: EnvVal(v, "test") for k, v in (env or {}).items()}
    state = State(SlugView(), "/app", environment, set(environment), [])
    Interp(ctx).run_text(script, Loc("s.sh", "script"), state, Trail("test"))
    return sorted(line for _, line in ctx.out.findings)


@pytest.mark.parametrize(
    ("script", "env", "want"),
    [
        ('if [ "${RUN:-1}" = "1" ]; then\n  alembic upgrade head\nfi\n', {}, [2]),
        ('if [ "${RUN:-1}" = "1" ]; then\n  alembic upgrade head\nfi\n', {"RUN": "0"}, []),
        ('[ "$RUN" = "1" ] && alembic upgrade head\n', {}, []),
        ('[ "$RUN" = "1" ] && alembic upgrade head\n', {"RUN": "1"}, [1]),
        ('[ -z "$SKIP" ] && alembic upgrade head\n', {}, [1]),
        ('test -n "$SKIP" || alembic upgrade head\n', {}, [1]),
        ('[[ "$MODE" == web* ]] && alembic upgrade head\n', {"MODE": "web-1"}, [1]),
        ('[[ "$MODE" == web* ]] && alembic upgrade head\n', {"MODE": "worker"}, []),
        ('if [ "$N" -gt 2 ]; then alembic upgrade head; fi\n', {"N": "3"}, [1]),
        ('if ! [ "$X" = y ]; then exit 0; fi\nalembic upgrade head\n', {}, []),
        ('if [ "$X" = y ]; then :; else\n  alembic upgrade head\nfi\n', {}, [2]),
        (': "${RUN:=yes}"\n[ "$RUN" = yes ] || exit 0\nalembic upgrade head\n', {}, [3]),
        ('case "${ROLE:-web}" in\n  web) alembic upgrade head ;;\n  *) true ;;\nesac\n', {}, [2]),
        ('case "$ROLE" in\n  web) alembic upgrade head ;;\nesac\n', {"ROLE": "worker"}, []),
        ("if false; then alembic upgrade head; fi\n", {}, []),
        ("exit 0\nalembic upgrade head\n", {}, []),
        ("exec gunicorn app:app\nalembic upgrade head\n", {}, []),
        ("m() { alembic upgrade head; }\n", {}, []),
        ("m() { alembic upgrade head; }\nm\n", {}, [1]),
        ("# alembic upgrade head\necho 'alembic upgrade head'\n", {}, []),
        ("cat <<EOF\nalembic upgrade head\nEOF\n", {}, []),
        ('if [ "$(cat flag)" = 1 ]; then alembic upgrade head; fi\n', {}, [1]),  # unknown
        ("while ! pg_isready; do sleep 1; done\nalembic upgrade head\n", {}, [2]),
    ],
)
def test_shell_guard(tmp_path: Path, script: str, env: dict[str, str], want: list[int]) -> None:
    assert shell_lines(tmp_path, script, env) == want


def test_shell_parser_handles_compound_commands() -> None:
    seq = parse(
        "set -e\nf() {\n  echo hi\n}\nif a; then b; elif c; then d; else e; fi\n"
        'for x in 1 2; do echo "$x"; done\ncase $1 in a|b) x;; *) y;; esac\n'
        "( cd sub && make ) | tee log &\ncat <<'EOF' > out\n$(not a command)\nEOF\n"
    )
    assert len(seq.items) == 7


# --------------------------------------------------------------------------------------------
# the command table


@pytest.mark.parametrize(
    ("command", "migrates"),
    [
        ("alembic upgrade head", True),
        ("alembic -c backend/alembic.ini -x tenant=a upgrade head", True),
        ("python -m alembic upgrade +1", True),
        ("alembic downgrade -1", True),
        ("alembic upgrade head --sql", False),
        ("alembic current", False),
        ("alembic history --verbose", False),
        ("alembic check", False),
        ("flask db upgrade", True),
        ("flask --app app db upgrade", True),
        ("flask db migrate -m x", False),
        ("flask db current", False),
        ("python manage.py migrate --noinput", True),
        ("./manage.py migrate", True),
        ("django-admin migrate --settings=x", True),
        ("python manage.py migrate --check", False),
        ("python manage.py migrate --plan", False),
        ("python manage.py makemigrations --check", False),
        ("python manage.py showmigrations", False),
        ("bundle exec rake db:migrate", True),
        ("bin/rails db:prepare", True),
        ("rails db:migrate:status", False),
        ("npx prisma migrate deploy", True),
        ("prisma db push --accept-data-loss", True),
        ("npx prisma migrate status", False),
        ("prisma generate", False),
        ("npx sequelize-cli db:migrate", True),
        ("sequelize db:migrate:status", False),
        ("knex migrate:latest", True),
        ("knex migrate:status", False),
        ("psql $DATABASE_URL -f db/schema.sql", True),
        ("psql --file=x.sql", True),
        ("psql -c 'ALTER TABLE t ADD COLUMN c int'", True),
        ("psql -c 'select 1'", False),
        ("env RUN=1 nohup poetry run alembic upgrade head", True),
        ("tini -- uv run --no-sync alembic upgrade head", True),
        ("echo alembic upgrade head", False),
        ("printf 'alembic upgrade head'", False),
        ("php artisan migrate --force", True),
        ("mix ecto.migrate", True),
        ("goose -dir db up", True),
        ("migrate -path db/migrations -database $DB up", True),
        ("migrate", False),
    ],
)
def test_migration_command_table(command: str, migrates: bool) -> None:
    argv = commands.unwrap(shlex.split(command)).argv
    assert (commands.migration(argv) is not None) is migrates


def test_psql_reading_a_file_on_stdin_migrates() -> None:
    assert commands.migration(["psql", "$DATABASE_URL"], [("<", "schema.sql")])


@pytest.mark.parametrize(
    ("command", "kind", "target", "factory"),
    [
        ("uvicorn app.main:app --host 0.0.0.0 --port 8000", "uvicorn", "app.main:app", False),
        ("uvicorn --factory app.main:create_app", "uvicorn", "app.main:create_app", True),
        (
            "gunicorn -k uvicorn.workers.UvicornWorker -w 4 'pkg:create_app()'",
            "gunicorn",
            "pkg:create_app()",
            False,
        ),
        ("gunicorn mysite.wsgi --log-file -", "gunicorn", "mysite.wsgi", False),
        ("python -m hypercorn app:app --bind 0.0.0.0:80", "hypercorn", "app:app", False),
        ("python manage.py runserver 0.0.0.0:8000", "django", None, False),
        ("fastapi run app/main.py", "fastapi", "app/main.py", False),
    ],
)
def test_server_recognition(command: str, kind: str, target: str | None, factory: bool) -> None:
    server = commands.server(commands.unwrap(shlex.split(command)).argv)
    assert server is not None
    assert (server.kind, server.target, server.factory) == (kind, target, factory)


# --------------------------------------------------------------------------------------------
# file formats


def test_yaml_subset_with_lines() -> None:
    doc = _yaml.parse(
        "build:\n  docker:\n    web: Dockerfile\nrelease:\n  command:\n    - ./r.sh\n"
        "  image: web\nrun:\n  web: uvicorn app:app  # comment\n"
        '  worker:\n    command: ["python", "w.py"]\n  script: |\n    a\n    b\n'
    )
    assert isinstance(doc, _yaml.Map)
    release = doc.items["release"]
    assert isinstance(release, _yaml.Map)
    command = release.items["command"]
    assert isinstance(command, _yaml.Seq)
    assert command.items[0] == _yaml.Scalar("./r.sh", 6)
    run = doc.items["run"]
    assert isinstance(run, _yaml.Map)
    assert run.items["web"] == _yaml.Scalar("uvicorn app:app", 9)
    assert run.items["script"] == _yaml.Scalar("a\nb", 13)
    with pytest.raises(_yaml.YamlError):
        _yaml.parse("a: &anchor\n  b: 1\n")


def test_dockerfile_env_forms_stages_and_copy_mapping(tmp_path: Path) -> None:
    write(tmp_path, {"docker/entry.sh": "#!/bin/sh\n", "src/app.py": ""})
    text = (
        'ARG BASE=python:3.12\nFROM $BASE AS build\nENV A=1 B="two words"\nFROM build\n'
        "ENV C 3 4\nWORKDIR /srv\nCOPY docker/entry.sh /usr/local/bin/\nCOPY src ./code\n"
        'RUN echo a \\\n  && echo b\nENTRYPOINT ["entry.sh"]\nCMD python -m code\n'
    )
    df = dockerfile.build(Repo(tmp_path), "Dockerfile", text, {})
    final = df.final
    assert final is not None
    assert {k: v.value for k, v in final.env.items()} == {"A": "1", "B": "two words", "C": "3 4"}
    assert final.env["A"].source == "Dockerfile:3 ENV"
    assert final.workdir == "/srv"
    assert final.entrypoint is not None and final.entrypoint.argv == ["entry.sh"]
    assert final.cmd is not None and final.cmd.shell_form
    assert final.runs[0].instr.line == 9
    view = dockerfile.ContainerView(Repo(tmp_path), tuple(final.copies))
    assert view.to_repo("/usr/local/bin/entry.sh") == "docker/entry.sh"
    assert view.to_repo("/srv/code/app.py") == "src/app.py"
    assert view.to_repo("/etc/passwd") is None
