"""Measure the ledger (issue 8): appending events, and `gonogo audit verify` over 1M events.

Usage: python benchmarks/ledger_speed.py [--append N] [--verify N]
           [--backend sqlite|postgresql|both] [--batch N] [--runs N] [--pg-url URL]
           [--out benchmarks/results/ledger_speed.json]

(a) append: N events through the public `Ledger.record()` (one write transaction per event,
    as every gonogo command writes), then N more through `Ledger.record_many()` (one
    transaction per --batch events); events/s of each, on a fresh ledger, which must then
    audit intact.
(b) verify: a ledger of N events of realistic release history (deploy runs with their
    steps, artifacts, releases and locks; migrate runs with approvals; payloads shaped and
    sized like a real `gonogo demo` ledger's, plans a little larger) and the table rows that
    agree with them, written in bulk with the real hash chain: every hash computed by
    `chain.event_hash`, the reference definition. Then the real CLI, `python -m gonogo
    audit verify --json`, is timed end to end --runs times. It must find the ledger intact
    with N events and the head the reference computed: verify did its full work (every
    hash, every row replayed and compared), and its fast hashing agrees with the
    reference on all N events. Also timed once: the audit in one process
    (`Ledger.audit(parallel=False)`), for a machine without a second CPU.

PostgreSQL: a throwaway server started like the tests do (tests/pg_server.py: initdb,
fsync and synchronous_commit off), or --pg-url of a server where fresh databases may be
created (they are dropped afterwards).

Writes the figures, the machine and `met_target` (verify of N events under 10 s on every
backend measured) to --out; exits 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 10.0
CONFIG = '[project]\nname = "ledger-speed"\n\n[environments.staging]\nprovider = "local"\n'
CONFIG += "port = 18999\n"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    load = None
    with contextlib.suppress(OSError):
        load = os.getloadavg()[0]
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": mem_gb,
        "load_average_at_start": load,
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


@dataclass
class Postgres:
    """Fresh databases on a server: ours (started and stopped here) or --pg-url's."""

    base_url: str
    server: Any = None
    made: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, url: str | None) -> Postgres:
        if url:
            return cls(url)
        sys.path.insert(0, str(REPO / "tests"))
        from pg_server import PgServer

        server = PgServer.start()
        return cls(server.url(), server)

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.base_url, autocommit=True)

    def fresh(self) -> str:
        name = f"gonogo_bench_{uuid.uuid4().hex[:10]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        head, _, _ = self.base_url.partition("?")[0].rpartition("/")
        return f"{head}/{name}"

    def describe(self) -> str:
        with self._admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()
            fsync = conn.execute("SHOW fsync").fetchone()
            sync = conn.execute("SHOW synchronous_commit").fetchone()
        started = "started by the benchmark (tests/pg_server.py)" if self.server else "--pg-url"
        return (
            f"{version[0] if version else '?'} on this machine, {started}; fsync="
            f"{fsync[0] if fsync else '?'}, synchronous_commit={sync[0] if sync else '?'}"
        )

    def stop(self) -> None:
        with contextlib.suppress(Exception), self._admin() as conn:
            for name in self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if self.server is not None:
            self.server.stop()


# -- (a) appends ----------------------------------------------------------------------------


def append_payload(i: int) -> dict[str, Any]:
    """The shape and size of a typical event (a step.finished of a real deploy)."""
    return {
        "idx": i % 7 + 1,
        "name": "verify",
        "status": "ok",
        "detail": {
            "ok": True,
            "reason": "all 3 probes passed (2 rounds in a row) after 4 rounds in 0.6s",
            "rounds": 4,
            "duration_ms": round(i * 0.37 % 900, 1),
        },
    }


def bench_append(url: str | None, path: Path, n: int, batch: int) -> dict[str, Any]:
    from gonogo.ledger import Ledger
    from gonogo.ledger.store import NewEvent

    ledger = Ledger.open(url, path)
    try:
        started = time.perf_counter()
        for i in range(n):
            ledger.record(
                "step.finished", actor="bench", run_id=f"r{i // 8}", payload=append_payload(i)
            )
        single = time.perf_counter() - started
        started = time.perf_counter()
        for first in range(0, n, batch):
            ledger.record_many(
                NewEvent("step.finished", "bench", None, f"r{i // 8}", append_payload(i))
                for i in range(first, min(n, first + batch))
            )
        batched = time.perf_counter() - started
        report = ledger.audit()
        if not report.intact or report.events != 2 * n:
            raise SystemExit(f"the append benchmark left a bad ledger: {report.message()}")
    finally:
        ledger.close()
    return {
        "events": n,
        "record_s": round(single, 2),
        "record_events_per_s": round(n / single),
        "record_many_batch": batch,
        "record_many_s": round(batched, 2),
        "record_many_events_per_s": round(n / batched),
    }


# -- (b) a large ledger of realistic history ------------------------------------------------

EVENT_COLS = ("ts", "kind", "env", "run_id", "actor", "payload", "prev_hash", "hash")
TABLE_COLS = {
    "runs": (
        "id", "command", "env", "status", "exit_code", "actor", "host", "pid", "sha",
        "artifact", "plan", "summary", "evidence", "started_at", "finished_at",
    ),
    "steps": (
        "run_id", "idx", "name", "description", "status", "detail", "started_at", "finished_at",
    ),
    "artifacts": ("digest", "sha", "kind", "location", "size", "created_at"),
    "releases": (
        "env", "version", "run_id", "sha", "artifact", "vars", "state", "description",
        "created_at", "verified_at", "live_since",
    ),
    "migrations": (
        "env", "run_id", "from_revision", "to_revision", "status", "sql_sha256", "applied_at",
    ),
    "approvals": (
        "env", "run_id", "from_revision", "to_revision", "sql_sha256", "approved_by", "note",
        "approved_at",
    ),
}  # fmt: skip
JSON_COLS = {("runs", "plan"), ("steps", "detail"), ("releases", "vars")}
ENVS = ("staging", "production", "eu-staging", "eu-production")
ACTORS = ("ci-bot <ci@example.com>", "Ada Lovelace <ada@example.com>", "Jürgen Groß <jg@x.de>")
PROBES = "all 3 probes passed (2 rounds in a row) after 4 rounds in 0.6s"


