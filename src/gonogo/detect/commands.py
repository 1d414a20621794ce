"""What counts as a migration command, and how to see through wrappers to the real program.

Everything here works on an argv (a list of words, already split and expanded by the shell
reader). `migration()` answers "does this change the schema?"; read-only and offline forms
(`alembic current`, `alembic upgrade --sql`, `manage.py migrate --check`, `prisma migrate
status`, ...) are not migrations. `unwrap()` strips launchers (`env X=1`, `exec`, `bundle
exec`, `poetry run`, `npx`, `tini --`, `python -m alembic` → `alembic`, ...). `server()`
recognises the Python web servers whose start-up code the detector then reads.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Redirects = Sequence[tuple[str, str]]
Matcher = Callable[[Sequence[str], Redirects], bool]

_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"^(python|pypy)[0-9.]*$")
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash", "ksh", "busybox"})


def prog(word: str) -> str:
    """The program's name: basename, without a trailing `.exe`."""
    base = posixpath.basename(word.rstrip("/"))
    return base[:-4] if base.endswith(".exe") else base


def is_python(word: str) -> bool:
    return bool(_PYTHON.match(prog(word)))


# --------------------------------------------------------------------------------------------
# wrappers


@dataclass(frozen=True)
class Unwrapped:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # VAR=value set by `env` / prefixes


