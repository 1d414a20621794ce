"""Image build without building: argv lists, builder detection, failure messages, and the
pure helpers of the structure checks (users, secrets in history)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from gonogo.errors import EXIT_USAGE, GonogoError
from gonogo.images.build import (
    DOCKER_INFO_TIMEOUT,
    INSTALL_HINT,
    BuildFailed,
    CommandLog,
    NoBuilder,
    build_failure_message,
    buildah_build_argv,
    buildah_manifest_argvs,
    buildah_manifest_rm_argv,
    buildah_push_argv,
    detect_builder,
    docker_build_argv,
    docker_buildx_argv,
    docker_export_argv,
    failing_step,
    oci_labels,
    output_tail,
    platform_tag,
    run_probe,
)
from gonogo.images.inspect import (
    history_secret_names,
    passwd_uid,
    redact_history_line,
    user_verdict,
)

CTX = Path("/src")
DF = Path("/src/Dockerfile")
LABELS = {"org.opencontainers.image.revision": "abc123"}


# -- argv ------------------------------------------------------------------------------------


def test_oci_labels_use_the_standard_keys_and_drop_empties() -> None:
    assert oci_labels(revision="abc", source="https://x", created="", version="1.0") == {
        "org.opencontainers.image.revision": "abc",
        "org.opencontainers.image.source": "https://x",
        "org.opencontainers.image.version": "1.0",
    }


def test_docker_build_argv() -> None:
    argv = docker_build_argv(
        context=CTX, dockerfile=DF, tag="app:1", iidfile=Path("/t/iid"),
        build_args={"NODE_ENV": "production"}, labels=LABELS, platform="linux/arm64",
    )  # fmt: skip
    assert argv == [
        "docker", "build", "--file", "/src/Dockerfile", "--tag", "app:1", "--iidfile", "/t/iid",
        "--platform", "linux/arm64", "--build-arg", "NODE_ENV=production",
        "--label", "org.opencontainers.image.revision=abc123", "/src",
    ]  # fmt: skip


def test_docker_build_argv_without_platform_leaves_it_to_the_engine() -> None:
    argv = docker_build_argv(context=CTX, dockerfile=DF, tag="app:1", iidfile=Path("/t/iid"))
    assert "--platform" not in argv and argv[-1] == "/src"


def test_docker_buildx_argv_writes_an_oci_index_with_annotations() -> None:
    argv = docker_buildx_argv(
        context=CTX, dockerfile=DF, tag="app:1", layout=Path("/out/layout"),
        platforms=["linux/amd64", "linux/arm64"], labels=LABELS, docker="/usr/bin/docker",
    )  # fmt: skip
    assert argv[:3] == ["/usr/bin/docker", "buildx", "build"]
    assert argv[argv.index("--platform") + 1] == "linux/amd64,linux/arm64"
    assert argv[argv.index("--output") + 1] == "type=oci,dest=/out/layout,tar=false"
    assert "index,manifest:org.opencontainers.image.revision=abc123" in argv
    assert "org.opencontainers.image.revision=abc123" in argv  # also as a label


def test_docker_export_argv_copies_from_the_engine_into_a_layout() -> None:
    assert docker_export_argv(
        image="app:1", layout=Path("/out/l"), ref="abc", digestfile=Path("/t/d")
    ) == ["skopeo", "copy", "--digestfile", "/t/d", "docker-daemon:app:1", "oci:/out/l:abc"]


def test_buildah_build_argv_labels_and_annotates() -> None:
    argv = buildah_build_argv(
        context=CTX, dockerfile=DF, tag="localhost/app:1", iidfile=Path("/t/iid"),
        build_args={"A": "1"}, labels=LABELS, platform="linux/arm64", isolation="chroot",
        prefix=("buildah", "--root", "/r", "--storage-driver", "vfs"),
    )  # fmt: skip
    assert argv == [
        "buildah", "--root", "/r", "--storage-driver", "vfs",
        "build", "--file", "/src/Dockerfile", "--tag", "localhost/app:1",
        "--iidfile", "/t/iid", "--format", "oci",
        "--platform", "linux/arm64", "--isolation", "chroot",
        "--build-arg", "A=1",
        "--label", "org.opencontainers.image.revision=abc123",
        "--annotation", "org.opencontainers.image.revision=abc123",
        "/src",
    ]  # fmt: skip


def test_buildah_push_and_manifest_argvs() -> None:
    assert buildah_push_argv(
        image="abc", layout=Path("/out/l"), ref="v1", digestfile=Path("/t/d")
    ) == ["buildah", "push", "--format", "oci", "--digestfile", "/t/d", "abc", "oci:/out/l:v1"]
    assert buildah_manifest_argvs(
        name="localhost/app:1-index", images=["a1", "b2"], layout=Path("/out/l"), ref="v1",
        digestfile=Path("/t/d"), prefix=("bh",),
    ) == [
        ["bh", "manifest", "create", "localhost/app:1-index"],
        ["bh", "manifest", "add", "localhost/app:1-index", "a1"],
        ["bh", "manifest", "add", "localhost/app:1-index", "b2"],
        ["bh", "manifest", "push", "--all", "--format", "oci", "--digestfile", "/t/d",
         "localhost/app:1-index", "oci:/out/l:v1"],
    ]  # fmt: skip
    assert buildah_manifest_rm_argv("x", ("bh",)) == ["bh", "manifest", "rm", "x"]


@pytest.mark.parametrize(
    ("tag", "platform", "expected"),
    [
        ("localhost/app:1", "linux/arm64", "localhost/app:1-linux-arm64"),
        ("localhost/app", "linux/arm/v7", "localhost/app:linux-arm-v7"),
        ("localhost:5000/app", "linux/amd64", "localhost:5000/app:linux-amd64"),
    ],
)
def test_platform_tag(tag: str, platform: str, expected: str) -> None:
    assert platform_tag(tag, platform) == expected


# -- detection -------------------------------------------------------------------------------


def which_of(*present: str) -> Callable[[str], str | None]:
    return lambda name: f"/usr/bin/{name}" if name in present else None


class FakeProbe:
    def __init__(self, ok: bool, detail: str = "") -> None:
        self.ok, self.detail = ok, detail
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> tuple[bool, str]:
        self.calls.append((list(argv), timeout))
        return self.ok, self.detail


DEAD = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."


def test_docker_is_used_when_its_engine_answers() -> None:
    probe = FakeProbe(True)
    builder = detect_builder(None, which_of("docker", "buildah"), probe)
    assert (builder.name, builder.executable) == ("docker", "/usr/bin/docker")
    assert not builder.forced
    assert "docker info succeeded" in builder.reason
    [(argv, timeout)] = probe.calls
    assert argv[:2] == ["/usr/bin/docker", "info"] and timeout == DOCKER_INFO_TIMEOUT <= 10


def test_buildah_is_used_when_no_engine_answers_and_says_why() -> None:
    builder = detect_builder(None, which_of("docker", "buildah"), FakeProbe(False, DEAD))
    assert builder.name == "buildah"
    assert "no Docker engine reachable" in builder.reason and DEAD in builder.reason


def test_buildah_is_used_without_a_docker_cli_and_docker_is_not_probed() -> None:
    probe = FakeProbe(True)
    builder = detect_builder(None, which_of("buildah"), probe)
    assert builder.name == "buildah" and "docker CLI is not installed" in builder.reason
    assert probe.calls == []


def test_no_builder_says_what_to_install() -> None:
    with pytest.raises(NoBuilder) as info:
        detect_builder(None, which_of("docker"), FakeProbe(False, DEAD))
    message = str(info.value)
    assert INSTALL_HINT in message and "apt-get install buildah" in message
    assert len(message.splitlines()) == 1 and info.value.exit_code == EXIT_USAGE


def test_forced_builder_is_honoured() -> None:
    both = which_of("docker", "buildah")
    forced = detect_builder("buildah", both, FakeProbe(True))
    assert forced.name == "buildah" and forced.forced and "forced" in forced.reason
    assert detect_builder("docker", both, FakeProbe(True)).name == "docker"


@pytest.mark.parametrize(
    ("force", "present", "engine", "expected"),
    [
        ("docker", ("docker", "buildah"), False, "no Docker engine reachable"),
        ("docker", ("buildah",), True, "docker CLI is not installed"),
        ("buildah", ("docker",), True, "apt-get install buildah"),
        ("podman", ("docker", "buildah"), True, "choose docker or buildah"),
    ],
)
def test_forced_builder_that_cannot_run_is_a_one_line_error(
    force: str, present: tuple[str, ...], engine: bool, expected: str
) -> None:
    with pytest.raises(NoBuilder) as info:
        detect_builder(force, which_of(*present), FakeProbe(engine, DEAD))
    assert expected in str(info.value) and len(str(info.value).splitlines()) == 1


def test_run_probe_reports_success_failure_and_timeout() -> None:
    assert run_probe(["true"], 5) == (True, "")
    ok, detail = run_probe(["sh", "-c", "echo first >&2; echo 'engine down' >&2; exit 1"], 5)
    assert (ok, detail) == (False, "engine down")
    assert run_probe(["sleep", "5"], 0.2) == (False, "no answer within 0.2s")
    assert run_probe(["/nonexistent/docker", "info"], 5)[0] is False


# -- failure messages ------------------------------------------------------------------------

BUILDAH_FAIL = """\
STEP 1/4: FROM scratch
STEP 2/4: COPY server /app/server
STEP 3/4: COPY missing.txt /app/missing.txt
Error: building at STEP "COPY missing.txt /app/missing.txt": checking on sources under \
"/ctx": copier: stat: "/missing.txt": no such file or directory
"""

BUILDKIT_FAIL = """\
#5 [1/3] FROM docker.io/library/python:3.12-slim
#5 DONE 0.1s