class History:
    """Deploy and migrate runs, event by event with the reference hash chain, and the rows
    gonogo would have written for them (JSON columns in the key order gonogo builds them,
    not sorted, as SQLAlchemy stores them)."""

    def __init__(self, total: int) -> None:
        from gonogo.ledger import chain

        self.chain = chain
        self.total = total
        self.count = 0
        self.prev = chain.GENESIS
        self.clock = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self.rows: dict[str, list[list[Any]]] = {name: [] for name in TABLE_COLS}
        self.versions = dict.fromkeys(ENVS, 0)
        self.live: dict[str, list[Any]] = {}
        self.revision = 0

    def event(
        self, kind: str, env: str | None, run_id: str | None, actor: str, payload: Any
    ) -> tuple[Any, ...]:
        chain = self.chain
        self.clock += timedelta(microseconds=137_911)
        ts = self.clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = chain.canonical_json(payload)
        digest = chain.event_hash(
            self.prev, chain.hashed_fields(ts, kind, env, run_id, actor, body)
        )
        row = (ts, kind, env, run_id, actor, body, self.prev, digest)
        self.prev = digest
        self.count += 1
        return row

    def events(self) -> Iterator[tuple[Any, ...]]:
        n = 0
        while self.count < self.total - 40:
            n += 1
            yield from (self.migrate_run(n) if n % 12 == 0 else self.deploy_run(n))
        while self.count < self.total:  # events no table mirrors
            yield self.event("gate.override", "staging", None, ACTORS[1], {"gate": "in-scope"})

    def _run(self, n: int) -> tuple[str, str, str, int, str]:
        run_id = f"{self.clock.strftime('%Y%m%dT%H%M%SZ')}-{n:06x}"
        sha = hashlib.sha256(str(n).encode()).hexdigest()[:40]
        return run_id, ACTORS[n % len(ACTORS)], f"runner-{n % 17}", 10_000 + n % 50_000, sha

    def deploy_run(self, n: int) -> Iterator[tuple[Any, ...]]:
        env = ENVS[n % len(ENVS)]
        run_id, actor, host, pid, sha = self._run(n)
        version = self.versions[env] = self.versions[env] + 1
        digest = "sha256:" + hashlib.sha256(sha.encode()).hexdigest()
        port = 40_000 + n % 20_000
        where = f".gonogo/local/{env}"
        plan = {
            "command": "deploy",
            "env": env,
            "steps": [
                {"action": "pack", "description": f"pack {sha[:7]} (git archive) into a tarball",
                 "params": {"sha": sha}},
                {"action": "unpack", "description": f"unpack it as {env} v{version} in "
                 f"{where}/releases/v{version}", "params": {"env": env, "sha": sha,
                 "vars": {"NODE_ENV": env}, "version": version}},
                {"action": "start", "description": f"start v{version}: `uvicorn app.main:app`"
                 f" on 127.0.0.1:{port} with PORT, GIT_SHA, DATABASE_URL, NODE_ENV",
                 "params": {"command": "uvicorn app.main:app --host ${HOST:-0.0.0.0} --port "
                 "${PORT:-8000}", "env": env, "port": port, "version": version}},
                {"action": "verify", "description": f"verify v{version}: probes health, "
                 "csrf, version within 20s", "params": {"env": env, "version": version}},
            ],
            "notes": ["migrations are never part of deploy: run `gonogo migrate ENV apply`"],
        }  # fmt: skip
        origin = {"ci": None, "host": host, "user": actor}
        first = self.event("run.started", env, run_id, actor, {
            "command": "deploy", "host": host, "pid": pid, "plan": plan, "sha": sha,
            "origin": origin,
        })  # fmt: skip
        yield first
        yield self.event("lock.acquired", env, run_id, actor, {"holder": actor, "host": host,
                                                              "pid": pid})  # fmt: skip
        details = {
            "pack": {"digest": digest, "size": 40960, "duration_ms": 5.2},
            "unpack": {"path": f"{where}/releases/v{version}", "digest": digest,
                       "duration_ms": 7.4},
            "start": {"pid": pid + 1, "port": port, "log": f"{where}/logs/v{version}.log",
                      "duration_ms": 3.3},
            "verify": {"ok": True, "reason": PROBES, "rounds": 4, "duration_ms": 585.1},
        }  # fmt: skip
        stamps: dict[str, str] = {}
        for idx, step in enumerate(plan["steps"], start=1):
            name, description = step["action"], step["description"]
            begun = self.event("step.started", None, run_id, actor,
                               {"description": description, "idx": idx, "name": name})  # fmt: skip
            yield begun
            if name == "pack":
                made = self.event("artifact.created", None, run_id, actor,
                                  {"digest": digest, "kind": "tarball", "sha": sha})  # fmt: skip
                self.rows["artifacts"].append(
                    [digest, sha, "tarball", f".gonogo/artifacts/{digest[7:]}.tar", 40960, made[0]]
                )
                yield made
            elif name == "unpack":
                created = self.event("release.created", env, run_id, actor, {
                    "version": version, "sha": sha, "artifact": digest, "vars": ["NODE_ENV"],
                    "description": f"deploy {sha[:7]}", "state": "pending",
                })  # fmt: skip
                stamps["created"] = created[0]
                yield created
            elif name == "start":
                live = self.event("release.live", env, run_id, actor, {"version": version})
                stamps["live"] = live[0]
                yield live
            else:
                verified = self.event("release.verified", env, run_id, actor, {"version": version})
                stamps["verified"] = verified[0]
                yield verified
            detail = details[name]
            done = self.event(
                "step.finished",
                None,
                run_id,
                actor,
                {"idx": idx, "name": name, "status": "ok", "detail": detail},
            )
            self.rows["steps"].append(
                [run_id, idx, name, description, "ok", detail, begun[0], done[0]]
            )
            yield done
        yield self.event("lock.released", env, run_id, actor, {})
        summary = f"{env} v{version} ({sha[:7]}) is live and verified"
        last = self.event("run.finished", env, run_id, actor,
                          {"status": "succeeded", "exit_code": 0, "summary": summary})  # fmt: skip
        yield last
        self.rows["runs"].append([run_id, "deploy", env, "succeeded", 0, actor, host, pid, sha,
                                  digest, plan, summary, None, first[0], last[0]])  # fmt: skip
        release = [
            env,
            version,
            run_id,
            sha,
            digest,
            {"NODE_ENV": env},
            "live",
            f"deploy {sha[:7]}",
            stamps["created"],
            stamps["verified"],
            stamps["live"],
        ]
        if env in self.live:
            self.live[env][6] = "retired"  # set_live retires the previous live release
        self.live[env] = release
        self.rows["releases"].append(release)

    def migrate_run(self, n: int) -> Iterator[tuple[Any, ...]]:
        env = ENVS[n % len(ENVS)]
        run_id, actor, host, pid, sha = self._run(n)
        frm, to = f"{self.revision:04d}", f"{self.revision + 1:04d}"
        self.revision += 1
        sql = hashlib.sha256(to.encode()).hexdigest()
        description = f"alembic upgrade {frm} -> {to}"
        plan = {"command": "migrate", "env": env, "steps": [
            {"action": "migrate", "description": description, "params": {"env": env}}]}  # fmt: skip
        first = self.event("run.started", env, run_id, actor,
                           {"command": "migrate", "host": host, "pid": pid, "plan": plan,
                            "sha": sha})  # fmt: skip
        yield first
        yield self.event("lock.acquired", env, run_id, actor, {"holder": actor, "host": host,
                                                              "pid": pid})  # fmt: skip
        note = "reviewed in WO-12"
        approved = self.event("migration.approved", env, run_id, actor,
                              {"from": frm, "to": to, "sql_sha256": sql, "by": ACTORS[1],
                               "note": note})  # fmt: skip
        self.rows["approvals"].append([env, run_id, frm, to, sql, ACTORS[1], note, approved[0]])
        yield approved
        begun = self.event("step.started", None, run_id, actor,
                           {"description": description, "idx": 1, "name": "migrate"})  # fmt: skip
        yield begun
        applied = self.event(
            "migration.applied",
            env,
            run_id,
            actor,
            {"from": frm, "to": to, "status": "ok", "sql_sha256": sql},
        )
        self.rows["migrations"].append([env, run_id, frm, to, "ok", sql, applied[0]])
        yield applied
        detail = {"before": [frm], "after": [to], "duration_ms": 812.5}
        done = self.event(
            "step.finished",
            None,
            run_id,
            actor,
            {"idx": 1, "name": "migrate", "status": "ok", "detail": detail},
        )
        self.rows["steps"].append([run_id, 1, "migrate", description, "ok", detail, begun[0],
                                   done[0]])  # fmt: skip
        yield done
        yield self.event("lock.released", env, run_id, actor, {})
        summary = f"{env} migrated {frm} -> {to}"
        last = self.event("run.finished", env, run_id, actor,
                          {"status": "succeeded", "exit_code": 0, "summary": summary})  # fmt: skip
        yield last
        self.rows["runs"].append([run_id, "migrate", env, "succeeded", 0, actor, host, pid, sha,
                                  None, plan, summary, None, first[0], last[0]])  # fmt: skip

    def table_rows(self, name: str) -> Iterator[tuple[Any, ...]]:
        cols = TABLE_COLS[name]
        as_json = [i for i, col in enumerate(cols) if (name, col) in JSON_COLS]
        for row in self.rows[name]:
            values = list(row)
            for i in as_json:
                values[i] = json.dumps(values[i])  # what SQLAlchemy's JSON type stores
            yield tuple(values)


