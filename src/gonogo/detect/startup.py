"""Reading Python start-up code: from a web command to the hooks it runs, down to the upgrade.

An abstract interpreter over the `ast` of the repo's own modules. It imports what the server
would import (module-level code runs), calls the factory the command names, registers the
start-up hooks that executed code sets up (FastAPI `lifespan=` / `on_startup=` /
`@app.on_event("startup")`, Flask `before_first_request`, gunicorn server hooks, Django
`AppConfig.ready()`), then walks those hooks, following calls into repo functions (bounded)
until it reaches a schema change: `alembic.command.upgrade`, `flask_migrate.upgrade`,
`call_command("migrate")`, or a subprocess / `os.system` running a migration command.

Guards on the way are evaluated with their effective defaults: `os.getenv("X", "1")` reads the
launch environment (a Dockerfile `ENV`, a script's export) or the default in the code;
settings classes (pydantic `BaseSettings`, dataclasses, plain classes) give their field
defaults, overridden by the environment for `BaseSettings`. A guard that cannot be decided is
assumed to possibly pass, and the finding says so. Nothing is imported or executed.
"""

from __future__ import annotations

import ast
import builtins
import posixpath
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from gonogo.detect import commands
from gonogo.detect._base import (
    MAX_CALL_DEPTH,
    MAX_CALLS,
    Ctx,
    Env,
    EnvVal,
    Trail,
    env_lookup,
    short,
)
from gonogo.detect.shell import Exp, Interp, Launch, Loc, State

Tri = bool | None
FuncNode = ast.FunctionDef | ast.AsyncFunctionDef

# --------------------------------------------------------------------------------------------
# abstract values


class Val:
    pass


@dataclass(frozen=True, eq=False)
class Const(Val):
    value: object


@dataclass(frozen=True, eq=False)
class Unknown(Val):
    text: str = ""
    nonempty: bool = False


@dataclass(frozen=True, eq=False)
class Items(Val):
    """A list / tuple whose items are not all constants."""

    items: tuple[Val, ...]


@dataclass(eq=False)
class Module:
    name: str
    file: str
    tree: ast.Module
    package: str
    fixed_line: int | None = None  # python -c code: every line is the command's line
    line_base: int = 1
    defs: dict[str, ast.stmt] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)
    assigns: dict[str, list[ast.expr]] = field(default_factory=dict)
    stars: list[str] = field(default_factory=list)
    globals: dict[str, Val] = field(default_factory=dict)
    evaluating: set[str] = field(default_factory=set)
    namespace: bool = False

    def line(self, node: ast.AST) -> int:
        if self.fixed_line is not None:
            return self.fixed_line
        return self.line_base + getattr(node, "lineno", 1) - 1


@dataclass(frozen=True, eq=False)
class ModRef(Val):
    mod: Module


@dataclass(frozen=True, eq=False)
class Ext(Val):
    """Something outside the repository, by qualified name (os.getenv, alembic.command)."""

    qual: str


@dataclass(frozen=True, eq=False)
class ClassV(Val):
    mod: Module
    node: ast.ClassDef


@dataclass(eq=False)
class Inst(Val):
    cls: ClassV
    kwargs: dict[str, Val] = field(default_factory=dict)
    attrs: dict[str, Val] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Func(Val):
    mod: Module
    node: FuncNode
    closure: Frame | None = None
    owner: ClassV | None = None
    bound: Val | None = None


@dataclass(frozen=True, eq=False)
class AppObj(Val):
    kind: str


@dataclass(eq=False)
class Frame:
    mod: Module
    locals: dict[str, Val]
    parent: Frame | None = None
    main: bool = False
    module_level: bool = False
    returns: list[Val] = field(default_factory=list)


NORMAL, LOOP, EXIT = 0, 1, 2


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# top-level names that are never repo modules (a repo's `alembic/` migrations folder is not
# the alembic package)
_NOT_REPO = _words(
    """os sys subprocess alembic flask_migrate django asyncio shlex logging typing pathlib json
    re uvicorn gunicorn fastapi flask starlette sqlalchemy pydantic pydantic_settings threading
    contextlib functools dataclasses collections distutils decouple environs anyio"""
)
_APP_CLASSES = frozenset(
    {"FastAPI", "Flask", "Starlette", "Quart", "Litestar", "Sanic", "APIFlask"}
)
_HOOK_ATTRS = {
    "before_first_request": "Flask before_first_request hook",
    "before_app_first_request": "Flask before_app_first_request hook",
    "before_serving": "Quart before_serving hook",
    "before_request": "Flask before_request hook (runs on every request)",
    "before_app_request": "Flask before_app_request hook (runs on every request)",
    "on_startup": "start-up hook",
}
_SERVER_RUNS = frozenset(
    {
        "uvicorn.run",
        "hypercorn.asyncio.serve",
        "hypercorn.trio.serve",
        "waitress.serve",
        "aiohttp.web.run_app",
        "bjoern.run",
        "granian.Granian",
    }
)
_DJANGO_BOOT = frozenset(
    {
        "django.setup",
        "django.core.wsgi.get_wsgi_application",
        "django.core.asgi.get_asgi_application",
        "django.core.management.execute_from_command_line",
    }
)
_SUBPROCESS_ARGV = frozenset(
    {
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
    }
)
_SUBPROCESS_SHELL = frozenset(
    {
        "os.system",
        "os.popen",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "asyncio.create_subprocess_shell",
    }
)
_EXECUTORS = frozenset(
    {
        "to_thread",
        "run_in_executor",
        "run_sync",
        "run_in_threadpool",
        "submit",
        "Thread",
        "Process",
        "start_new_thread",
        "call_soon",
        "call_soon_threadsafe",
        "add_task",
    }
)
_STR_METHODS = frozenset(
    {
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "casefold",
        "title",
        "startswith",
        "endswith",
        "isdigit",
        "isnumeric",
        "replace",
        "split",
        "removeprefix",
        "removesuffix",
    }
)
_TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off", ""})
_DJANGO_BUILTIN = _words(
    """runserver migrate makemigrations showmigrations collectstatic check shell
    createsuperuser test sqlmigrate squashmigrations dbshell dumpdata loaddata flush startapp
    startproject compilemessages makemessages changepassword clearsessions diffsettings
    inspectdb sendtestemail testserver optimizemigration remove_stale_contenttypes
    createcachetable sqlflush sqlsequencereset help version"""
)
_GUNICORN_HOOKS = ("on_starting", "when_ready", "pre_fork", "post_fork", "post_worker_init")


def _fmt(value: object) -> str:
    return repr(value)


# --------------------------------------------------------------------------------------------
# entry points (called by the shell reader)


def _roots(ctx: Ctx, launch: Launch, extra: Sequence[str] = ()) -> list[str]:
    cwd = launch.repo_dir() or "."
    roots: list[str] = []
    for cand in [*extra, cwd, ".", "src"]:
        normed = posixpath.normpath(cand)
        if normed not in roots and (normed == "." or ctx.repo.is_dir(normed)):
            roots.append(normed)
    return roots


def run_server(ctx: Ctx, server: commands.Server, launch: Launch, trail: Trail) -> None:
    cwd = launch.repo_dir() or "."
    app_dirs = [posixpath.normpath(posixpath.join(cwd, d)) for d in server.app_dirs]
    env = dict(launch.env)
    for key, value in server.env:
        env[key] = EnvVal(value, "set with gunicorn -e")
    py = Py(ctx, Launch(launch.view, launch.cwd, env), _roots(ctx, launch, app_dirs))
    py.serving = True
    if not server.lifespan:
        py.serving = False
    if server.kind == "django":
        py.django = True
        args = list(server.args)
        if args and args[0] not in _DJANGO_BUILTIN:
            py.management_command(args[0], trail)
        py.finish(trail)
        return
    target = server.target
    factory = server.factory
    if server.kind == "flask":
        flask_app = env_lookup(env, "FLASK_APP")
        if target is None and flask_app.value:
            target = flask_app.value
        if target is None:
            target = next(
                (n for n in ("app", "wsgi") if ctx.repo.is_file(posixpath.join(cwd, n + ".py"))),
                None,
            )
        if target is not None and ":" not in target:
            mod = py.import_(target.removesuffix(".py").replace("/", "."), trail)
            if isinstance(mod, ModRef):
                py.flask_autodetect(mod.mod, trail)
            py.finish(trail)
            return
    if server.kind == "fastapi":
        target = py.fastapi_target(target, cwd)
    if server.kind == "uwsgi-file" and target is not None:
        rel = posixpath.normpath(posixpath.join(cwd, target))
        wsgi = py.load_file(rel, "uwsgi_file", main=False)
        if wsgi is not None:
            py.walk_module(wsgi, trail, main=False)
        py.finish(trail)
        return
    if target is None:
        return
    if server.kind == "gunicorn":
        py.gunicorn_config(server.config, cwd, trail)
    py.boot_target(target, factory, trail, default_attr="application")
    if target.split(":")[0].endswith((".wsgi", ".asgi")):
        py.django = True
    py.finish(trail)


def run_script(ctx: Ctx, rel: str, launch: Launch, trail: Trail, args: Sequence[str] = ()) -> None:
    directory = posixpath.dirname(rel) or "."
    py = Py(ctx, launch, _roots(ctx, launch, [directory]))
    py.argv = ["prog", *args]
    mod = py.load_file(rel, "__main__", main=True)
    if mod is None:
        return
    py.walk_module(mod, trail.step(f"runs {rel}"), main=True)
    py.finish(trail)


def run_module_main(ctx: Ctx, dotted: str, launch: Launch, trail: Trail) -> None:
    py = Py(ctx, launch, _roots(ctx, launch))
    parent = dotted.rpartition(".")[0]
    if parent:
        py.import_(parent, trail)
    mod = py.load(dotted)
    if mod is None:
        return
    if mod.file.endswith("__init__.py"):
        py.walk_module(mod, trail.step(f"imports {mod.file}"), main=False)
        main_file = posixpath.join(posixpath.dirname(mod.file), "__main__.py")
        main = py.load_file(main_file, "__main__", main=True)
        if main is None:
            return
        py.walk_module(main, trail.step(f"runs {main.file}"), main=True)
    else:
        py.walk_module(mod, trail.step(f"runs {mod.file}"), main=True)
    py.finish(trail)


def run_code(
    ctx: Ctx,
    code: str,
    file: str,
    line: int,
    launch: Launch,
    trail: Trail,
    *,
    fixed: bool = True,
) -> None:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return  # an inline snippet we cannot read is not a file problem
    py = Py(ctx, launch, _roots(ctx, launch))
    mod = Module("__main__", file, tree, "", fixed_line=line if fixed else None, line_base=line)
    py.index(mod)
    py.walk_module(mod, trail, main=True)
    py.finish(trail)


# --------------------------------------------------------------------------------------------
# the interpreter


class Py:
    def __init__(self, ctx: Ctx, launch: Launch, roots: list[str]) -> None:
        self.ctx = ctx
        self.launch = launch
        self.env: Env = dict(launch.env)
        self.roots = roots
        self.mods: dict[str, Module | None] = {}
        self.by_file: dict[str, Module] = {}
        self.walked: set[str] = set()
        self.hooks: list[tuple[Func, str, Trail]] = []
        self.serving = False  # the entry starts a server: start-up hooks run
        self.started = False  # executed code started a server (uvicorn.run, app.run)
        self.django = False
        self.stack: list[FuncNode] = []
        self.reads: list[str] | None = None
        self.argv: list[str] = ["prog"]
        self.memo: dict[tuple[int, str, bool], Val] = {}
        # what a stored value was computed from (env reads, setting defaults), to explain a
        # guard that tests the variable later
        self.prov: dict[int, tuple[Val, tuple[str, ...]]] = {}

    # ---- modules -------------------------------------------------------------------------

    def parse_file(self, rel: str) -> ast.Module | None:
        key = f"pyast:{rel}"
        if key in self.ctx.cache:
            cached = self.ctx.cache[key]
            return cached if isinstance(cached, ast.Module) else None
        text = self.ctx.repo.read(rel)
        tree: ast.Module | None = None
        if text is not None:
            try:
                tree = ast.parse(text, filename=rel)
            except SyntaxError as exc:
                self.ctx.repo.problem(
                    rel, f"cannot be parsed as Python: {exc.msg} (line {exc.lineno})"
                )
            except (ValueError, RecursionError) as exc:
                self.ctx.repo.problem(rel, f"cannot be parsed as Python: {exc}")
        self.ctx.cache[key] = tree
        return tree

    def load_file(self, rel: str, name: str, *, main: bool) -> Module | None:
        if rel in self.by_file and not main:
            return self.by_file[rel]
        tree = self.parse_file(rel)
        if tree is None:
            return None
        package = name if rel.endswith("__init__.py") else name.rpartition(".")[0]
        mod = Module(name, rel, tree, package)
        self.index(mod)
        if not main:
            self.by_file[rel] = mod
        return mod

    def load(self, dotted: str) -> Module | None:
        if dotted in self.mods:
            return self.mods[dotted]
        self.mods[dotted] = None
        parts = dotted.split(".")
        if not dotted or parts[0] in _NOT_REPO or not all(p.isidentifier() for p in parts):
            return None
        for root in self.roots:
            base = posixpath.normpath(posixpath.join(root, *parts))
            for rel in (base + ".py", base + "/__init__.py"):
                if self.ctx.repo.is_file(rel):
                    mod = self.load_file(rel, dotted, main=False)
                    self.mods[dotted] = mod
                    return mod
            if self.ctx.repo.is_dir(base):
                mod = Module(dotted, base, ast.Module(body=[], type_ignores=[]), dotted)
                mod.namespace = True
                self.mods[dotted] = mod
                return mod
        return None

    def index(self, mod: Module) -> None:
        def visit(stmts: list[ast.stmt]) -> None:
            for st in stmts:
                if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    mod.defs[st.name] = st
                elif isinstance(st, ast.Import):
                    for alias in st.names:
                        if alias.asname:
                            mod.imports[alias.asname] = alias.name
                        else:
                            top = alias.name.split(".")[0]
                            mod.imports[top] = top
                elif isinstance(st, ast.ImportFrom):
                    base = self.absolute(mod, st.module, st.level)
                    for alias in st.names:
                        if alias.name == "*":
                            mod.stars.append(base)
                        else:
                            qual = f"{base}.{alias.name}" if base else alias.name
                            mod.imports[alias.asname or alias.name] = qual
                elif isinstance(st, ast.Assign):
                    for target in st.targets:
                        if isinstance(target, ast.Name):
                            mod.assigns.setdefault(target.id, []).append(st.value)
                elif isinstance(st, ast.AnnAssign) and st.value is not None:
                    if isinstance(st.target, ast.Name):
                        mod.assigns.setdefault(st.target.id, []).append(st.value)
                elif isinstance(st, ast.If):
                    visit(st.body)
                    visit(st.orelse)
                elif isinstance(st, ast.Try):
                    visit(st.body)
                    for handler in st.handlers:
                        visit(handler.body)
                    visit(st.orelse)
                    visit(st.finalbody)

        visit(mod.tree.body)

    @staticmethod
    def absolute(mod: Module, name: str | None, level: int) -> str:
        if level == 0:
            return name or ""
        base = mod.package
        for _ in range(level - 1):
            base = base.rpartition(".")[0]
        if name:
            return f"{base}.{name}" if base else name
        return base

    def resolve_qual(self, qual: str) -> Val:
        """A dotted name as a value: the longest prefix that is a repo module, then attributes."""
        parts = qual.split(".")
        for i in range(len(parts), 0, -1):
            mod = self.load(".".join(parts[:i]))
            if mod is None:
                continue
            if mod.namespace and i < len(parts):
                sub = self.load(".".join(parts[: i + 1]))
                if sub is None:
                    continue
            val: Val = ModRef(mod)
            quiet = Trail("", quiet=True)
            for attr in parts[i:]:
                val = self.getattr(val, attr, quiet)
            return val
        return Ext(qual)

    def walk_module(self, mod: Module, trail: Trail, *, main: bool) -> None:
        key = mod.file if not main else f"__main__:{mod.file}"
        if key in self.walked or mod.namespace:
            return
        self.walked.add(key)
        frame = Frame(mod, mod.globals, main=main, module_level=True)
        self.exec_block(mod.tree.body, frame, trail)

    def import_(self, qual: str, trail: Trail) -> Val:
        parts = qual.split(".")
        for i in range(1, len(parts) + 1):
            mod = self.load(".".join(parts[:i]))
            if mod is None:
                if i == 1:
                    return Ext(qual)
                break
            if not trail.quiet:
                self.walk_module(mod, trail.step(f"imports {mod.file}"), main=False)
        return self.resolve_qual(qual)

    # ---- boot ----------------------------------------------------------------------------

    def boot_target(self, target: str, factory: bool, trail: Trail, default_attr: str) -> None:
        module, _, attr = target.partition(":")
        mod_val = self.import_(module, trail)
        if not isinstance(mod_val, ModRef):
            return
        mod = mod_val.mod
        call = factory
        if attr.endswith(")") and "(" in attr:
            attr = attr.split("(", 1)[0]
            call = True
        if not attr:
            attr = default_attr
        val = self.global_value(mod, attr, trail)
        if call and isinstance(val, Func):
            self.call(val, [], {}, trail, step=f"{mod.file}:{val.node.lineno} factory {attr}()")

    def flask_autodetect(self, mod: Module, trail: Trail) -> None:
        if "app" in mod.assigns or "application" in mod.assigns:
            return
        for name in ("create_app", "make_app"):
            val = self.global_value(mod, name, trail)
            if isinstance(val, Func):
                self.call(val, [], {}, trail, step=f"{mod.file}:{val.node.lineno} factory {name}()")
                return

    def fastapi_target(self, target: str | None, cwd: str) -> str | None:
        app = "app"
        if target and "::" in target:
            target, _, app = target.partition("::")
        candidates = (
            [target]
            if target
            else ["main.py", "app.py", "api.py", "app/main.py", "app/app.py", "app/api.py"]
        )
        for cand in candidates:
            rel = posixpath.normpath(posixpath.join(cwd, cand))
            if self.ctx.repo.is_dir(rel):
                rel = posixpath.join(rel, "__init__.py")
            if not self.ctx.repo.is_file(rel):
                continue
            module = rel.removesuffix(".py").removesuffix("/__init__")
            for root in self.roots:
                prefix = "" if root == "." else root + "/"
                if module.startswith(prefix):
                    return module[len(prefix) :].replace("/", ".") + ":" + app
        return None

    def gunicorn_config(self, config: str | None, cwd: str, trail: Trail) -> None:
        name = config.removeprefix("python:") if config else "gunicorn.conf.py"
        rel = posixpath.normpath(posixpath.join(cwd, name))
        if config and config.startswith("python:"):
            mod = self.load(config.removeprefix("python:"))
        elif self.ctx.repo.is_file(rel):
            mod = self.load_file(rel, "gunicorn_conf", main=False)
        else:
            return
        if mod is None:
            return
        self.walk_module(mod, trail.step(f"gunicorn config {mod.file}"), main=False)
        for hook in _GUNICORN_HOOKS:
            val = self.global_value(mod, hook, trail)
            if isinstance(val, Func):
                self.hooks.append(
                    (val, f"gunicorn {hook} hook {mod.file}:{val.node.lineno}", trail)
                )

    def management_command(self, name: str, trail: Trail) -> None:
        for rel in self.ctx.repo.files():
            if not rel.endswith(f"/management/commands/{name}.py"):
                continue
            dotted = self.dotted_for(rel)
            mod = self.load_file(rel, dotted or f"command_{name}", main=False)
            if mod is None:
                continue
            self.walk_module(mod, trail.step(f"imports {rel}"), main=False)
            cls = mod.defs.get("Command")
            if isinstance(cls, ast.ClassDef):
                inst = Inst(ClassV(mod, cls))
                handle = self.getattr(inst, "handle", trail)
                if isinstance(handle, Func):
                    self.call(
                        handle,
                        [],
                        {},
                        trail,
                        step=f"{rel}:{handle.node.lineno} manage.py {name} → Command.handle()",
                    )
            return

    def dotted_for(self, rel: str) -> str | None:
        for root in self.roots:
            prefix = "" if root == "." else root + "/"
            if rel.startswith(prefix):
                return rel[len(prefix) :].removesuffix(".py").replace("/", ".")
        return None

    def finish(self, trail: Trail) -> None:
        if self.django:
            self.django_ready(trail)
        if self.serving or self.started:
            done: set[int] = set()
            while self.hooks:
                func, label, hook_trail = self.hooks.pop(0)
                if id(func.node) in done:
                    continue
                done.add(id(func.node))
                self.call(func, [], {}, hook_trail, step=label)

    def django_ready(self, trail: Trail) -> None:
        for rel in self.ctx.repo.files():
            if posixpath.basename(rel) != "apps.py":
                continue
            dotted = self.dotted_for(rel)
            if dotted is None:
                continue
            mod = self.load(dotted)
            if mod is None:
                continue
            self.walk_module(mod, trail.step(f"imports {mod.file}"), main=False)
            for node in mod.tree.body:
                if not isinstance(node, ast.ClassDef):
                    continue
                if not any(ast.unparse(b).endswith("AppConfig") for b in node.bases):
                    continue
                inst = Inst(ClassV(mod, node))
                ready = self.getattr(inst, "ready", trail)
                if isinstance(ready, Func) and ready.owner is not None:
                    label = f"Django AppConfig.ready() {mod.file}:{ready.node.lineno}"
                    self.call(ready, [], {}, trail, step=label)

    # ---- statements ----------------------------------------------------------------------

    def exec_block(self, body: Sequence[ast.stmt], frame: Frame, trail: Trail) -> int:
        for st in body:
            flow, trail = self.exec_stmt(st, frame, trail)
            if flow != NORMAL:
                return flow
        return NORMAL

    def exec_stmt(self, st: ast.stmt, frame: Frame, trail: Trail) -> tuple[int, Trail]:
        if isinstance(st, ast.Expr):
            value = st.value
            if isinstance(value, ast.Await):
                value = value.value
            if isinstance(value, ast.Yield | ast.YieldFrom):
                if value.value is not None:
                    self.eval(value.value, frame, trail)
                return EXIT, trail  # what follows a lifespan's yield runs at shutdown
            result = self.eval(value, frame, trail)
            if isinstance(result, Ext) and result.qual == "<exit>":
                return EXIT, trail
            return NORMAL, trail
        if isinstance(st, ast.Assign):
            val = self.eval_tracked(st.value, frame, trail)
            for target in st.targets:
                self.bind(target, val, frame, trail)
            return NORMAL, trail
        if isinstance(st, ast.AnnAssign):
            if st.value is not None:
                self.bind(st.target, self.eval_tracked(st.value, frame, trail), frame, trail)
            return NORMAL, trail
        if isinstance(st, ast.AugAssign):
            self.eval(st.value, frame, trail)
            if isinstance(st.target, ast.Name):
                frame.locals[st.target.id] = Unknown(ast.unparse(st.target))
            return NORMAL, trail
        if isinstance(st, ast.If):
            return self.exec_if(st, frame, trail)
        if isinstance(st, ast.While):
            test = self.guard(st.test, frame, trail)
            if test[0] is False:
                return self.exec_block(st.orelse, frame, trail), trail
            flow = self.exec_block(st.body, frame, test[1])
            return (EXIT if flow == EXIT and test[0] is True else NORMAL), trail
        if isinstance(st, ast.For | ast.AsyncFor):
            self.eval(st.iter, frame, trail)
            self.bind(st.target, Unknown("loop variable"), frame, trail)
            self.exec_block(st.body, frame, trail)
            self.exec_block(st.orelse, frame, trail)
            return NORMAL, trail
        if isinstance(st, ast.With | ast.AsyncWith):
            for item in st.items:
                self.eval(item.context_expr, frame, trail)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, Unknown("with target"), frame, trail)
            return self.exec_block(st.body, frame, trail), trail
        if isinstance(st, ast.Try | ast.TryStar):
            flow = self.exec_block(st.body, frame, trail)
            handler_flows = []
            for handler in st.handlers:
                where = f"{frame.mod.file}:{frame.mod.line(handler)}"
                handler_flows.append(
                    self.exec_block(
                        handler.body, frame, trail.note(f"in the except handler at {where}")
                    )
                )
            if flow == NORMAL:
                flow = self.exec_block(st.orelse, frame, trail)
            final = self.exec_block(st.finalbody, frame, trail)
            if final != NORMAL:
                return final, trail
            if flow == EXIT and all(f == EXIT for f in handler_flows):
                return EXIT, trail
            return NORMAL, trail
        if isinstance(st, ast.Return):
            frame.returns.append(
                self.eval(st.value, frame, trail) if st.value is not None else Const(None)
            )
            return EXIT, trail
        if isinstance(st, ast.Raise):
            if st.exc is not None:
                self.eval(st.exc, frame, trail)
            return EXIT, trail
        if isinstance(st, ast.Break | ast.Continue):
            return LOOP, trail
        if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef):
            func = Func(frame.mod, st, None if frame.module_level else frame)
            frame.locals[st.name] = func
            for dec in st.decorator_list:
                self.decorator(dec, func, frame, trail)
            return NORMAL, trail
        if isinstance(st, ast.ClassDef):
            frame.locals[st.name] = ClassV(frame.mod, st)
            return NORMAL, trail
        if isinstance(st, ast.Import):
            for alias in st.names:
                val = self.import_(alias.name, trail)
                if alias.asname:
                    frame.locals[alias.asname] = val
                else:
                    top = alias.name.split(".")[0]
                    frame.locals[top] = self.resolve_qual(top)
            return NORMAL, trail
        if isinstance(st, ast.ImportFrom):
            base = self.absolute(frame.mod, st.module, st.level)
            base_val = self.import_(base, trail) if base else Ext("")
            for alias in st.names:
                if alias.name == "*":
                    continue
                val = self.getattr(base_val, alias.name, trail)
                if isinstance(base_val, ModRef) and isinstance(val, Unknown):
                    val = self.import_(f"{base}.{alias.name}", trail)
                frame.locals[alias.asname or alias.name] = val
            return NORMAL, trail
        if isinstance(st, ast.Match):
            self.eval(st.subject, frame, trail)
            where = f"{frame.mod.file}:{frame.mod.line(st)}"
            for case in st.cases:
                note = f"match at {where} could not be evaluated; assumed each case may run"
                self.exec_block(case.body, frame, trail.note(note))
            return NORMAL, trail
        return NORMAL, trail

    def bind(self, target: ast.expr, val: Val, frame: Frame, trail: Trail) -> None:
        if isinstance(target, ast.Name):
            frame.locals[target.id] = val
            return
        if isinstance(target, ast.Attribute):
            base = self.eval(target.value, frame, trail)
            if isinstance(base, Inst):
                base.attrs[target.attr] = val
            if target.attr == "lifespan_context" and isinstance(val, Func):
                self.add_hook(val, "lifespan", trail)
            return
        if isinstance(target, ast.Tuple | ast.List):
            for elt in target.elts:
                self.bind(elt, Unknown("unpacked"), frame, trail)

    def exec_if(self, st: ast.If, frame: Frame, trail: Trail) -> tuple[int, Trail]:
        truth, body_trail, reads = self.guard_reads(st.test, frame, trail)
        where = f"{frame.mod.file}:{frame.mod.line(st)}"
        test = short(ast.unparse(st.test), 90)
        if truth is True:
            return self.exec_block(st.body, frame, body_trail), trail
        if truth is False:
            after = trail
            if reads and _ends(st.body) and not st.orelse:
                after = trail.note(f"guard `{test}` ({where}) is false: {', '.join(reads)}")
            return self.exec_block(st.orelse, frame, after), after
        note = f"guard `{test}` ({where}) could not be evaluated; assumed it may run"
        a = self.exec_block(st.body, frame, trail.note(note))
        b = self.exec_block(st.orelse, frame, trail.note(note) if st.orelse else trail)
        return (EXIT if a == EXIT and b == EXIT else NORMAL), trail

    def guard_reads(
        self, test: ast.expr, frame: Frame, trail: Trail
    ) -> tuple[Tri, Trail, list[str]]:
        outer = self.reads
        self.reads = []
        try:
            val = self.eval(test, frame, trail)
            reads = self.reads
        finally:
            self.reads = outer
        if outer is not None:
            outer.extend(r for r in reads if r not in outer)
        truth = self.truth(val)
        where = f"{frame.mod.file}:{frame.mod.line(test)}"
        text = short(ast.unparse(test), 90)
        if truth is True and reads:
            trail = trail.note(f"guard `{text}` ({where}) is true: {', '.join(reads)}")
        return truth, trail, reads

    def guard(self, test: ast.expr, frame: Frame, trail: Trail) -> tuple[Tri, Trail]:
        truth, trail, _ = self.guard_reads(test, frame, trail)
        if truth is None:
            where = f"{frame.mod.file}:{frame.mod.line(test)}"
            trail = trail.note(
                f"guard `{short(ast.unparse(test), 90)}` ({where}) could not be evaluated; "
                "assumed it may run"
            )
        return truth, trail

    def decorator(self, dec: ast.expr, func: Func, frame: Frame, trail: Trail) -> None:
        node = dec.func if isinstance(dec, ast.Call) else dec
        if not isinstance(node, ast.Attribute):
            return
        attr = node.attr
        if attr == "on_event" and isinstance(dec, ast.Call) and dec.args:
            first = self.eval(dec.args[0], frame, Trail("", quiet=True))
            if isinstance(first, Const) and first.value == "startup":
                self.add_hook(func, "FastAPI startup hook", trail)
            return
        if attr == "listener" and isinstance(dec, ast.Call) and dec.args:
            first = self.eval(dec.args[0], frame, Trail("", quiet=True))
            if isinstance(first, Const) and first.value in (
                "before_server_start",
                "after_server_start",
                "main_process_start",
            ):
                self.add_hook(func, f"Sanic {first.value} listener", trail)
            return
        if attr in _HOOK_ATTRS:
            self.add_hook(func, _HOOK_ATTRS[attr], trail)

    def add_hook(self, func: Func, label: str, trail: Trail) -> None:
        if trail.quiet:
            return
        where = f"{func.mod.file}:{func.mod.line(func.node)}"
        self.hooks.append((func, f"{label} {func.node.name}() {where}", trail))

    # ---- expressions ---------------------------------------------------------------------

    def eval(self, node: ast.expr, frame: Frame, trail: Trail) -> Val:
        try:
            val = self._eval(node, frame, trail)
        except RecursionError:
            return Unknown("too deep")
        if isinstance(node, ast.Name | ast.Attribute) and self.reads is not None:
            known = self.prov.get(id(val))
            if known is not None and known[0] is val:
                for text in known[1]:
                    self.read(text)
        return val

    def eval_tracked(self, node: ast.expr, frame: Frame, trail: Trail) -> Val:
        """Evaluate, remembering which variables and defaults the value came from."""
        outer = self.reads
        self.reads = []
        try:
            val = self.eval(node, frame, trail)
            reads = self.reads
        finally:
            self.reads = outer
        if outer is not None:
            outer.extend(r for r in reads if r not in outer)
        if reads and isinstance(val, Const | Unknown):
            self.prov[id(val)] = (val, tuple(reads))
        return val

    def _eval(self, node: ast.expr, frame: Frame, trail: Trail) -> Val:
        if isinstance(node, ast.Constant):
            return Const(node.value)
        if isinstance(node, ast.Name):
            return self.lookup(node.id, frame, trail)
        if isinstance(node, ast.Attribute):
            base = self.eval(node.value, frame, trail)
            return self.getattr(base, node.attr, trail)
        if isinstance(node, ast.Call):
            return self.eval_call(node, frame, trail)
        if isinstance(node, ast.Await):
            return self.eval(node.value, frame, trail)
        if isinstance(node, ast.BoolOp):
            return self.eval_boolop(node, frame, trail)
        if isinstance(node, ast.UnaryOp):
            val = self.eval(node.operand, frame, trail)
            if isinstance(node.op, ast.Not):
                truth = self.truth(val)
                return Unknown(ast.unparse(node)) if truth is None else Const(not truth)
            if isinstance(val, Const):
                try:
                    if isinstance(node.op, ast.USub):
                        return Const(-val.value)  # type: ignore[operator]
                except TypeError:
                    pass
            return Unknown(ast.unparse(node))
        if isinstance(node, ast.Compare):
            return self.eval_compare(node, frame, trail)
        if isinstance(node, ast.IfExp):
            truth, sub = self.guard(node.test, frame, trail)
            if truth is True:
                return self.eval(node.body, frame, sub)
            if truth is False:
                return self.eval(node.orelse, frame, trail)
            self.eval(node.body, frame, sub)
            self.eval(node.orelse, frame, sub)
            return Unknown(ast.unparse(node))
        if isinstance(node, ast.BinOp):
            left = self.eval(node.left, frame, trail)
            right = self.eval(node.right, frame, trail)
            if isinstance(left, Const) and isinstance(right, Const):
                try:
                    if isinstance(node.op, ast.Add):
                        return Const(left.value + right.value)  # type: ignore[operator]
                    if isinstance(node.op, ast.Mod) and isinstance(left.value, str):
                        return Const(left.value % right.value)
                except (TypeError, ValueError):
                    pass
            return Unknown(ast.unparse(node))
        if isinstance(node, ast.JoinedStr):
            parts: list[str] = []
            for value in node.values:
                if isinstance(value, ast.Constant):
                    parts.append(str(value.value))
                elif isinstance(value, ast.FormattedValue):
                    val = self.eval(value.value, frame, trail)
                    if not isinstance(val, Const) or value.format_spec is not None:
                        return Unknown(ast.unparse(node))
                    parts.append(str(val.value))
            return Const("".join(parts))
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            items = [self.eval(e, frame, trail) for e in node.elts]
            if any(isinstance(e, ast.Starred) for e in node.elts):
                return Unknown(ast.unparse(node))
            if all(isinstance(i, Const) for i in items):
                values = tuple(i.value for i in items if isinstance(i, Const))
                return Const(frozenset(values) if isinstance(node, ast.Set) else values)
            return Items(tuple(items))
        if isinstance(node, ast.Dict):
            keys = [self.eval(k, frame, trail) if k is not None else Unknown() for k in node.keys]
            dvalues = [self.eval(v, frame, trail) for v in node.values]
            if all(isinstance(k, Const) for k in keys) and all(
                isinstance(v, Const) for v in dvalues
            ):
                return Const(
                    {
                        k.value: v.value
                        for k, v in zip(keys, dvalues, strict=True)
                        if isinstance(k, Const) and isinstance(v, Const)
                    }
                )
            return Unknown(ast.unparse(node))
        if isinstance(node, ast.Subscript):
            return self.eval_subscript(node, frame, trail)
        if isinstance(node, ast.Starred):
            self.eval(node.value, frame, trail)
            return Unknown(ast.unparse(node))
        if isinstance(node, ast.NamedExpr):
            val = self.eval(node.value, frame, trail)
            frame.locals[node.target.id] = val
            return val
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            for gen in node.generators:
                self.eval(gen.iter, frame, trail)
            return Unknown(ast.unparse(node))
        return Unknown(short(ast.unparse(node), 60))

    def lookup(self, name: str, frame: Frame, trail: Trail) -> Val:
        scope: Frame | None = frame
        while scope is not None:
            if name in scope.locals:
                return scope.locals[name]
            if scope.module_level:
                break
            scope = scope.parent
        if name == "__name__":
            return Const("__main__" if frame.main else frame.mod.name)
        return self.global_value(frame.mod, name, trail)

    def global_value(self, mod: Module, name: str, trail: Trail) -> Val:
        if name in mod.globals:
            return mod.globals[name]
        if name in mod.defs:
            node = mod.defs[name]
            if isinstance(node, ast.ClassDef):
                return ClassV(mod, node)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                return Func(mod, node)
        if name in mod.imports:
            return self.resolve_qual(mod.imports[name])
        if name in mod.assigns and name not in mod.evaluating:
            exprs = mod.assigns[name]
            mod.evaluating.add(name)
            try:
                frame = Frame(mod, mod.globals, module_level=True)
                quiet = Trail("", quiet=True)
                vals = [self.eval_tracked(e, frame, quiet) for e in exprs]
            finally:
                mod.evaluating.discard(name)
            if len(vals) == 1:
                return vals[0]
            return Unknown(f"{name} (assigned in several places)")
        for star in mod.stars:
            sub = self.load(star)
            if sub is not None and sub is not mod:
                val = self.global_value(sub, name, trail)
                if not (isinstance(val, Ext) and val.qual == f"builtins.{name}"):
                    return val
        if name == "TYPE_CHECKING":
            return Const(False)
        if hasattr(builtins, name):
            return Ext(f"builtins.{name}")
        return Unknown(name)

    def getattr(self, base: Val, attr: str, trail: Trail) -> Val:
        if isinstance(base, ModRef):
            mod = base.mod
            if (
                attr in mod.globals
                or attr in mod.defs
                or attr in mod.imports
                or attr in mod.assigns
            ):
                return self.global_value(mod, attr, trail)
            sub = self.load(f"{mod.name}.{attr}")
            if sub is not None:
                return ModRef(sub)
            return Unknown(f"{mod.name}.{attr}")
        if isinstance(base, Ext):
            qual = f"{base.qual}.{attr}" if base.qual else attr
            if qual == "typing.TYPE_CHECKING":
                return Const(False)
            if qual.startswith("django.conf.settings."):
                return self.django_setting(qual.rsplit(".", 1)[1], trail)
            return Ext(qual)
        if isinstance(base, Inst):
            if attr in base.attrs:
                return base.attrs[attr]
            if attr in base.kwargs:
                return base.kwargs[attr]
            return self.class_attr(base.cls, attr, base, trail)
        if isinstance(base, ClassV):
            return self.class_attr(base, attr, None, trail)
        if isinstance(base, AppObj):
            if attr in ("router", "app", "on_startup"):
                return base
            return Unknown(f"app.{attr}")
        if isinstance(base, Const) and isinstance(base.value, dict) and attr in ("get",):
            return Unknown("dict.get")
        return Unknown(attr)

    def django_setting(self, name: str, trail: Trail) -> Val:
        module = env_lookup(self.env, "DJANGO_SETTINGS_MODULE")
        if module.value:
            mod = self.load(module.value)
            if mod is not None and (name in mod.assigns or name in mod.imports):
                val = self.global_value(mod, name, trail)
                if isinstance(val, Const) and name in mod.assigns:
                    where = f"{mod.file}:{mod.line(mod.assigns[name][-1])}"
                    self.read(f"settings.{name} is {_fmt(val.value)} ({where})")
                return val
        return Unknown(f"settings.{name}")

    # ---- classes and settings ------------------------------------------------------------

    def mro(self, cls: ClassV, depth: int = 0) -> Iterator[ClassV]:
        yield cls
        if depth > 8:
            return
        frame = Frame(cls.mod, cls.mod.globals, module_level=True)
        for base in cls.node.bases:
            val = self.eval(base, frame, Trail("", quiet=True))
            if isinstance(val, ClassV):
                yield from self.mro(val, depth + 1)

    def base_names(self, cls: ClassV) -> list[str]:
        names: list[str] = []
        for klass in self.mro(cls):
            names.extend(ast.unparse(b) for b in klass.node.bases)
        return names

    def is_settings(self, cls: ClassV) -> bool:
        return any(n.endswith("BaseSettings") for n in self.base_names(cls))

    def is_dataclass(self, cls: ClassV) -> bool:
        return any(
            ast.unparse(d).split("(")[0].endswith("dataclass") for d in cls.node.decorator_list
        ) or any(n.endswith(("BaseModel", "AppConfig")) for n in self.base_names(cls))

    def class_attr(self, cls: ClassV, attr: str, inst: Inst | None, trail: Trail) -> Val:
        for klass in self.mro(cls):
            for st in klass.node.body:
                if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef) and st.name == attr:
                    func = Func(klass.mod, st, None, klass, inst)
                    decorators = {ast.unparse(d) for d in st.decorator_list}
                    if inst is not None and (
                        {"property", "cached_property"} & decorators
                        or any(
                            d.endswith(("cached_property", "computed_field")) for d in decorators
                        )
                    ):
                        return self.call(func, [], {}, trail)
                    if "staticmethod" in decorators:
                        return Func(klass.mod, st, None, klass, None)
                    return func
                value: ast.expr | None = None
                annotation: ast.expr | None = None
                found = False
                if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
                    if st.target.id == attr:
                        value, annotation, found = st.value, st.annotation, True
                elif isinstance(st, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == attr for t in st.targets
                ):
                    value, found = st.value, True
                if found:
                    return self.field_value(klass, cls, attr, value, annotation, st, trail)
        return Unknown(f"{cls.node.name}.{attr}")

    def field_value(
        self,
        klass: ClassV,
        cls: ClassV,
        attr: str,
        value: ast.expr | None,
        annotation: ast.expr | None,
        st: ast.stmt,
        trail: Trail,
    ) -> Val:
        frame = Frame(klass.mod, klass.mod.globals, module_level=True)
        quiet = Trail("", quiet=True)
        env_names = [attr]
        default: Val = Unknown(f"{cls.node.name}.{attr} (no default)")
        if value is not None:
            if isinstance(value, ast.Call) and ast.unparse(value.func).split(".")[-1] in (
                "Field",
                "field",
            ):
                default = Unknown(f"{cls.node.name}.{attr}")
                if value.args and not (
                    isinstance(value.args[0], ast.Constant) and value.args[0].value is Ellipsis
                ):
                    default = self.eval(value.args[0], frame, quiet)
                for kw in value.keywords:
                    if kw.arg == "default":
                        default = self.eval(kw.value, frame, quiet)
                    elif kw.arg in ("env", "alias", "validation_alias"):
                        alias = self.eval(kw.value, frame, quiet)
                        if isinstance(alias, Const) and isinstance(alias.value, str):
                            env_names = [alias.value]
            else:
                outer = self.reads
                self.reads = []
                default = self.eval(value, frame, quiet)
                inner, self.reads = self.reads, outer
                if outer is not None:
                    outer.extend(inner)
                    if inner:
                        return default
        where = f"{klass.mod.file}:{klass.mod.line(st)}"
        kind = ast.unparse(annotation) if annotation is not None else ""
        if self.is_settings(cls):
            prefix, case_sensitive, env_file = self.settings_config(cls)
            for name in env_names:
                full = prefix + name if name == attr else name
                val = env_lookup(self.env, full, case_insensitive=not case_sensitive)
                full = next(
                    (k for k in self.env if k.lower() == full.lower() and not case_sensitive),
                    full,
                )
                if val.value is None and not val.unknown and env_file:
                    val = env_file.get(full.lower(), val)
                if val.unknown:
                    self.read(f"{full} {val.source}")
                    return Unknown(full, nonempty=True)
                if val.value is not None:
                    parsed = _coerce(val.value, kind)
                    self.read(f"{cls.node.name}.{attr}={val.value!r} from {full} ({val.source})")
                    return parsed
        if isinstance(default, Const):
            self.read(f"{cls.node.name}.{attr} defaults to {_fmt(default.value)} ({where})")
        return default

    def settings_config(self, cls: ClassV) -> tuple[str, bool, dict[str, EnvVal]]:
        prefix = ""
        case_sensitive = False
        env_file: str | None = None
        quiet = Trail("", quiet=True)
        for klass in reversed(list(self.mro(cls))):
            frame = Frame(klass.mod, klass.mod.globals, module_level=True)
            for st in klass.node.body:
                items: list[tuple[str, ast.expr]] = []
                if (
                    isinstance(st, ast.Assign | ast.AnnAssign)
                    and (
                        (
                            isinstance(st, ast.AnnAssign)
                            and isinstance(st.target, ast.Name)
                            and st.target.id == "model_config"
                        )
                        or (
                            isinstance(st, ast.Assign)
                            and any(
                                isinstance(t, ast.Name) and t.id == "model_config"
                                for t in st.targets
                            )
                        )
                    )
                    and isinstance(st.value, ast.Call)
                ):
                    items = [(k.arg, k.value) for k in st.value.keywords if k.arg]
                elif isinstance(st, ast.ClassDef) and st.name == "Config":
                    for sub in st.body:
                        if isinstance(sub, ast.Assign):
                            for t in sub.targets:
                                if isinstance(t, ast.Name):
                                    items.append((t.id, sub.value))
                for key, expr in items:
                    val = self.eval(expr, frame, quiet)
                    if not isinstance(val, Const):
                        continue
                    if key == "env_prefix" and isinstance(val.value, str):
                        prefix = val.value
                    elif key == "case_sensitive":
                        case_sensitive = bool(val.value)
                    elif key == "env_file" and isinstance(val.value, str):
                        env_file = val.value
        values: dict[str, EnvVal] = {}
        if env_file:
            cwd = self.launch.repo_dir() or "."
            rel = posixpath.normpath(posixpath.join(cwd, env_file))
            if self.ctx.repo.is_file(rel):
                text = self.ctx.repo.read(rel) or ""
                for n, raw in enumerate(text.splitlines(), start=1):
                    line = raw.strip()
                    if not line or line.startswith("#") or "=" not in line:
                        continue
                    key, _, value = line.removeprefix("export ").partition("=")
                    values[key.strip().lower()] = EnvVal(value.strip().strip("'\""), f"{rel}:{n}")
        return prefix, case_sensitive, values

    # ---- calls ---------------------------------------------------------------------------

    def eval_call(self, node: ast.Call, frame: Frame, trail: Trail) -> Val:
        base: Val | None = None
        if isinstance(node.func, ast.Attribute):
            base = self.eval(node.func.value, frame, trail)
            fv = self.getattr(base, node.func.attr, trail)
        else:
            fv = self.eval(node.func, frame, trail)
        args: list[Val] = []
        for arg in node.args:
            args.append(self.eval(arg, frame, trail))
        kwargs: dict[str, Val] = {}
        for kw in node.keywords:
            val = self.eval(kw.value, frame, trail)
            if kw.arg is not None:
                kwargs[kw.arg] = val
        text = ast.unparse(node.func)
        qual = fv.qual if isinstance(fv, Ext) else None
        attr = node.func.attr if isinstance(node.func, ast.Attribute) else text

        self.register_hooks(node, attr, args, kwargs, frame, trail)
        if self.migration_call(node, qual, text, args, kwargs, frame, trail):
            return Unknown("migration")
        if qual is not None:
            special = self.external_call(node, qual, args, kwargs, frame, trail)
            if special is not None:
                return special
        if isinstance(base, Const) and isinstance(node.func, ast.Attribute):
            return _const_method(base.value, node.func.attr, args)
        if isinstance(base, AppObj) and attr == "run":
            self.started = True
            return Unknown("app.run()")
        if attr in _EXECUTORS or (qual or "").split(".")[-1] in _EXECUTORS:
            for cand in [*args, kwargs.get("target", Unknown()), kwargs.get("func", Unknown())]:
                if isinstance(cand, Func):
                    self.call(cand, [], {}, trail)
        if isinstance(fv, Func):
            return self.call(fv, args, kwargs, trail, call_node=node, frame=frame)
        if isinstance(fv, ClassV):
            return self.instantiate(fv, args, kwargs, trail, node, frame)
        if (isinstance(fv, Ext) and fv.qual.split(".")[-1] in _APP_CLASSES) or (
            isinstance(node.func, ast.Name) and node.func.id in _APP_CLASSES
        ):
            return AppObj(text)
        if isinstance(fv, AppObj):
            return fv
        return Unknown(short(ast.unparse(node), 60))

    def instantiate(
        self,
        cls: ClassV,
        args: list[Val],
        kwargs: dict[str, Val],
        trail: Trail,
        node: ast.Call,
        frame: Frame,
    ) -> Val:
        if any(n.split(".")[-1] in _APP_CLASSES for n in self.base_names(cls)):
            return AppObj(cls.node.name)
        inst = Inst(cls, dict(kwargs))
        for klass in self.mro(cls):
            init = next(
                (
                    st
                    for st in klass.node.body
                    if isinstance(st, ast.FunctionDef) and st.name == "__init__"
                ),
                None,
            )
            if init is not None:
                self.call(Func(klass.mod, init, None, klass, inst), args, kwargs, trail)
                break
        return inst

    def register_hooks(
        self,
        node: ast.Call,
        attr: str,
        args: list[Val],
        kwargs: dict[str, Val],
        frame: Frame,
        trail: Trail,
    ) -> None:
        if isinstance(kwargs.get("lifespan"), Func):
            lifespan = kwargs["lifespan"]
            assert isinstance(lifespan, Func)
            self.add_hook(lifespan, "lifespan", trail)
        for key in ("on_startup", "before_server_start"):
            val = kwargs.get(key)
            items = val.items if isinstance(val, Items) else ()
            for item in items:
                if isinstance(item, Func):
                    self.add_hook(item, "start-up hook", trail)
        if (
            attr == "add_event_handler"
            and len(args) >= 2
            and (
                isinstance(args[0], Const)
                and args[0].value == "startup"
                and isinstance(args[1], Func)
            )
        ):
            self.add_hook(args[1], "startup event handler", trail)
        if attr in _HOOK_ATTRS and args and isinstance(args[0], Func):
            self.add_hook(args[0], _HOOK_ATTRS[attr], trail)
        if attr == "append" and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if owner.endswith("on_startup") and args and isinstance(args[0], Func):
                self.add_hook(args[0], "start-up hook", trail)

    def emit(self, node: ast.AST, frame: Frame, what: str, trail: Trail) -> None:
        self.ctx.out.add(frame.mod.file, frame.mod.line(node), what, trail, trail.py_source)

    def migration_call(
        self,
        node: ast.Call,
        qual: str | None,
        text: str,
        args: list[Val],
        kwargs: dict[str, Val],
        frame: Frame,
        trail: Trail,
    ) -> bool:
        what = short(ast.unparse(node), 120)
        name = qual or text
        if name in ("alembic.command.upgrade", "alembic.command.downgrade") or (
            qual is None and text.endswith(("command.upgrade", "command.downgrade"))
        ):
            sql = kwargs.get("sql", args[2] if len(args) > 2 else Const(False))
            if self.truth(sql) is True:
                return False
            self.emit(node, frame, what, trail)
            return True
        if name in ("flask_migrate.upgrade", "flask_migrate.downgrade"):
            sql = kwargs.get("sql", args[2] if len(args) > 2 else Const(False))
            if self.truth(sql) is True:
                return False
            self.emit(node, frame, what, trail)
            return True
        if name == "django.core.management.call_command" or (
            qual is None and text.endswith("call_command")
        ):
            if not args or not isinstance(args[0], Const) or args[0].value != "migrate":
                return False
            words = [a.value for a in args[1:] if isinstance(a, Const)]
            if "--check" in words or "--plan" in words:
                return False
            if self.truth(kwargs.get("check", Const(False))) is True:
                return False
            if self.truth(kwargs.get("plan", Const(False))) is True:
                return False
            self.emit(node, frame, what, trail)
            return True
        if name == "alembic.config.main" or name.endswith("CommandLine.main"):
            argv = _argv(kwargs.get("argv", args[0] if args else Unknown()))
            if argv is not None and commands.migration(["alembic", *argv]):
                self.emit(node, frame, what, trail)
                return True
        return False

    def external_call(
        self,
        node: ast.Call,
        qual: str,
        args: list[Val],
        kwargs: dict[str, Val],
        frame: Frame,
        trail: Trail,
    ) -> Val | None:
        if qual in ("os.getenv", "os.environ.get", "os.environ.setdefault", "os.getenv.get"):
            if not args or not isinstance(args[0], Const) or not isinstance(args[0].value, str):
                return Unknown(ast.unparse(node))
            default = args[1] if len(args) > 1 else kwargs.get("default", Const(None))
            return self.env_read(
                args[0].value, default, node, frame, setdefault=qual.endswith("setdefault")
            )
        if qual.endswith("strtobool") and args:
            val = args[0]
            if isinstance(val, Const) and isinstance(val.value, str):
                word = val.value.strip().lower()
                if word in _TRUE_WORDS:
                    return Const(1)
                if word in _FALSE_WORDS - {""}:
                    return Const(0)
            return Unknown("strtobool")
        if (
            qual.endswith("decouple.config")
            and args
            and isinstance(args[0], Const)
            and isinstance(args[0].value, str)
        ):
            val = self.env_read(args[0].value, kwargs.get("default", Const(None)), node, frame)
            cast = ast.unparse(
                next((k.value for k in node.keywords if k.arg == "cast"), ast.Constant(None))
            )
            if cast == "bool" and isinstance(val, Const) and isinstance(val.value, str):
                return _coerce(val.value, "bool")
            return val
        if qual.startswith("builtins."):
            return _builtin(qual.removeprefix("builtins."), args)
        if qual in _SERVER_RUNS:
            self.started = True
            if args and isinstance(args[0], Const) and isinstance(args[0].value, str):
                target = args[0].value
                if ":" in target:
                    factory = self.truth(kwargs.get("factory", Const(False))) is True
                    self.boot_target(target, factory, trail, "app")
            return Unknown("server")
        if qual in _DJANGO_BOOT:
            self.django = True
            if qual.endswith("execute_from_command_line"):
                argv = _argv(args[0]) if args else None
                if argv and len(argv) > 1 and argv[1] not in _DJANGO_BUILTIN:
                    self.management_command(argv[1], trail)
            return Unknown(qual)
        if qual in ("sys.exit", "builtins.exit", "os._exit", "builtins.quit"):
            return Ext("<exit>")
        if qual in _SUBPROCESS_ARGV or qual in _SUBPROCESS_SHELL or qual.startswith("os.exec"):
            self.subprocess(node, qual, args, kwargs, frame, trail)
            return Unknown("subprocess")
        if qual == "asyncio.create_subprocess_exec":
            argv = _argv(Items(tuple(args)))
            if argv:
                self.run_shell_argv(argv, node, frame, trail)
            return Unknown("subprocess")
        if qual == "shlex.split" and args and isinstance(args[0], Const):
            try:
                return Const(tuple(shlex.split(str(args[0].value))))
            except ValueError:
                return Unknown("shlex.split")
        return None

    def env_read(
        self, name: str, default: Val, node: ast.AST, frame: Frame, *, setdefault: bool = False
    ) -> Val:
        val = env_lookup(self.env, name)
        where = f"{frame.mod.file}:{frame.mod.line(node)}"
        if val.unknown:
            self.read(f"{name} {val.source}")
            return Unknown(name, nonempty=True)
        if val.value is not None:
            self.read(f"{name}={val.value!r} ({val.source})")
            return Const(val.value)
        if setdefault and isinstance(default, Const) and isinstance(default.value, str):
            self.env[name] = EnvVal(default.value, f"os.environ.setdefault at {where}")
        if isinstance(default, Const):
            if default.value is None:
                self.read(f"{name} is unset ({where})")
            else:
                self.read(f"{name} defaults to {_fmt(default.value)} ({where})")
        return default

    def read(self, text: str) -> None:
        if self.reads is not None and text not in self.reads:
            self.reads.append(text)

    def subprocess(
        self,
        node: ast.Call,
        qual: str,
        args: list[Val],
        kwargs: dict[str, Val],
        frame: Frame,
        trail: Trail,
    ) -> None:
        if qual.startswith("os.exec"):
            if qual.startswith(("os.execv", "os.execve")) or qual in ("os.execvp", "os.execvpe"):
                argv = _argv(args[1]) if len(args) > 1 else None
            else:
                argv = _argv(Items(tuple(args[1:])))
            if argv:
                self.run_shell_argv(argv, node, frame, trail)
            return
        first = kwargs.get("args", args[0] if args else Unknown())
        shell = qual in _SUBPROCESS_SHELL or self.truth(kwargs.get("shell", Const(False))) is True
        if shell:
            if isinstance(first, Const) and isinstance(first.value, str):
                self.run_shell_text(first.value, node, frame, trail)
            elif (argv := _argv(first)) is not None:
                self.run_shell_text(" ".join(argv), node, frame, trail)
            return
        if isinstance(first, Const) and isinstance(first.value, str):
            self.run_shell_argv([first.value], node, frame, trail)
            return
        argv = _argv(first)
        if argv:
            self.run_shell_argv(argv, node, frame, trail)

    def shell_state(self) -> State:
        return State(self.launch.view, self.launch.cwd, dict(self.env), set(self.env), [])

    def run_shell_argv(self, argv: list[str], node: ast.AST, frame: Frame, trail: Trail) -> None:
        if trail.quiet:
            return
        loc = Loc(frame.mod.file, trail.py_source, frame.mod.line(node), True)
        exps = [Exp(w, w != "<?>") for w in argv]
        Interp(self.ctx).run_argv(exps, loc, self.shell_state(), trail)

    def run_shell_text(self, text: str, node: ast.AST, frame: Frame, trail: Trail) -> None:
        if trail.quiet:
            return
        loc = Loc(frame.mod.file, trail.py_source, frame.mod.line(node), True)
        Interp(self.ctx).run_text(text, loc, self.shell_state(), trail)

    def call(
        self,
        func: Func,
        args: list[Val],
        kwargs: dict[str, Val],
        trail: Trail,
        *,
        step: str | None = None,
        call_node: ast.Call | None = None,
        frame: Frame | None = None,
    ) -> Val:
        node = func.node
        if node in self.stack or len(self.stack) >= MAX_CALL_DEPTH:
            return Unknown(f"{node.name}()")
        if self.ctx.out.calls >= MAX_CALLS:
            return Unknown(f"{node.name}()")
        key = (id(node), _args_key(func, args, kwargs), trail.quiet)
        if key in self.memo:
            return self.memo[key]
        self.ctx.out.calls += 1
        locals_ = self.bind_params(func, args, kwargs)
        callee = Frame(func.mod, locals_, parent=func.closure)
        label = step or f"{func.mod.file}:{func.mod.line(node)} {node.name}()"
        self.stack.append(node)
        try:
            flow = self.exec_block(node.body, callee, trail.step(label))
        finally:
            self.stack.pop()
        returns = list(callee.returns)
        if flow != EXIT or not returns:
            returns.append(Const(None))
        result = _merge(returns)
        self.memo[key] = result
        return result

    def bind_params(self, func: Func, args: list[Val], kwargs: dict[str, Val]) -> dict[str, Val]:
        spec = func.node.args
        params = [*spec.posonlyargs, *spec.args]
        values = list(args)
        if func.bound is not None or (
            func.owner is not None and params and params[0].arg in ("self", "cls")
        ):
            values = [func.bound if func.bound is not None else Unknown("self"), *values]
        bound: dict[str, Val] = {}
        defaults = spec.defaults
        first_default = len(params) - len(defaults)
        mod_frame = Frame(func.mod, func.mod.globals, module_level=True)
        quiet = Trail("", quiet=True)
        for i, param in enumerate(params):
            if i < len(values):
                bound[param.arg] = values[i]
            elif param.arg in kwargs:
                bound[param.arg] = kwargs[param.arg]
            elif i >= first_default:
                bound[param.arg] = self.eval(defaults[i - first_default], mod_frame, quiet)
            else:
                bound[param.arg] = Unknown(param.arg)
        for param, default in zip(spec.kwonlyargs, spec.kw_defaults, strict=True):
            if param.arg in kwargs:
                bound[param.arg] = kwargs[param.arg]
            elif default is not None:
                bound[param.arg] = self.eval(default, mod_frame, quiet)
            else:
                bound[param.arg] = Unknown(param.arg)
        if spec.vararg is not None:
            bound[spec.vararg.arg] = Items(tuple(values[len(params) :]))
        if spec.kwarg is not None:
            bound[spec.kwarg.arg] = Unknown(spec.kwarg.arg)
        return bound

    # ---- small evaluations ---------------------------------------------------------------

    def eval_boolop(self, node: ast.BoolOp, frame: Frame, trail: Trail) -> Val:
        is_and = isinstance(node.op, ast.And)
        result: Val = Const(is_and)
        unknown = False
        for value in node.values:
            sub = trail
            if unknown:
                where = f"{frame.mod.file}:{frame.mod.line(node)}"
                sub = trail.note(
                    f"condition `{short(ast.unparse(node), 90)}` ({where}) could not be "
                    "evaluated; assumed it may run"
                )
            result = self.eval(value, frame, sub)
            truth = self.truth(result)
            if truth is None:
                unknown = True
                continue
            if truth is not is_and:
                return result if not unknown else Unknown(ast.unparse(node))
        return Unknown(ast.unparse(node)) if unknown else result

    def eval_compare(self, node: ast.Compare, frame: Frame, trail: Trail) -> Val:
        left = self.eval(node.left, frame, trail)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comp, frame, trail)
            if (
                isinstance(right, Ext)
                and right.qual == "os.environ"
                and isinstance(op, ast.In | ast.NotIn)
                and isinstance(left, Const)
                and isinstance(left.value, str)
            ):
                val = env_lookup(self.env, left.value)
                where = f"{frame.mod.file}:{frame.mod.line(node)}"
                if val.unknown or val.value is not None:
                    self.read(f"{left.value} is set ({val.source})")
                else:
                    self.read(f"{left.value} is unset ({where})")
                present = val.unknown or val.value is not None
                if present != isinstance(op, ast.In):
                    return Const(False)
                left = right
                continue
            outcome = _compare(left, op, right)
            if outcome is None:
                return Unknown(ast.unparse(node))
            if not outcome:
                return Const(False)
            left = right
        return Const(True)

    def eval_subscript(self, node: ast.Subscript, frame: Frame, trail: Trail) -> Val:
        base = self.eval(node.value, frame, trail)
        index = self.eval(node.slice, frame, trail)
        if isinstance(base, Ext) and base.qual == "os.environ":
            if isinstance(index, Const) and isinstance(index.value, str):
                return self.env_read(index.value, Const(None), node, frame)
            return Unknown(ast.unparse(node))
        if isinstance(base, Const) and isinstance(index, Const):
            try:
                return Const(base.value[index.value])  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                return Unknown(ast.unparse(node))
        if isinstance(base, Items) and isinstance(index, Const) and isinstance(index.value, int):
            try:
                return base.items[index.value]
            except IndexError:
                return Unknown(ast.unparse(node))
        return Unknown(ast.unparse(node))

    def truth(self, val: Val) -> Tri:
        if isinstance(val, Const):
            try:
                return bool(val.value)
            except Exception:  # an object whose truth we do not know
                return None
        if isinstance(val, Unknown):
            return True if val.nonempty else None
        if isinstance(val, Items):
            return bool(val.items)
        if isinstance(val, Ext):
            return True if val.qual.startswith("builtins.") else None
        return True


