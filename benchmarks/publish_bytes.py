"""Bytes `gonogo publish` sends: a first push, then re-publishing the same artifact.

Usage: python benchmarks/publish_bytes.py [--layer-mib N]
                                          [--out benchmarks/results/publish_bytes.json]

Target (issue 7): pushing an image whose layers the registry already has uploads no layer
blob again (counted: blob uploads), and re-publishing the same artifact with a new tag moves
the bytes of manifests only.

Starts Debian's docker-registry on 127.0.0.1 (basic auth, as tests/registry_server.py does),
makes a git repository with a FROM-scratch Dockerfile whose image has a layer of N MiB of
random bytes, builds it with buildah (a private vfs store) and drives the real CLI:

1. `publish staging`                       — cold registry: every blob goes up;
2. `publish staging --tag republish-{short_sha}` — same artifact, new tag;
3. `publish staging`                       — same artifact, same tags again;
4. `publish production`                    — promotion: the digest staging verified.
   (A verified staging release of that image is written to the ledger first, as a deploy
   through an image-releasing provider such as heroku leaves it; the deploy itself is
   tested in tests/integration/test_publish_promotion.py.)

The counters are the registry client's own (`--json` → `counters`). Exits 1 when any run
after the first uploads a blob, or when 2 sends more than one manifest (3 and 4: none).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from registry_server import RegistryServer, free_port  # noqa: E402

GIT = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}
USER, PASSWORD = "bench", secrets.token_urlsafe(16)
DOCKERFILE = """\
FROM scratch
COPY payload.bin /app/payload.bin
COPY server /app/server
WORKDIR /app/logs
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["/app/server"]
"""
CONFIG = """\
[project]
name = "publish-bench"

[build]
dockerfile = "image/Dockerfile"
context = "image"
image = {{ dirs = ["/app/logs"], ports = [8000] }}

[publish]
repository = "{registry}/bench/app"
tags = ["v{{version}}", "git-{{short_sha}}", "docker-{{engine}}"]
platforms = ["linux/amd64"]

[environments.staging]
port = {staging}