def build_sqlite(path: Path, n: int) -> tuple[float, str]:
    from gonogo.ledger import Ledger

    Ledger.open(None, path).close()  # the schema at HEAD, as gonogo creates it
    started = time.perf_counter()
    history = History(n)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # this connection only: a bulk load
    conn.execute("BEGIN")
    marks = ", ".join("?" * len(EVENT_COLS))
    conn.executemany(
        f"INSERT INTO events ({', '.join(EVENT_COLS)}) VALUES ({marks})",  # noqa: S608
        history.events(),
    )
    for name, cols in TABLE_COLS.items():
        marks = ", ".join("?" * len(cols))
        conn.executemany(
            f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({marks})",  # noqa: S608
            history.table_rows(name),
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started, history.prev


def build_postgres(url: str, n: int) -> tuple[float, str]:
    import psycopg

    from gonogo.ledger import Ledger

    Ledger.open(url, Path("unused")).close()
    started = time.perf_counter()
    history = History(n)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY events ({', '.join(EVENT_COLS)}) FROM STDIN") as copy:
            for row in history.events():
                copy.write_row(row)
        for name, cols in TABLE_COLS.items():
            with cur.copy(f"COPY {name} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in history.table_rows(name):
                    copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
    return time.perf_counter() - started, history.prev


def gonogo(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gonogo", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def time_verify(root: Path, env: dict[str, str], n: int, head: str, runs: int) -> dict[str, Any]:
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = gonogo(root, env, "audit", "verify", "--json")
        walls.append(time.perf_counter() - started)
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            doc = {}
        if proc.returncode != 0 or not doc.get("intact") or doc.get("events") != n:
            raise SystemExit(
                f"audit verify did not find the ledger intact with {n} events "
                f"(exit {proc.returncode}):\n{proc.stdout[:2000]}\n{proc.stderr[-2000:]}"
            )
        if doc.get("head") != head:
            raise SystemExit(f"audit verify's head {doc.get('head')} is not the reference's")
    median = statistics.median(walls)
    return {
        "events": n,
        "runs": runs,
        "median_s": round(median, 2),
        "min_s": round(min(walls), 2),
        "max_s": round(max(walls), 2),
        "each_s": [round(w, 2) for w in walls],
        "events_per_s": round(n / median),
        "met_target": median < TARGET_S,
    }


ONE_PROCESS = """
import sys, time
from pathlib import Path
from gonogo.ledger import Ledger
url = sys.argv[1] or None
led = Ledger.open(url, Path(sys.argv[2]))
started = time.perf_counter()
report = led.audit(parallel=False)
print(time.perf_counter() - started, report.intact, report.events)
"""


def time_one_process(root: Path, env: dict[str, str], n: int) -> float:
    url = env.get("GONOGO_LEDGER_URL", "")
    proc = subprocess.run(
        [sys.executable, "-c", ONE_PROCESS, url, str(root / ".gonogo" / "ledger.db")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds, intact, events = proc.stdout.split()
    if intact != "True" or int(events) != n:
        raise SystemExit(f"the one-process audit did not find the ledger intact: {proc.stdout}")
    return round(float(seconds), 2)


def workspace(tmp: Path, name: str) -> Path:
    root = tmp / name
    (root / ".gonogo").mkdir(parents=True)
    (root / "gonogo.toml").write_text(CONFIG)
    return root


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GONOGO_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    return {**env, "GONOGO_ACTOR": "bench", **extra}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--append",
        type=int,
        default=100_000,
        metavar="N",
        help="events to append with record() and with record_many() (0: skip)",
    )
    parser.add_argument(
        "--verify",
        type=int,
        default=1_000_000,
        metavar="N",
        help="events in the ledger audit verify checks (0: skip)",
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--batch", type=int, default=1000, help="events per record_many()")
    parser.add_argument("--runs", type=int, default=3, help="audit verify runs per backend")
    parser.add_argument("--pg-url", help="a PostgreSQL server to use instead of starting one")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "ledger_speed.json"
    )
    args = parser.parse_args()  # fmt: skip
    sys.path.insert(0, str(REPO / "src"))
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: dict[str, Any] = {
        "benchmark": "ledger appends and `gonogo audit verify` (issue 8)",
        "target": f"gonogo audit verify of {args.verify} events in under {TARGET_S:.0f} s",
        "target_s": TARGET_S,
        "machine": machine(),
        "append": {},
        "verify": {},
    }
    pg = Postgres.start(args.pg_url) if "postgresql" in backends else None
    tmp = Path(tempfile.mkdtemp(prefix="gonogo-ledger-speed-"))
    try:
        if pg is not None:
            results["machine"]["postgresql"] = pg.describe()
        for backend in backends:
            if args.append:
                url = pg.fresh() if backend == "postgresql" and pg else None
                print(f"[{backend}] appending {args.append} events with record(), then with "
                      f"record_many({args.batch}) ...", flush=True)  # fmt: skip
                figures = bench_append(url, tmp / f"append-{backend}.db", args.append, args.batch)
                results["append"][backend] = figures
                print(f"[{backend}] record(): {figures['record_events_per_s']} events/s; "
                      f"record_many(): {figures['record_many_events_per_s']} events/s",
                      flush=True)  # fmt: skip
            if args.verify:
                root = workspace(tmp, f"verify-{backend}")
                if backend == "sqlite":
                    build, head = build_sqlite(root / ".gonogo" / "ledger.db", args.verify)
                    env = clean_env()
                else:
                    assert pg is not None
                    url = pg.fresh()
                    build, head = build_postgres(url, args.verify)
                    env = clean_env(GONOGO_LEDGER_URL=url)
                print(f"[{backend}] wrote a ledger of {args.verify} events in {build:.0f}s; "
                      "timing gonogo audit verify ...", flush=True)  # fmt: skip
                figures = time_verify(root, env, args.verify, head, args.runs)
                figures["head"] = head
                figures["one_process_audit_s"] = time_one_process(root, env, args.verify)
                figures["build_s"] = round(build, 1)
                if backend == "sqlite":
                    size = (root / ".gonogo" / "ledger.db").stat().st_size
                    figures["ledger_mb"] = round(size / 1e6)
                results["verify"][backend] = figures
                print(f"[{backend}] audit verify of {args.verify} events: median "
                      f"{figures['median_s']}s ({figures['events_per_s']} events/s; target < "
                      f"{TARGET_S:.0f}s); in one process {figures['one_process_audit_s']}s",
                      flush=True)  # fmt: skip
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    met = all(v["met_target"] for v in results["verify"].values())
    results["met_target"] = met
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'met' if met else 'MISSED'} the target; results in {args.out}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
