"""gonogo config validate: load gonogo.toml and report every problem with its line."""

from __future__ import annotations

from gonogo.context import Context
from gonogo.result import Result


def validate(ctx: Context) -> Result:
    envs = ", ".join(
        f"{n} ({e.provider}{', protected' if e.protected else ''})"
        for n, e in ctx.config.environments.items()
    )
    return Result(
        0,
        f"{ctx.config_path.name} is valid: environments {envs}",
        {
            "command": "config validate",
            "file": str(ctx.config_path),
            "valid": True,
            "config": ctx.config.model_dump(mode="json", by_alias=True),
        },
    )
