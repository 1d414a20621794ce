"""heroku.yml: the container stack's release phase and process commands.

`release: {command: [...], image: web}` runs on every release, in the image of the named
process (its Dockerfile ENV applies); `run: {web: "..."}` (or `{command: [...], image: ...}`)
replaces that image's CMD on every dyno start. A `release:` without a command runs the
image's own CMD / ENTRYPOINT. Dockerfiles named under `build.docker` are returned so that
their CMD / ENTRYPOINT and RUN lines are scanned too.
"""

from __future__ import annotations

import posixpath
import shlex

from gonogo.detect import _yaml, dockerfile
from gonogo.detect._base import Ctx, Trail
from gonogo.detect.shell import Interp, Loc, SlugView, State

SOURCE = "heroku.yml"
REL = "heroku.yml"


def _text(node: _yaml.Node | None) -> tuple[str, int] | None:
    """A command as shell text (a list is joined as argv) and its line."""
    if isinstance(node, _yaml.Scalar) and node.value:
        return node.value, node.line
    if isinstance(node, _yaml.Seq) and node.items:
        words = [i.value or "" for i in node.items if isinstance(i, _yaml.Scalar)]
        line = node.items[0].line
        if len(words) == 1:
            return words[0], line
        return shlex.join(words), line
    return None


def _command(node: _yaml.Node | None) -> tuple[str, int] | None:
    if isinstance(node, _yaml.Map):
        return _text(node.items.get("command"))
    return _text(node)


def scan(ctx: Ctx) -> list[str]:
    """Scan heroku.yml; return the Dockerfiles it builds (repo-relative)."""
    if not ctx.repo.is_file(REL):
        return []
    text = ctx.repo.read(REL)
    if text is None:
        return []
    try:
        doc = _yaml.parse(text)
    except _yaml.YamlError as exc:
        ctx.repo.problem(REL, f"cannot be parsed: {exc}")
        return []
    if not isinstance(doc, _yaml.Map):
        ctx.repo.problem(REL, "cannot be parsed: the top level is not a mapping")
        return []
    build = doc.items.get("build")
    images: dict[str, str] = {}
    build_args: dict[str, str] = {}
    if isinstance(build, _yaml.Map):
        docker = build.items.get("docker")
        if isinstance(docker, _yaml.Map):
            for proc, ref in docker.items.items():
                path = ref.items.get("dockerfile") if isinstance(ref, _yaml.Map) else ref
                if isinstance(path, _yaml.Scalar) and path.value:
                    rel = posixpath.normpath(path.value)
                    images[proc] = rel
        config = build.items.get("config")
        if isinstance(config, _yaml.Map):
            for key, value in config.items.items():
                if isinstance(value, _yaml.Scalar) and value.value is not None:
                    build_args[key] = value.value

    def image_for(node: _yaml.Node | None, default: str) -> dockerfile.Dockerfile | None:
        name = default
        if isinstance(node, _yaml.Map):
            image = node.items.get("image")
            if isinstance(image, _yaml.Scalar) and image.value:
                name = image.value
        rel = images.get(name) or images.get("web")
        if rel is None or not ctx.repo.is_file(rel):
            return None
        return dockerfile.load(ctx, rel, build_args)

    def run(command: tuple[str, int], df: dockerfile.Dockerfile | None, why: str) -> None:
        text, line = command
        state: State
        if df is not None and df.final is not None:
            state = dockerfile.state_for(ctx, df, df.final)
        else:
            env = ctx.env()
            state = State(SlugView(), "/app", env, set(env), [])
        Interp(ctx).run_text(text, Loc(REL, SOURCE, line, True), state, Trail(why))

    release = doc.items.get("release")
    if release is not None:
        why = "heroku.yml release phase runs on every Heroku release"
        df = image_for(release, "web")
        command = _command(release)
        if command is not None:
            run(command, df, why)
        elif df is not None:
            dockerfile.scan_entry(ctx, df, f"{why} (the image's own start command)")
    runs = doc.items.get("run")
    if isinstance(runs, _yaml.Map):
        for proc, node in runs.items.items():
            command = _command(node)
            if command is None:
                continue
            why = f"heroku.yml run.{proc} runs on every dyno start"
            run(command, image_for(node, proc), why)
    return sorted(set(images.values()))