# --------------------------------------------------------------------------------------------
# helpers


def _ends(body: Sequence[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise)


def _merge(values: list[Val]) -> Val:
    first = values[0]
    if all(v is first for v in values):
        return first
    if all(isinstance(v, Const) for v in values):
        consts = [v.value for v in values if isinstance(v, Const)]
        try:
            if all(c == consts[0] and type(c) is type(consts[0]) for c in consts):
                return first
        except Exception:  # comparing arbitrary constants
            return Unknown("one of several values")
    return Unknown("one of several values")


def _args_key(func: Func, args: list[Val], kwargs: dict[str, Val]) -> str:
    def one(v: Val) -> str:
        if isinstance(v, Const):
            return f"c:{v.value!r}"
        return f"{type(v).__name__}:{id(v)}"

    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in sorted(kwargs.items())]
    bound = one(func.bound) if func.bound is not None else ""
    closure = str(id(func.closure)) if func.closure is not None else ""
    return "|".join([bound, closure, *parts])


def _argv(val: Val) -> list[str] | None:
    if isinstance(val, Const) and isinstance(val.value, tuple | list):
        return [str(v) for v in val.value]
    if isinstance(val, Items):
        out: list[str] = []
        for item in val.items:
            if isinstance(item, Const) and isinstance(item.value, str | int):
                out.append(str(item.value))
            elif isinstance(item, Items):
                return None
            else:
                out.append("<?>")
        return out
    return None