[environments.production]
port = {production}
protected = true
promote_from = "staging"
"""
KEYS = (
    "blob_checks",
    "blobs_present",
    "blob_uploads",
    "blob_bytes",
    "manifest_puts",
    "manifest_bytes",
    "requests",
)


def make_project(root: Path, registry: str, layer_mib: int, store: Path) -> dict[str, str]:
    image = root / "image"
    image.mkdir(parents=True)
    (image / "Dockerfile").write_text(DOCKERFILE)
    (image / "server").write_text("#!/bin/false\n")
    (image / "payload.bin").write_bytes(os.urandom(layer_mib << 20))
    (root / ".gitignore").write_text(".gonogo/\n")
    (root / "gonogo.toml").write_text(
        CONFIG.format(registry=registry, staging=free_port(), production=free_port())
    )
    (store / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{store / "root"}"\nrunroot = "{store / "run"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GONOGO_", "ALLOW_PROD"))}
    env.update(
        GIT,
        GONOGO_ACTOR="bench",
        CONTAINERS_STORAGE_CONF=str(store / "storage.conf"),
        BUILDAH_ISOLATION="chroot",
        GONOGO_REGISTRY_USER=USER,
        GONOGO_REGISTRY_PASSWORD=PASSWORD,
    )
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "bench"],
        ["git", "tag", "v1.0.0"],
    ):
        subprocess.run(argv, cwd=root, env=env, check=True, timeout=60)
    return env


def gonogo(root: Path, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "gonogo", *args, "--json"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"gonogo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    doc: dict[str, Any] = json.loads(proc.stdout)
    return wall, doc


def row(name: str, wall: float, doc: dict[str, Any]) -> dict[str, Any]:
    counters = doc["counters"]
    return {
        "run": name,
        "tags": [t["tag"] for t in doc["tags"] if t["action"] == "push"],
        "digest": doc["digest"],
        "artifact": doc["artifact"]["source"],
        **{k: counters[k] for k in KEYS},
        "wall_s": round(wall, 3),
    }


def mark_verified_on_staging(root: Path, sha: str, digest: str) -> None:
    """What a verified image deploy to staging leaves in the ledger."""
    from gonogo.ledger import Ledger
    from gonogo.ledger.store import ReleaseRow, now_iso

    ledger = Ledger.open(None, root / ".gonogo" / "ledger.db")
    try:
        run_id = f"bench-staging-{sha[:7]}"
        ledger.start_run(run_id, command="deploy", env="staging", actor="bench", host="bench",
                         pid=os.getpid(), sha=sha)  # fmt: skip
        version = ledger.next_release_version("staging")
        release = ReleaseRow(
            "staging", version, run_id, sha, digest, {}, "live", "bench", now_iso(), None, None
        )
        ledger.add_release(release, actor="bench")
        ledger.mark_verified("staging", version, actor="bench", run_id=run_id)
        ledger.finish_run(run_id, status="succeeded", exit_code=0, summary="ok", actor="bench")
    finally:
        ledger.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layer-mib", type=int, default=8)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "publish_bytes.json"
    )
    args = parser.parse_args()
    if shutil.which("buildah") is None:
        raise SystemExit("buildah is not installed: apt-get install buildah")
    registry = RegistryServer.start(user=USER, password=PASSWORD)
    try:
        with tempfile.TemporaryDirectory(prefix="gonogo-bench-publish-") as tmp:
            root, store = Path(tmp) / "app", Path(tmp) / "store"
            store.mkdir()
            env = make_project(root, registry.host, args.layer_mib, store)
            build_wall, built = gonogo(root, env, "build", "staging")
            runs = []
            wall, doc = gonogo(root, env, "publish", "staging")
            runs.append(row("first publish (cold registry)", wall, doc))
            wall, doc = gonogo(root, env, "publish", "staging", "--tag", "republish-{short_sha}")
            runs.append(row("same artifact, new tag", wall, doc))
            wall, doc = gonogo(root, env, "publish", "staging")
            runs.append(row("same artifact, same tags", wall, doc))
            mark_verified_on_staging(root, str(built["sha"]), str(built["artifact"]["digest"]))
            prod_env = {**env, "ALLOW_PROD": "1", "ALLOW_PROD_DEPLOY": "YES"}
            wall, doc = gonogo(root, prod_env, "publish", "production")
            runs.append(row("promotion to production (staging's digest)", wall, doc))
            # Storage can hold leftovers of the private buildah store; drop them with the tmp.
            shutil.rmtree(store, ignore_errors=True)
    finally:
        registry.stop()
    first, new_tag, same, promoted = runs
    checks = {
        "new_tag_uploads_no_blob": new_tag["blob_uploads"] == 0 and new_tag["blob_bytes"] == 0,
        "new_tag_moves_one_manifest": new_tag["manifest_puts"] == 1,
        "same_tags_move_nothing": same["blob_uploads"] == 0 and same["manifest_puts"] == 0,
        "promotion_uploads_no_blob": promoted["blob_uploads"] == 0
        and promoted["digest"] == first["digest"],
    }
    summary = {
        "benchmark": "bytes sent by gonogo publish: first push, then the same artifact again",
        "layer_mib": args.layer_mib,
        "image_size_bytes": built["artifact"]["size"],
        "build_wall_s": round(build_wall, 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": runs,
        "checks": checks,
        "met_target": all(checks.values()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    for r in runs:
        print(
            f"{r['run']:<45} blobs {r['blob_uploads']} ({r['blob_bytes']} B), manifests "
            f"{r['manifest_puts']} ({r['manifest_bytes']} B), {r['wall_s']}s"
        )
    print("met target" if summary["met_target"] else f"MISSED: {checks}")
    return 0 if summary["met_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
