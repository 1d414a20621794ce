"""Command line: parse arguments, call a function in gonogo.commands, render its Result.

Only argparse and the standard library are imported at module level so `gonogo --help`
and `--version` stay fast; each command's module is imported when it runs.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from gonogo import __version__

if TYPE_CHECKING:
    from gonogo.context import Context
    from gonogo.result import Result

Handler = Callable[["Context", argparse.Namespace], "Result"]


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; here 2 means NO-GO, so usage errors exit 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def _common(json_opt: bool = True) -> _Parser:
    parent = _Parser(add_help=False)
    parent.add_argument(
        "-C",
        "--dir",
        dest="directory",
        type=Path,
        default=None,
        help="project folder (default: search upward from the current one)",
    )
    if json_opt:
        parent.add_argument(
            "--json", action="store_true", help="print one JSON document on stdout and nothing else"
        )
    return parent


def _mutating() -> _Parser:
    parent = _Parser(add_help=False)
    parent.add_argument(
        "--dry-run", action="store_true", help="print the plan and gate verdicts; change nothing"
    )
    parent.add_argument(
        "--override",
        metavar="GATE",
        action="append",
        default=[],
        help="pass this NO-GO gate (repeatable; needs --reason; prod-guard cannot be passed)",
    )
    parent.add_argument("--reason", help="why the override is needed (recorded in the ledger)")
    parent.add_argument(
        "--confirm",
        metavar="APP",
        help="typed confirmation for a protected environment (its app name)",
    )
    return parent


class _Api:
    """The handler for `gonogo.commands.<module>.<function>`: the command's plain Python
    function is the API, and the parsed options go to the parameters of the same name
    (`renamed` maps a parameter to another option: ref="sha" feeds `--sha` to `ref`).

    The module is imported when the command runs, so `--help` stays fast.
    """

    def __init__(self, target: str, **renamed: str) -> None:
        self.target = target
        self.renamed = renamed

    def bind(self, a: argparse.Namespace) -> tuple[Callable[..., Result], dict[str, Any]]:
        import importlib
        import inspect

        module, _, name = self.target.partition(":")
        func: Callable[..., Result] = getattr(
            importlib.import_module(f"gonogo.commands.{module}"), name
        )
        kwargs: dict[str, Any] = {}
        for param in list(inspect.signature(func).parameters.values())[1:]:
            option = self.renamed.get(param.name, param.name)
            if hasattr(a, option):
                kwargs[param.name] = getattr(a, option)
            elif param.default is inspect.Parameter.empty:
                raise TypeError(f"{self.target}: no command-line option feeds {param.name!r}")
        return func, kwargs

    def __call__(self, ctx: Context, a: argparse.Namespace) -> Result:
        func, kwargs = self.bind(a)
        return func(ctx, **kwargs)


class _CertifyApi(_Api):
    """`certify ENV` and `certify --verify FILE` share a parser; these options belong to
    only one of them."""

    def __call__(self, ctx: Context, a: argparse.Namespace) -> Result:
        from gonogo.errors import GonogoError

        if a.env is None:
            raise GonogoError("certify needs ENV (or --verify FILE)")
        if a.public_key is not None:
            raise GonogoError("--public-key goes with --verify FILE")
        return super().__call__(ctx, a)


def build_parser() -> _Parser:
    parser = _Parser(
        prog="gonogo",
        description="Release playbook as enforced, recorded GO/NO-GO gates.",
        epilog="exit codes: 0 GO/done, 1 usage or config error, 2 NO-GO (nothing changed), "
        "3 failed after changes began, 4 internal error, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"gonogo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common, mutating = _common(), _mutating()

    p = sub.add_parser(
        "deploy",
        parents=[common, mutating],
        help="release a commit to an environment and verify it",
    )
    p.add_argument("env")
    p.add_argument("--sha", help="commit to release (default: HEAD)")
    p.set_defaults(handler=_Api("deploy:deploy", ref="sha"))

    p = sub.add_parser(
        "ship",
        parents=[common, mutating],
        help="test → build → deploy → verify HEAD as one run with one evidence folder",
    )
    p.add_argument("env")
    p.set_defaults(handler=_Api("ship:ship"))

    p = sub.add_parser(
        "check",
        parents=[common],
        help="GO or NO-GO: every gate guarding ENV, as a checklist (changes nothing)",
        description="Without a gonogo.toml, `check --gate migrations-explicit [PATH]` runs the "
        "implicit-migration detector on PATH.",
    )
    p.add_argument(
        "env",
        nargs="?",
        help="environment (or, with --gate migrations-explicit "
        "and no gonogo.toml, a folder to scan)",
    )
    p.add_argument("--sha", help="commit to check (default: HEAD)")
    p.add_argument(
        "--gate", metavar="ID", action="append", default=[], help="run only this gate (repeatable)"
    )
    p.set_defaults(handler=_Api("check:check", ref="sha", gates="gate"))

    p = sub.add_parser("verify", parents=[common], help="run the post-deploy probes")
    p.add_argument("env")
    p.set_defaults(handler=_Api("verify:verify"))

    p = sub.add_parser(
        "rollback",
        parents=[common, mutating],
        help="put an earlier release and/or database revision back, and verify",
    )
    p.add_argument("env")
    p.add_argument(
        "--to", metavar="vN", help="release to put back (default: the previous verified one)"
    )
    p.add_argument(
        "--db",
        metavar="REVISION",
        help="downgrade the database to REVISION (or base) first; alone, only the database",
    )
    p.add_argument(
        "--accept-data-loss",
        action="store_true",
        help="allow undoing lossy or irreversible revisions (needs --reason; recorded)",
    )
    p.set_defaults(handler=_Api("rollback:rollback"))

    p = sub.add_parser("migrate", parents=[common], help="explicit database migrations")
    msub = p.add_subparsers(dest="migrate_command", metavar="ACTION", required=True)
    # `gonogo migrate ENV apply` reads naturally; argparse wants the action first, so the
    # environment is taken as the action's first positional and swapped in main().
    pa = msub.add_parser(
        "apply", parents=[common, mutating], help="alembic upgrade head against ENV's database"
    )
    pa.add_argument("env")
    pa.set_defaults(handler=_Api("migrate:apply"))
    pp = msub.add_parser(
        "approve", parents=[common], help="approve exactly the SQL `apply` would run now"
    )
    pp.add_argument("env")
    pp.add_argument("--by", help="who approves (default: git user / GONOGO_ACTOR)")
    pp.add_argument("--note", default="", help="why, ticket, reviewer notes")
    pp.set_defaults(handler=_Api("migrate:approve"))
    ps = msub.add_parser(
        "status", parents=[common], help="database revision, heads, pending revisions"
    )
    ps.add_argument("env")
    ps.set_defaults(handler=_Api("migrate:status"))
    pl = msub.add_parser(
        "plan", parents=[common], help="pending revisions: SQL, operations, rollback class"
    )
    pl.add_argument("env")
    pl.set_defaults(handler=_Api("migrate:plan"))
    pr = msub.add_parser(
        "rehearse",
        parents=[common],
        help="apply, undo, re-apply each pending revision on a throwaway copy",
    )
    pr.add_argument("env")
    pr.set_defaults(handler=_Api("migrate:rehearse"))
    pc = msub.add_parser(
        "classify",
        parents=[common],
        help="every revision's rollback class (reversible, lossy, irreversible); "
        "works without a gonogo.toml",
    )
    pc.add_argument(
        "--alembic-ini",
        type=Path,
        default=None,
        help="alembic.ini (default: [migrations].config, else ./alembic.ini)",
    )
    pc.add_argument("--dialect", default="sqlite", help="SQL dialect to render (default sqlite)")
    pc.set_defaults(handler=None, classify=True)
    pn = msub.add_parser(
        "lint",
        parents=[common],
        help="squawk (PostgreSQL) and gonogo's own checks on each pending revision; "
        "without ENV, every revision of an alembic project",
    )
    pn.add_argument("env", nargs="?")
    pn.add_argument("--alembic-ini", type=Path, default=None, help="alembic.ini (without ENV)")
    pn.add_argument("--dialect", default="sqlite", help="SQL dialect without ENV (default sqlite)")
    pn.add_argument("--pg-version", default=None, help="PostgreSQL version squawk assumes")
    pn.set_defaults(handler=_Api("migrate:lint"), lint=True)

    p = sub.add_parser("status", parents=[common], help="live release, process and health")
    p.add_argument("env", nargs="?")
    p.set_defaults(handler=_Api("status:status"))

    p = sub.add_parser(
        "releases",
        parents=[common],
        help="the releases gonogo made, and the platform's own (Heroku's) mapped onto them",
    )
    p.add_argument("env")
    p.add_argument("--limit", type=int, default=20, help="at most this many of each")
    p.set_defaults(handler=_Api("releases:releases"))

    p = sub.add_parser("down", parents=[common], help="stop an environment's running release")
    p.add_argument("env")
    p.set_defaults(handler=_Api("down:down"))

    p = sub.add_parser("unlock", parents=[common], help="clear an environment lock")
    p.add_argument("env")
    p.add_argument("--reason", required=True, help="why (recorded in the ledger)")
    p.add_argument("--force", action="store_true", help="clear it even if the holder looks alive")
    p.set_defaults(handler=_Api("unlock:unlock"))

    p = sub.add_parser(
        "history",
        parents=[common],
        help="releases, migrations, approvals, overrides, rollbacks and runs, newest first",
    )
    p.add_argument("env", nargs="?", help="one environment (default: all)")
    p.add_argument("--limit", type=int, default=50, help="at most this many entries and runs")
    p.add_argument("--since", help="a date, a time, or a duration back from now (24h, 7d)")
    p.add_argument("--sha", help="only runs of commits starting with this")
    p.add_argument("--work-order", help="only runs whose commit names this work order")
    p.set_defaults(handler=_Api("history:history"))

    p = sub.add_parser(
        "build",
        parents=[common],
        help="build the Dockerfile at a commit into an OCI image artifact and check it",
        description="Builds with Docker when its engine answers, else buildah; the result is "
        "recorded against the SHA and reused while its inputs are unchanged. For a protected "
        "ENV a failing structure check is NO-GO (exit 2).",
    )
    p.add_argument("env", nargs="?", help="environment whose build args apply")
    p.add_argument("--sha", help="commit to build (default: HEAD)")
    p.add_argument(
        "--builder", choices=("docker", "buildah"), help="use this builder (default: detect)"
    )
    p.add_argument(
        "--platform",
        metavar="OS/ARCH",
        action="append",
        default=[],
        help="build for this platform (repeatable; default: [publish].platforms)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="show the builder and plan; build nothing"
    )
    p.set_defaults(handler=_Api("build:build", ref="sha", platforms="platform"))

    p = sub.add_parser(
        "publish",
        parents=[common, mutating],
        help="push the commit's image to [publish].repository with its tags",
        description="Tags come from [publish].tags; `latest` moves only when "
        "[publish].latest_requires holds. ENV (default: the protected environment) picks the "
        "image and the gates.",
    )
    p.add_argument("env", nargs="?", help="environment whose image and gates apply")
    p.add_argument("--sha", help="commit to publish (default: HEAD)")
    p.add_argument(
        "--tag",
        metavar="TEMPLATE",
        action="append",
        default=[],
        help="publish these tags instead of [publish].tags (repeatable; fields allowed)",
    )
    p.add_argument(
        "--builder",
        choices=("docker", "buildah"),
        help="builder if the image must be built (default: detect)",
    )
    p.set_defaults(handler=_Api("publish:publish", ref="sha", tags="tag"))

    p = sub.add_parser(
        "certify",
        parents=[common],
        help="certify the live release (migration idempotence, probes, SHA, log scan) "
        "and write its attestation; --verify checks one",
        description="Writes [certify].output (default .release/<app>_certified), an in-toto "
        "Statement; a DSSE envelope signed with Ed25519 when GONOGO_SIGNING_KEY is set. "
        "Exit 2 when a check fails: then nothing is written.",
    )
    p.add_argument("env", nargs="?", help="environment (with --verify: the one it must name)")
    p.add_argument(
        "--output",
        metavar="PATH",
        help="write the certificate here ({app}, {env}, {project} allowed)",
    )
    p.add_argument(
        "--verify",
        metavar="FILE",
        type=Path,
        default=None,
        dest="verify_file",
        help="check a certificate against its signature and the ledger (0 valid, 2 invalid)",
    )
    p.add_argument(
        "--public-key",
        metavar="K",
        default=None,
        help="with --verify: Ed25519 public key (file or value; default: from GONOGO_SIGNING_KEY)",
    )
    p.set_defaults(handler=_CertifyApi("certify:certify"))

    p = sub.add_parser(
        "audit", parents=[common], help="prove the ledger is whole, or export its events"
    )
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    pa = asub.add_parser(
        "verify",
        parents=[common],
        help="recompute the hash chain and check every row against its events",
        description="Exit 0 when the ledger is intact, 2 naming the first event that was "
        "altered, removed, inserted or reordered (or the first row that disagrees).",
    )
    pa.set_defaults(handler=_Api("audit:verify"))
    pa = asub.add_parser(
        "export",
        parents=[common],
        help="every ledger event, one per line (jsonl) or as CSV",
        description="Without --output the events go to stdout and nothing else does.",
    )
    pa.add_argument("--format", choices=("jsonl", "csv"), required=True)
    pa.add_argument("--output", type=Path, default=None, help="write to this file (atomically)")
    pa.set_defaults(handler=_Api("audit:export", fmt="format"))

    p = sub.add_parser("config", parents=[common], help="configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    pv = csub.add_parser("validate", parents=[common], help="check gonogo.toml")
    pv.set_defaults(handler=_Api("config_cmd:validate"))

    p = sub.add_parser(
        "demo", parents=[common], help="the playbook end to end on the bundled example app"
    )
    p.add_argument("--keep", action="store_true", help="leave the demo's apps running")
    p.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="folder for the demo repository (default: a new temporary folder)",
    )
    p.set_defaults(handler=None, demo=True)
    return parser


def _normalise(argv: list[str]) -> list[str]:
    """Accept `migrate ENV apply` (the playbook's word order) as well as `migrate apply ENV`."""
    actions = {"apply", "approve", "status", "plan", "rehearse", "lint"}
    if len(argv) >= 3 and argv[0] == "migrate" and argv[2] in actions and argv[1] not in actions:
        return [argv[0], argv[2], argv[1], *argv[3:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    args_list = _normalise(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 1
    from gonogo.output import Output

    out = Output(json_mode=getattr(args, "json", False))
    try:
        return run(args, out)
    except BrokenPipeError:
        # The reader (`| head`) went away; stop writing, quietly, like other CLI tools.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def entry() -> None:
    """The console script and `python -m gonogo`."""
    code = main()
    if code == 130:
        # After a Ctrl-C/SIGTERM that gonogo handled (run recorded, lock released), CPython
        # can still re-raise SIGINT on itself at exit, turning the documented exit 130 into
        # "killed by signal". Everything is written and flushed here, so leave directly.
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def run(args: argparse.Namespace, out: Any) -> int:
    from gonogo.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, GonogoError

    ctx = None
    try:
        if getattr(args, "demo", False):
            from gonogo.commands.demo import demo

            result = demo(out, workspace=args.workspace, keep=args.keep)
        elif getattr(args, "classify", False):
            from gonogo.commands.migrate import classify

            result = classify(out, args.alembic_ini, directory=args.directory, dialect=args.dialect)
        elif getattr(args, "lint", False) and args.env is None:
            from gonogo.commands.migrate import lint_alembic

            result = lint_alembic(
                out,
                args.alembic_ini,
                directory=args.directory,
                dialect=args.dialect,
                pg_version=args.pg_version,
            )
        elif getattr(args, "verify_file", None) is not None:
            from gonogo.commands.certify import verify_certificate

            if args.output is not None:
                raise GonogoError("--output does not go with --verify")
            result = verify_certificate(
                out,
                args.verify_file,
                public_key=args.public_key,
                directory=args.directory,
                env=args.env,
            )
        elif standalone_detector(args):
            from gonogo.commands.check import check_detector

            result = check_detector(out, Path(args.env or "."))
        else:
            from gonogo.context import Context

            ctx = Context.load(args.directory, out=out)
            result = args.handler(ctx, args)
    except GonogoError as exc:
        _report_error(out, exc.message, exc.exit_code, exc.details)
        return exc.exit_code
    except KeyboardInterrupt:
        _report_error(
            out,
            "interrupted; the run is recorded as interrupted and its lock released",
            EXIT_INTERRUPTED,
            {},
        )
        return EXIT_INTERRUPTED
    except Exception as exc:
        path = _crash_report(exc)
        _report_error(
            out,
            f"internal error: {type(exc).__name__}: {exc} (crash report: {path})",
            EXIT_INTERNAL,
            {"crash_report": str(path)},
        )
        return EXIT_INTERNAL
    finally:
        if ctx is not None:
            ctx.close()
    if out.json_mode:
        out.document(result.document())
    elif result.message:
        out.line(result.message)
    return int(result.exit_code)


def standalone_detector(args: argparse.Namespace) -> bool:
    """`check --gate migrations-explicit [PATH]` where there is no gonogo.toml to load."""
    if getattr(args, "command", None) != "check" or args.gate != ["migrations-explicit"]:
        return False
    from gonogo.config import find_config
    from gonogo.errors import ConfigError

    start = args.directory or (Path(args.env) if args.env and Path(args.env).is_dir() else None)
    try:
        find_config((start or Path.cwd()).resolve())
    except ConfigError:
        return True
    return args.env is not None and Path(args.env).is_dir() and args.directory is None


def _report_error(out: Any, message: str, code: int, details: dict[str, Any]) -> None:
    if out.json_mode:
        out.document({"error": message, "exit_code": code, **details})
    else:
        prefix = "NO-GO" if code == 2 and not message.startswith("NO-GO") else ""
        out.error(f"gonogo: {prefix + ': ' if prefix else ''}{message}")


def _crash_report(exc: BaseException) -> Path:
    import tempfile

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(tempfile.gettempdir()) / f"gonogo-crash-{stamp}.txt"
    path.write_text(
        f"gonogo {__version__}\nargv: {sys.argv}\n\n" + "".join(traceback.format_exception(exc))
    )
    return path


if __name__ == "__main__":
    sys.exit(main())
