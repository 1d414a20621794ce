"""gonogo audit verify | export: prove the ledger is whole; hand its events to an auditor.

`verify` recomputes the hash chain and replays every table from its events; it exits 0
when all holds and 2 naming the first event (or row) that does not. `export` writes the
events as stored, one per line (jsonl) or as CSV, for archiving or outside analysis; an
auditor can recompute every hash from it (sha256 of prev_hash and the canonical JSON of
ts, kind, env, run_id, actor and the payload's canonical JSON).

Both only read: with no ledger yet they report an empty one instead of creating it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from gonogo.context import Context
from gonogo.errors import EXIT_NOGO, GonogoError
from gonogo.ledger import chain
from gonogo.ledger.audit import MAX_LISTED
from gonogo.result import Result

FORMATS = ("jsonl", "csv")
COLUMNS = ("seq", "ts", "kind", "env", "run_id", "actor", "payload", "prev_hash", "hash")
# Lines per write to stdout: few enough flushes for a large ledger, bounded memory.
_CHUNK = 500


def verify(ctx: Context) -> Result:
    _read_only(ctx)
    report = ctx.ledger.audit()
    rows = report.mismatches
    if rows and (report.chain is not None or len(rows) > 1):
        # The verdict line names the first problem; every row is listed above it for
        # whoever digs in (a removed event usually leaves rows that no longer agree).
        ctx.out.line("rows that disagree with their events:")
        for mismatch in rows[:MAX_LISTED]:
            ctx.out.line(f"  {mismatch.line()}")
        if len(rows) > MAX_LISTED:
            ctx.out.line(f"  ... and {len(rows) - MAX_LISTED} more (see --json)")
    return Result(
        0 if report.intact else EXIT_NOGO,
        report.message(),
        {"command": "audit verify", **report.to_dict()},
    )


def export(ctx: Context, fmt: str, output: Path | None = None) -> Result:
    if fmt not in FORMATS:
        raise GonogoError(f"unknown export format {fmt!r} (use {' or '.join(FORMATS)})")
    if output is None and ctx.out.json_mode:
        raise GonogoError("audit export writes the events to stdout; with --json give --output")
    _read_only(ctx)
    ledger = ctx.ledger
    lines = _render(fmt, ledger.iter_events())
    if output is None:
        count, head = _to_stdout(ctx, lines)
        # Nothing else on stdout: it is the export.
        return Result(
            0, "", {"command": "audit export", "format": fmt, "events": count, "head": head}
        )
    count, head = _to_file(output, lines)
    return Result(
        0,
        f"exported {count} events of ledger {ledger.location} to {output} ({fmt}); "
        f"head {head[:12]}",
        {
            "command": "audit export",
            "format": fmt,
            "output": str(output),
            "events": count,
            "head": head,
        },
    )


def _read_only(ctx: Context) -> None:
    # Context opens a ledger that does not exist yet in memory when dry_run is set, so
    # auditing a project that never ran anything reports an empty ledger instead of
    # creating .gonogo/ledger.db as a side effect.
    ctx.dry_run = True
    from gonogo.ledger.store import sqlite_file

    url = ctx.environ.get("GONOGO_LEDGER_URL", "")
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        # A mistyped path would otherwise read as a clean audit of an empty ledger.
        raise GonogoError(
            f"GONOGO_LEDGER_URL names {url}, but there is no ledger there; check the path"
        )


class _Counted:
    """Lines of an export, counting events and remembering the last hash as they pass."""

    def __init__(self) -> None:
        self.count = 0
        self.head = chain.GENESIS


def _render(fmt: str, events: Iterable[dict[str, Any]]) -> tuple[_Counted, Iterator[str]]:
    seen = _Counted()

    def rows() -> Iterator[dict[str, Any]]:
        for event in events:
            seen.count += 1
            seen.head = event["hash"]
            yield event

    if fmt == "jsonl":
        return seen, (json.dumps(_jsonl(e), ensure_ascii=False) for e in rows())
    return seen, _csv_lines(rows())


def _jsonl(event: dict[str, Any]) -> dict[str, Any]:
    try:
        payload: Any = json.loads(event["payload"])
    except (TypeError, ValueError):
        payload = event["payload"]  # exported as stored; `audit verify` says what is wrong
    return {**{k: event[k] for k in COLUMNS}, "payload": payload}


def _csv_lines(events: Iterable[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text.removesuffix("\n")

    writer.writerow(COLUMNS)
    yield take()
    for event in events:
        writer.writerow(["" if event[k] is None else event[k] for k in COLUMNS])
        yield take()


def _to_stdout(ctx: Context, rendered: tuple[_Counted, Iterator[str]]) -> tuple[int, str]:
    seen, lines = rendered
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= _CHUNK:
            ctx.out.line("\n".join(chunk))
            chunk = []
    if chunk:
        ctx.out.line("\n".join(chunk))
    return seen.count, seen.head


def _to_file(path: Path, rendered: tuple[_Counted, Iterator[str]]) -> tuple[int, str]:
    seen, lines = rendered
    folder = path.parent if str(path.parent) else Path()
    if not folder.is_dir():
        raise GonogoError(f"cannot write {path}: folder {folder} does not exist")
    # Written beside the target and renamed: a reader never sees half an export.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            _write_lines(handle, lines)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return seen.count, seen.head


def _write_lines(handle: TextIO, lines: Iterable[str]) -> None:
    for line in lines:
        handle.write(line)
        handle.write("\n")