#6 [2/3] COPY requirements.txt /app/
#6 DONE 0.0s

#7 [3/3] RUN pip install -r /app/requirements.txt
#7 1.234 ERROR: Could not find a version that satisfies the requirement nope==9
#7 ERROR: process "/bin/sh -c pip install -r /app/requirements.txt" did not complete \
successfully: exit code: 1
------
 > [3/3] RUN pip install -r /app/requirements.txt:
------
\x1b[31mERROR: failed to solve: process "/bin/sh -c pip install" exit code: 1\x1b[0m
"""

CLASSIC_DOCKER_FAIL = """\
Step 1/3 : FROM alpine
 ---> 123
Step 2/3 : RUN false
 ---> Running in abc
The command '/bin/sh -c false' returned a non-zero code: 1
"""


def test_failing_step_in_each_builders_output() -> None:
    assert failing_step(BUILDAH_FAIL) == "STEP 3/4: COPY missing.txt /app/missing.txt"
    assert failing_step(BUILDKIT_FAIL) == "[3/3] RUN pip install -r /app/requirements.txt"
    assert failing_step(CLASSIC_DOCKER_FAIL) == "Step 2/3 : RUN false"
    assert failing_step("[2/2] STEP 1/2: FROM scratch AS final\n") == (
        "[2/2] STEP 1/2: FROM scratch AS final"
    )
    assert failing_step("Error: no such file\n") is None


def test_failure_message_is_one_line_with_the_step_and_the_last_output() -> None:
    message = build_failure_message(BUILDKIT_FAIL, 1, Path("/ev/build.log"))
    assert len(message.splitlines()) == 1
    assert message.startswith("image build failed at [3/3] RUN pip install")
    assert "ERROR: failed to solve" in message and "\x1b" not in message
    assert message.endswith("(log: /ev/build.log)")
    bare = build_failure_message("boom\n", 125, Path("/l"))
    assert bare == "image build failed (exit 125): boom (log: /l)"


def test_output_tail_drops_step_headers_and_caps_its_length() -> None:
    assert output_tail(BUILDAH_FAIL).startswith("Error: building at STEP")
    assert len(output_tail("x" * 5000)) <= 403


# -- running with a timeout ------------------------------------------------------------------


def test_a_command_that_overruns_is_stopped_and_reported(tmp_path: Path) -> None:
    log = CommandLog(tmp_path / "build.log", str)
    with pytest.raises(BuildFailed, match=r"image build timed out after 0.3s"):
        log.must(
            ["sh", "-c", "echo 'STEP 1/1: FROM scratch'; sleep 30"], 0.3, "image build", build=True
        )
    assert "STEP 1/1" in (tmp_path / "build.log").read_text()


def test_log_lines_are_redacted(tmp_path: Path) -> None:
    log = CommandLog(tmp_path / "build.log", lambda s: s.replace("hunter2", "<redacted>"))
    with pytest.raises(GonogoError) as info:
        log.must(["sh", "-c", "echo token hunter2; exit 3", "--build-arg=hunter2"], 5, "export")
    text = (tmp_path / "build.log").read_text()
    assert "hunter2" not in str(info.value)
    assert "<redacted>" in text.splitlines()[0]


def test_a_helper_that_outlives_the_builder_cannot_write_into_a_closed_log(
    tmp_path: Path,
) -> None:
    import threading
    import time

    from gonogo.images import build as build_module

    errors: list[BaseException | None] = []
    before = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        log = CommandLog(tmp_path / "build.log", str)
        script = "echo start; (setsid sh -c 'sleep 1.5; echo late' &); echo done"
        old_grace, build_module.STOP_GRACE = build_module.STOP_GRACE, 0.5
        try:
            code, output = log.run(["sh", "-c", script], 5)
        finally:
            build_module.STOP_GRACE = old_grace
        time.sleep(2)  # the helper writes "late" now, after the log was closed
    finally:
        threading.excepthook = before
    assert code == 0 and "done" in output
    assert errors == []
    assert "late" not in (tmp_path / "build.log").read_text().splitlines()


# -- users and secrets -----------------------------------------------------------------------

PASSWD = "root:x:0:0:root:/root:/bin/sh\ntoor:x:0:0::/:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n"


@pytest.mark.parametrize(
    ("user", "ok"),
    [
        ("", False), ("root", False), ("0", False), ("0:0", False), ("root:x", False),
        ("00", False), ("toor", False), ("toor:app", False),
        ("1000", True), ("1000:0", True), ("app", True), ("app:app", True),
        ("nobody", False),  # not in /etc/passwd: the container would not start
    ],
)  # fmt: skip
def test_user_verdict(user: str, ok: bool) -> None:
    assert user_verdict(user, PASSWD)[0] is ok


def test_user_verdict_without_passwd_names_the_reason() -> None:
    ok, why = user_verdict("app", None)
    assert not ok and "has no /etc/passwd" in why
    assert passwd_uid(PASSWD, "app") == 1000 and passwd_uid(PASSWD, "ghost") is None


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("/bin/sh -c #(nop) ENV API_KEY=abc PLAIN=1", ["API_KEY"]),
        ('/bin/sh -c #(nop) ENV DB_PASSWORD="p w" X=1', ["DB_PASSWORD"]),
        ("/bin/sh -c #(nop) ENV GITHUB_TOKEN ghp_abc", ["GITHUB_TOKEN"]),
        ("|2 NPM_TOKEN=abc VERSION=1 /bin/sh -c npm ci", ["NPM_TOKEN"]),
        ("/bin/sh -c export AWS_SECRET_ACCESS_KEY=zz && make", ["AWS_SECRET_ACCESS_KEY"]),
        ("/bin/sh -c #(nop) ENV API_KEY=", []),
        ("/bin/sh -c #(nop) ENV API_KEY=$API_KEY", []),
        ("/bin/sh -c #(nop) ARG API_KEY", []),
        ("/bin/sh -c #(nop) ENV LOG_LEVEL=debug", []),
    ],
)
def test_history_secret_names(line: str, names: list[str]) -> None:
    assert history_secret_names(line) == names


def test_redact_history_line_keeps_names_and_drops_values() -> None:
    line = '|1 NPM_TOKEN=abc123 /bin/sh -c #(nop) ENV API_KEY="k e y" LOG=debug'
    redacted = redact_history_line(line)
    assert "abc123" not in redacted and "k e y" not in redacted
    assert "NPM_TOKEN=<redacted>" in redacted and "API_KEY=<redacted>" in redacted
    assert "LOG=debug" in redacted
    assert redact_history_line("/bin/sh -c #(nop) ENV GITHUB_TOKEN ghp_x") == (
        "/bin/sh -c #(nop) ENV GITHUB_TOKEN <redacted>"
    )