def _coerce(raw: str, kind: str) -> Val:
    if kind in ("bool", "Optional[bool]", "bool | None"):
        word = raw.strip().lower()
        if word in _TRUE_WORDS:
            return Const(True)
        if word in _FALSE_WORDS:
            return Const(False)
        return Unknown(raw)
    if kind in ("int", "Optional[int]", "int | None"):
        try:
            return Const(int(raw))
        except ValueError:
            return Unknown(raw)
    return Const(raw)


def _const_method(value: object, name: str, args: list[Val]) -> Val:
    if isinstance(value, dict) and name == "get" and args and isinstance(args[0], Const):
        key = args[0].value
        if key in value:
            return Const(value[key])
        return args[1] if len(args) > 1 else Const(None)
    if not isinstance(value, str) or name not in _STR_METHODS:
        return Unknown(f"{name}()")
    consts: list[object] = []
    for arg in args:
        if not isinstance(arg, Const):
            return Unknown(f"{name}()")
        consts.append(arg.value)
    try:
        return Const(getattr(value, name)(*consts))
    except (TypeError, ValueError):
        return Unknown(f"{name}()")


def _builtin(name: str, args: list[Val]) -> Val:
    if not args:
        empty: dict[str, object] = {"bool": False, "int": 0, "str": ""}
        return Const(empty[name]) if name in empty else Unknown(f"{name}()")
    arg = args[0]
    if isinstance(arg, Unknown) and arg.nonempty and name == "bool":
        return Const(True)
    if not isinstance(arg, Const):
        return Unknown(f"{name}()")
    try:
        if name == "bool":
            return Const(bool(arg.value))
        if name == "int":
            return Const(int(arg.value))  # type: ignore[call-overload]
        if name == "str":
            return Const(str(arg.value))
        if name == "float":
            return Const(float(arg.value))  # type: ignore[arg-type]
        if name == "len":
            return Const(len(arg.value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return Unknown(f"{name}()")
    return Unknown(f"{name}()")


def _compare(left: Val, op: ast.cmpop, right: Val) -> Tri:
    if isinstance(op, ast.Is | ast.IsNot):
        if isinstance(right, Const) and right.value is None:
            if isinstance(left, Const):
                same = left.value is None
            elif (isinstance(left, Unknown) and left.nonempty) or isinstance(
                left, Func | ClassV | ModRef | Inst | AppObj
            ):
                same = False
            else:
                return None
            return same if isinstance(op, ast.Is) else not same
        return None
    if isinstance(left, Unknown) and left.nonempty and isinstance(right, Const):
        if isinstance(op, ast.Eq) and right.value in (None, ""):
            return False
        if isinstance(op, ast.NotEq) and right.value in (None, ""):
            return True
        return None
    if not (isinstance(left, Const) and isinstance(right, Const)):
        if (
            isinstance(op, ast.In | ast.NotIn)
            and isinstance(left, Const)
            and isinstance(right, Items)
        ) and all(isinstance(i, Const) for i in right.items):
            return None
        return None
    a, b = left.value, right.value
    try:
        if isinstance(op, ast.Eq):
            return bool(a == b)
        if isinstance(op, ast.NotEq):
            return bool(a != b)
        if isinstance(op, ast.In):
            return a in b  # type: ignore[operator]
        if isinstance(op, ast.NotIn):
            return a not in b  # type: ignore[operator]
        if isinstance(op, ast.Lt):
            return bool(a < b)  # type: ignore[operator]
        if isinstance(op, ast.LtE):
            return bool(a <= b)  # type: ignore[operator]
        if isinstance(op, ast.Gt):
            return bool(a > b)  # type: ignore[operator]
        if isinstance(op, ast.GtE):
            return bool(a >= b)  # type: ignore[operator]
    except TypeError:
        return None
    return None