# launcher → number of option words it takes before the real command (None: until `--` or the
# first non-option word)
_SIMPLE_WRAPPERS = {
    "nohup": 0,
    "time": 0,
    "command": 0,
    "builtin": 0,
    "exec": 0,
    "ddtrace-run": 0,
    "opentelemetry-instrument": 0,
    "newrelic-admin": 1,  # newrelic-admin run-program CMD
    "gosu": 1,
    "su-exec": 1,
    "setuidgid": 1,
    "s6-setuidgid": 1,
    "catatonit": 0,
    "foreman": 1,  # foreman run CMD
}
_OPT_WRAPPERS = frozenset(
    {"tini", "dumb-init", "nice", "ionice", "stdbuf", "sudo", "chpst", "timeout", "setpriv"}
)
_DASHDASH_WRAPPERS = frozenset(
    {"wait-for-it", "wait-for-it.sh", "wait-for", "wait-for.sh", "doppler", "dotenv", "op"}
)
# wrappers whose options take a value
_OPT_VALUES = {
    "sudo": {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"},
    "nice": {"-n"},
    "ionice": {"-c", "-n", "-p"},
    "timeout": {"-s", "-k", "--signal", "--kill-after"},
    "chpst": {"-u", "-U", "-e", "-n", "-l", "-L", "-m", "-d", "-o", "-p", "-f", "-c"},
    "stdbuf": {"-i", "-o", "-e"},
}
_RUNNERS = {
    # tool: subcommand words that run a program next
    "bundle": ("exec",),
    "poetry": ("run",),
    "pipenv": ("run",),
    "uv": ("run",),
    "pdm": ("run",),
    "hatch": ("run",),
    "rye": ("run",),
    "pnpm": ("exec", "dlx"),
    "yarn": ("exec", "dlx"),
    "bun": ("x",),
    "heroku": ("local:run",),
}
_NPX = frozenset({"npx", "bunx", "pnpx"})
# python -m MODULE that is really a command-line program
_PY_MODULE_PROGRAMS = {
    "alembic": "alembic",
    "flask": "flask",
    "django": "django-admin",
    "prisma": "prisma",
    "uvicorn": "uvicorn",
    "gunicorn": "gunicorn",
    "hypercorn": "hypercorn",
    "daphne": "daphne",
    "granian": "granian",
    "waitress": "waitress-serve",
    "fastapi": "fastapi",
    "yoyo": "yoyo",
    "aerich": "aerich",
}


def _skip_options(argv: Sequence[str], i: int, takes_value: set[str]) -> int:
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return i + 1
        if not word.startswith("-") or word == "-":
            return i
        i += 2 if word in takes_value else 1
    return i


def unwrap(argv: Sequence[str]) -> Unwrapped:
    """Strip launchers; the result's argv is a suffix-preserving rewrite of the input."""
    words = list(argv)
    env: list[tuple[str, str]] = []
    for _ in range(12):  # nested wrappers, bounded
        if not words:
            break
        while words and _ASSIGN.match(words[0]):
            name, _, value = words[0].partition("=")
            env.append((name, value))
            words = words[1:]
        if not words:
            break
        name = prog(words[0])
        if name == "env":
            i = 1
            while i < len(words):
                word = words[i]
                if word in ("-i", "--ignore-environment", "-0", "--null"):
                    i += 1
                elif word in ("-u", "--unset", "-C", "--chdir", "-S"):
                    i += 2
                elif word == "--":
                    i += 1
                    break
                elif _ASSIGN.match(word):
                    key, _, value = word.partition("=")
                    env.append((key, value))
                    i += 1
                else:
                    break
            words = words[i:]
            continue
        if name in _SIMPLE_WRAPPERS:
            words = words[1 + _SIMPLE_WRAPPERS[name] :]
            continue
        if name in _OPT_WRAPPERS:
            i = _skip_options(words, 1, _OPT_VALUES.get(name, set()))
            if name == "timeout" and i < len(words):
                i += 1  # the duration
            words = words[i:]
            continue
        if name in _DASHDASH_WRAPPERS:
            if "--" in words:
                words = words[words.index("--") + 1 :]
                continue
            break
        if name in _RUNNERS and len(words) > 1 and words[1] in _RUNNERS[name]:
            i = _skip_options(words, 2, {"--with", "--python", "-p", "--env-file", "--group"})
            words = words[i:]
            continue
        if name in _NPX:
            i = _skip_options(words, 1, {"-p", "--package", "-c", "--call"})
            words = words[i:]
            continue
        if is_python(words[0]) and len(words) > 1:
            inv = python_invocation(words)
            if inv is not None and inv.kind == "module" and inv.value in _PY_MODULE_PROGRAMS:
                words = [_PY_MODULE_PROGRAMS[inv.value], *inv.args]
                continue
        break
    return Unwrapped(tuple(words), tuple(env))


# --------------------------------------------------------------------------------------------
# python invocations


@dataclass(frozen=True)
class PyInvocation:
    kind: str  # "script", "module", "code", "stdin"
    value: str  # path, dotted module, or code
    args: tuple[str, ...]


def python_invocation(argv: Sequence[str]) -> PyInvocation | None:
    if not argv or not is_python(argv[0]):
        return None
    i = 1
    while i < len(argv):
        word = argv[i]
        if word in ("-m", "-c") and i + 1 < len(argv):
            kind = "module" if word == "-m" else "code"
            return PyInvocation(kind, argv[i + 1], tuple(argv[i + 2 :]))
        if word.startswith("-m") and len(word) > 2:
            return PyInvocation("module", word[2:], tuple(argv[i + 1 :]))
        if word in ("-W", "-X", "--check-hash-based-pycs"):
            i += 2
            continue
        if word == "-":
            return PyInvocation("stdin", "-", tuple(argv[i + 1 :]))
        if word.startswith("-"):
            i += 1
            continue
        return PyInvocation("script", word, tuple(argv[i + 1 :]))
    return None


# --------------------------------------------------------------------------------------------
# migration commands


def migration(argv: Sequence[str], redirects: Redirects = ()) -> str | None:
    """If ARGV (already unwrapped) changes a database schema, a description of it; else None."""
    if not argv:
        return None
    words = list(argv)
    name = prog(words[0])
    args = words[1:]
    inv = python_invocation(words)
    if inv is not None and inv.kind == "script":
        name = prog(inv.value)
        args = list(inv.args)
    if name == "php" and args and prog(args[0]) == "artisan":
        name, args = "artisan", args[1:]
    matcher = _MATCHERS.get(name)
    if matcher is not None and matcher(args, redirects):
        return " ".join(words)
    if name in ("psql", "mysql", "mariadb") and _sql_client(name, args, redirects):
        return " ".join(words) + "".join(f" {op} {target}" for op, target in redirects)
    return None


def _positionals(args: Sequence[str], takes_value: frozenset[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word.startswith("-") and word != "-":
            i += 2 if word in takes_value else 1
            continue
        out.append(word)
        i += 1
    return out


_ALEMBIC_VALUES = frozenset({"-c", "--config", "-n", "--name", "-x"})


def _alembic(args: Sequence[str], _redirects: Redirects) -> bool:
    pos = _positionals(args, _ALEMBIC_VALUES)
    if not pos or pos[0] not in ("upgrade", "downgrade"):
        return False
    return not any(a == "--sql" or a.startswith("--sql=") for a in args) and not _help(args)


def _help(args: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") for a in args)


_FLASK_VALUES = frozenset({"--app", "-A", "-e", "--env-file", "-d", "--directory", "-x"})


def _flask(args: Sequence[str], _redirects: Redirects) -> bool:
    pos = _positionals(args, _FLASK_VALUES)
    if len(pos) < 2 or pos[0] != "db" or pos[1] not in ("upgrade", "downgrade"):
        return False
    return "--sql" not in args and not _help(args)


def _django(args: Sequence[str], _redirects: Redirects) -> bool:
    pos = _positionals(args, frozenset({"--settings", "--pythonpath", "--database"}))
    if not pos or pos[0] != "migrate":
        return False
    return not any(a in ("--check", "--plan") for a in args) and not _help(args)


_RAILS_TASKS = re.compile(
    r"^db:(migrate(:up|:down|:redo|:reset)?|rollback|prepare|setup|reset|schema:load|"
    r"structure:load|forward)(\[.*\])?$"
)


def _rails(args: Sequence[str], _redirects: Redirects) -> bool:
    return any(_RAILS_TASKS.match(a) for a in args) and not _help(args)


_PRISMA_VALUES = frozenset({"--schema", "--name", "-n", "--url", "--file"})


def _prisma(args: Sequence[str], _redirects: Redirects) -> bool:
    pos = _positionals(args, _PRISMA_VALUES)
    if len(pos) < 2 or _help(args):
        return False
    if pos[0] == "migrate":
        return pos[1] in ("deploy", "dev", "reset")
    if pos[0] == "db":
        return pos[1] in ("push", "execute")
    return False


def _task_matcher(pattern: str) -> Matcher:
    regex = re.compile(pattern)

    def match(args: Sequence[str], _redirects: Redirects) -> bool:
        return any(regex.match(a) for a in args) and not _help(args)

    return match


def _first_positional(
    subcommands: frozenset[str], takes_value: frozenset[str] = frozenset()
) -> Matcher:
    def match(args: Sequence[str], _redirects: Redirects) -> bool:
        pos = _positionals(args, takes_value)
        return bool(pos) and pos[0] in subcommands and not _help(args)

    return match


def _two_words(pairs: frozenset[tuple[str, str]]) -> Matcher:
    def match(args: Sequence[str], _redirects: Redirects) -> bool:
        pos = _positionals(args, frozenset())
        return len(pos) >= 2 and (pos[0], pos[1]) in pairs and not _help(args)

    return match


def _golang_migrate(args: Sequence[str], _redirects: Redirects) -> bool:
    values = frozenset({"-path", "-source", "-database", "-lock-timeout", "--path", "--database"})
    if not any(a.split("=")[0] in values for a in args):
        return False
    pos = _positionals(args, values)
    return bool(pos) and pos[0] in ("up", "down", "goto", "drop")


def _typeorm(args: Sequence[str], _redirects: Redirects) -> bool:
    return any(a in ("migration:run", "migration:revert", "schema:sync") for a in args)


_SEQUELIZE = _task_matcher(r"^db:migrate(:undo(:all)?)?$")
_MATCHERS: dict[str, Matcher] = {
    "alembic": _alembic,
    "flask": _flask,
    "manage.py": _django,
    "django-admin": _django,
    "django-admin.py": _django,
    "rails": _rails,
    "rake": _rails,
    "prisma": _prisma,
    "sequelize": _SEQUELIZE,
    "sequelize-cli": _SEQUELIZE,
    "knex": _task_matcher(r"^migrate:(latest|up|down|rollback)$"),
    "typeorm": _typeorm,
    "typeorm-ts-node-commonjs": _typeorm,
    "typeorm-ts-node-esm": _typeorm,
    "drizzle-kit": _first_positional(frozenset({"migrate", "push", "push:pg", "push:mysql"})),
    "node-pg-migrate": _first_positional(frozenset({"up", "down", "redo"})),
    "db-migrate": _first_positional(frozenset({"up", "down", "reset"})),
    "goose": _first_positional(
        frozenset({"up", "up-by-one", "up-to", "down", "down-to", "redo", "reset"}),
        frozenset({"-dir", "-table", "-s"}),
    ),
    "migrate": _golang_migrate,
    "flyway": _first_positional(frozenset({"migrate", "clean", "baseline", "undo"})),
    "liquibase": _first_positional(
        frozenset(
            {
                "update",
                "update-count",
                "update-to-tag",
                "rollback",
                "rollback-count",
                "dropAll",
                "drop-all",
            }
        )
    ),
    "dbmate": _first_positional(frozenset({"up", "migrate", "rollback", "down"})),
    "sqlx": _two_words(
        frozenset(
            {
                ("migrate", "run"),
                ("migrate", "revert"),
                ("database", "setup"),
                ("database", "reset"),
            }
        )
    ),
    "diesel": _two_words(
        frozenset(
            {
                ("migration", "run"),
                ("migration", "redo"),
                ("migration", "revert"),
                ("database", "setup"),
                ("database", "reset"),
            }
        )
    ),
    "atlas": _two_words(frozenset({("migrate", "apply"), ("schema", "apply")})),
    "yoyo": _first_positional(frozenset({"apply", "rollback", "reapply"})),
    "yoyo-migrate": _first_positional(frozenset({"apply", "rollback", "reapply"})),
    "aerich": _first_positional(frozenset({"upgrade", "downgrade"})),
    "piccolo": _two_words(frozenset({("migrations", "forwards"), ("migrations", "backwards")})),
    "mix": _task_matcher(r"^ecto\.(migrate|rollback|setup|reset)$"),
    "artisan": _task_matcher(r"^(migrate|migrate:(fresh|refresh|reset|rollback|install))$"),
}


def _sql_client(name: str, args: Sequence[str], redirects: Redirects) -> bool:
    if any(op == "<" for op, _ in redirects):
        return True
    if name == "psql":
        for i, word in enumerate(args):
            if word in ("-f", "--file") and i + 1 < len(args):
                return True
            if (word.startswith("-f") and len(word) > 2) or word.startswith("--file="):
                return True
            if word in ("-c", "--command") and i + 1 < len(args) and ddl(args[i + 1]):
                return True
            if word.startswith("--command=") and ddl(word.partition("=")[2]):
                return True
        return False
    for i, word in enumerate(args):
        if word in ("-e", "--execute") and i + 1 < len(args) and ddl(args[i + 1]):
            return True
        if word.startswith("--execute=") and ddl(word.partition("=")[2]):
            return True
    return False


_DDL = re.compile(
    r"\b(create|alter|drop|rename)\s+(table|index|unique\s+index|schema|type|view|"
    r"materialized\s+view|extension|sequence|column|trigger|function)\b|"
    r"\\i\s|\\include\s",
    re.IGNORECASE,
)


def ddl(sql: str) -> bool:
    return bool(_DDL.search(sql))


# --------------------------------------------------------------------------------------------
# Python web servers (their start-up code is read by startup.py)


@dataclass(frozen=True)
class Server:
    kind: str  # uvicorn, gunicorn, hypercorn, daphne, granian, waitress, uwsgi, fastapi, flask,
    # django (manage.py / django-admin: every subcommand runs django.setup())
    target: str | None  # "app.main:app", "pkg:create_app()", "app/main.py", "proj.wsgi"
    factory: bool = False
    app_dirs: tuple[str, ...] = ()
    config: str | None = None  # gunicorn -c
    env: tuple[tuple[str, str], ...] = ()
    lifespan: bool = True  # uvicorn --lifespan off disables start-up hooks
    args: tuple[str, ...] = ()  # django: the management command and its arguments


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_UVICORN_VALUES = _words(
    """--host --port --uds --fd --loop --http --ws --ws-max-size --ws-max-queue
    --ws-ping-interval --ws-ping-timeout --ws-per-message-deflate --lifespan --interface
    --env-file --log-config --log-level --root-path --limit-concurrency --limit-max-requests
    --backlog --timeout-keep-alive --timeout-graceful-shutdown --ssl-keyfile --ssl-certfile
    --ssl-keyfile-password --ssl-version --ssl-cert-reqs --ssl-ca-certs --ssl-ciphers --header
    --forwarded-allow-ips --app-dir --h11-max-incomplete-event-size --workers --reload-dir
    --reload-include --reload-exclude --reload-delay"""
)
_GUNICORN_VALUES = _words(
    """-b --bind -w --workers -k --worker-class -c --config --threads -t --timeout
    --graceful-timeout --keep-alive --max-requests --max-requests-jitter --log-level
    --access-logfile --error-logfile --log-file --access-logformat -n --name --chdir
    --pythonpath -e --env -u --user -g --group --worker-tmp-dir --forwarded-allow-ips
    --limit-request-line --limit-request-fields --limit-request-field_size --backlog -p --pid
    --paste --worker-connections -m --umask --certfile --keyfile --ca-certs --ciphers
    --statsd-host --statsd-prefix --log-config --log-syslog-to --logger-class --proxy-allow-from
    --root-path --insecure-bind --quic-bind --read-timeout --websocket-ping-interval
    --max-app-queue-size --access-log --proxy-headers-host --websocket_timeout
    --websocket_connect_timeout --application-close-timeout --ping-interval --ping-timeout
    --interface --host --port --loop --http --threading-mode --blocking-threads --listen
    --threads-per-worker --url-scheme --ident --call-timeout --unix-socket --backpressure
    --reload-paths --workers-lifetime --respawn-failure-threshold --log-level"""
)
_TARGET = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*(\(.*\))?)?$")
_GENERIC_SERVERS = {
    "uvicorn": _UVICORN_VALUES,
    "gunicorn": _GUNICORN_VALUES,
    "hypercorn": _GUNICORN_VALUES,
    "daphne": _GUNICORN_VALUES,
    "granian": _GUNICORN_VALUES,
    "waitress-serve": _GUNICORN_VALUES,
}


def _opt_value(args: Sequence[str], names: Sequence[str]) -> list[str]:
    values: list[str] = []
    for i, word in enumerate(args):
        for name in names:
            if word == name and i + 1 < len(args):
                values.append(args[i + 1])
            elif word.startswith(name + "=") and name.startswith("--"):
                values.append(word.partition("=")[2])
    return values


def _pick_target(positionals: Sequence[str]) -> str | None:
    with_colon = [p for p in positionals if ":" in p and _TARGET.match(p)]
    if with_colon:
        return with_colon[0]
    plain = [p for p in positionals if _TARGET.match(p)]
    return plain[-1] if plain else None


def server(argv: Sequence[str]) -> Server | None:
    """If ARGV (unwrapped) starts a Python web server, what it serves."""
    if not argv:
        return None
    name = prog(argv[0])
    args = list(argv[1:])
    inv = python_invocation(argv)
    if inv is not None and inv.kind == "script" and prog(inv.value) == "manage.py":
        name, args = "manage.py", list(inv.args)
    if name in _GENERIC_SERVERS:
        pos = _positionals(args, _GENERIC_SERVERS[name])
        app_dirs = [
            d
            for value in _opt_value(args, ["--app-dir", "--chdir", "--pythonpath"])
            for d in value.split(",")
            if d
        ]
        env = tuple(
            (k, v)
            for item in _opt_value(args, ["-e", "--env"])
            for k, _, v in [item.partition("=")]
        )
        config = _opt_value(args, ["-c", "--config"])
        lifespan = _opt_value(args, ["--lifespan"])
        return Server(
            kind=name.replace("-serve", ""),
            target=_pick_target(pos),
            factory="--factory" in args or "--call" in args,
            app_dirs=tuple(app_dirs),
            config=config[-1] if config else None,
            env=env if name == "gunicorn" else (),
            lifespan=not lifespan or lifespan[-1] != "off",
        )
    if name == "fastapi":
        pos = _positionals(
            args,
            frozenset(
                {
                    "--host",
                    "--port",
                    "--app",
                    "--root-path",
                    "--workers",
                    "--proxy-headers",
                    "--entrypoint",
                    "-e",
                }
            ),
        )
        if not pos or pos[0] not in ("run", "dev"):
            return None
        apps = _opt_value(args, ["--app"])
        target = pos[1] if len(pos) > 1 else None
        if apps and target:
            target = f"{target}::{apps[-1]}"
        return Server(kind="fastapi", target=target)
    if name == "flask":
        pos = _positionals(args, _FLASK_VALUES)
        if not pos or pos[0] != "run":
            return None
        apps = _opt_value(args, ["--app", "-A"])
        return Server(kind="flask", target=apps[-1] if apps else None)
    if name in ("manage.py", "django-admin", "django-admin.py"):
        pos = _positionals(args, frozenset({"--settings", "--pythonpath"}))
        return Server(kind="django", target=None, args=tuple(pos))
    if name == "uwsgi":
        modules = _opt_value(args, ["--module", "-w", "--wsgi"])
        files = _opt_value(args, ["--wsgi-file", "--file"])
        if modules:
            return Server(kind="uwsgi", target=modules[-1])
        if files:
            return Server(kind="uwsgi-file", target=files[-1])
        return None
    return None
