"""Find, read, parse and validate gonogo.toml; every problem becomes a line a person can act on.

Each problem becomes ``gonogo.toml:LINE key.path: what is wrong``; all of them are raised
together as one :class:`~gonogo.errors.ConfigError` (exit 1), with the same facts in
``details["errors"]`` for ``--json``.
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gonogo.config.locate import line_of
from gonogo.config.schema import Config, KeyPath, semantic_errors
from gonogo.errors import ConfigError

__all__ = ["CONFIG_FILE", "find_config", "load_config"]

CONFIG_FILE = "gonogo.toml"

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")
_PY_TUPLE = re.compile(r"\(((?:'[^']*'(?:, )?)+),?\)")
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")
# Pydantic's wording names Python types; say what a TOML author writes instead.
_TOML_TYPE_MESSAGES = {
    "model_type": "Input should be a table",
    "model_attributes_type": "Input should be a table",
    "dict_type": "Input should be a table",
    "list_type": "Input should be an array",
}


def find_config(start: Path) -> Path:
    """The nearest gonogo.toml in ``start`` or one of its parents."""
    here = start.absolute()
    if here.is_file():
        here = here.parent
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_FILE
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_FILE} found in {start} or its parents; "
        "run `gonogo init` or cd into your project"
    )


def load_config(path: Path) -> Config:
    """Read, parse and validate ``path``; raise one ConfigError listing every problem."""
    shown = _display_name(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: cannot read: not UTF-8 text ({exc.reason})") from None

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, message = _toml_error(exc, text)
        problem = f"invalid TOML: {message}"
        raise ConfigError(
            f"{shown}:{line}: {problem}",
            details={"errors": [{"file": shown, "line": line, "path": "", "message": problem}]},
        ) from None

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = _validation_problems(exc, data)
    else:
        problems = semantic_errors(config)
        if not problems:
            return config
    raise _config_error(shown, text, problems)


# -- reporting ---------------------------------------------------------------------------------


def _config_error(shown: str, text: str, problems: list[tuple[KeyPath, str]]) -> ConfigError:
    entries: list[dict[str, object]] = []
    lines: list[str] = []
    located = [(line_of(text, path), n, path, msg) for n, (path, msg) in enumerate(problems)]
    # File order reads naturally; a problem with no line (a missing top-level table) first.
    located.sort(key=lambda item: (item[0] or 0, item[1]))
    for line, _, path, message in located:
        dotted = format_key_path(path)
        where = f"{shown}:{line}" if line is not None else f"{shown}:"
        rendered = f"{where} {dotted}: {message}" if dotted else f"{where} {message}"
        if rendered in lines:
            continue
        lines.append(rendered)
        entries.append({"file": shown, "line": line, "path": dotted, "message": message})
    return ConfigError("\n".join(lines), details={"errors": entries})


def format_key_path(path: KeyPath) -> str:
    """``("environments", "my env", "probes", 1)`` -> ``environments."my env".probes.1``."""
    parts: list[str] = []
    for part in path:
        if isinstance(part, int) or _BARE_KEY.fullmatch(part):
            parts.append(str(part))
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            parts.append(f'"{escaped}"')
    return ".".join(parts)


def _display_name(path: Path) -> str:
    """The path relative to the working directory when it is inside it, else as given."""
    try:
        cwd = Path.cwd()
    except OSError:
        return str(path)
    for candidate, base in ((path.absolute(), cwd), (path.resolve(), cwd.resolve())):
        try:
            return str(candidate.relative_to(base))
        except ValueError:
            continue
    return str(path)


def _toml_error(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, str]:
    """(line, message) from tomllib's error, whose position lives in its text before 3.14."""
    full = str(exc)
    raw = getattr(exc, "msg", None)
    lineno = getattr(exc, "lineno", None)
    colno = getattr(exc, "colno", None)
    match = _TOML_POSITION.search(full)
    if not isinstance(raw, str):
        raw = full[: match.start()] if match else full
    if match and not isinstance(lineno, int):
        if match.group(1):
            lineno, colno = int(match.group(1)), int(match.group(2))
        else:  # "at end of document"
            lineno, colno = max(1, len(text.splitlines())), None
    if not isinstance(lineno, int):
        lineno = 1
    # "Cannot declare ('a', 'b') twice" -> "Cannot declare a.b twice"
    message = _PY_TUPLE.sub(lambda m: ".".join(re.findall(r"'([^']*)'", m.group(1))), raw.strip())
    if isinstance(colno, int) and match and match.group(1):
        message += f" (column {colno})"
    return lineno, message


def _validation_problems(exc: ValidationError, data: dict[str, Any]) -> list[tuple[KeyPath, str]]:
    problems: list[tuple[KeyPath, str]] = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        kind = error["type"]
        path = _user_path(error["loc"], data, missing=kind == "missing")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(path[:-1])
            message = f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"
        elif kind == "missing":
            message = "required key missing"
        else:
            message = _TOML_TYPE_MESSAGES.get(kind) or _clean(error["msg"])
        problems.append((path, message))
    return problems


def _clean(message: str) -> str:
    """Pydantic's message without its prefixes and Python words, e.g. for a too-short table."""
    for prefix in _PYDANTIC_PREFIXES:
        if message.startswith(prefix):
            message = message[len(prefix) :]
    if message.startswith(("Dictionary should", "List should")):
        message = message.replace("Dictionary", "Table", 1).replace("List", "Array", 1)
        message = message.replace(" after validation", "")
    return message


def _user_path(loc: tuple[int | str, ...], data: object, *, missing: bool) -> KeyPath:
    """Pydantic's ``loc`` minus what the user never wrote (union tags, validator names).

    Walks the parsed TOML alongside ``loc``: a string step is kept only if it is a key that
    exists at that point (or is the final, missing key); an int step only if it indexes a list.
    """
    path: list[str | int] = []
    node: object = data
    for k, step in enumerate(loc):
        last = k == len(loc) - 1
        found, child = _child(node, step)
        if found:
            path.append(step)
            node = child
        elif last and missing and isinstance(node, dict) and isinstance(step, str):
            path.append(step)
        # anything else is pydantic bookkeeping ("function-after[...]", "Probe", "[key]"): drop it
    return tuple(path)


def _child(node: object, step: int | str) -> tuple[bool, object]:
    if isinstance(node, dict) and isinstance(step, str) and step in node:
        return True, node[step]
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return True, node[step]
    return False, None


def _allowed_keys(path: KeyPath) -> list[str]:
    """The keys the model at ``path`` accepts (aliases where set), in declaration order."""
    model = _model_at(path)
    if model is None:
        return []
    return [field.alias or name for name, field in model.model_fields.items()]


def _model_at(path: KeyPath) -> type[BaseModel] | None:
    annotation: Any = Config
    for step in path:
        annotation = _strip_optional(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = annotation.model_fields
            field = next(
                (f for name, f in fields.items() if step in (name, f.alias)),
                None,
            )
            if field is None:
                return None
            annotation = field.annotation
            continue
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is list and args:
            annotation = args[0]
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        else:
            return None
    annotation = _strip_optional(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _strip_optional(annotation: Any) -> Any:
    """``Model | None`` -> ``Model``; other annotations unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation
