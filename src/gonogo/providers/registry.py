"""Provider registry: name -> factory. Adding a provider is one module and one line here."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gonogo.errors import GonogoError

if TYPE_CHECKING:
    from gonogo.context import Context
    from gonogo.providers.base import Provider


def _local(ctx: Context) -> Provider:
    from gonogo.providers.local import LocalProvider

    return LocalProvider(ctx)


def _heroku(ctx: Context) -> Provider:
    from gonogo.providers.heroku import HerokuProvider

    return HerokuProvider(ctx)


PROVIDERS: dict[str, Callable[[Context], Provider]] = {
    "local": _local,
    "heroku": _heroku,
}


def provider_for(ctx: Context, env: str) -> Provider:
    name = ctx.env(env).provider
    try:
        factory = PROVIDERS[name]
    except KeyError:
        raise GonogoError(
            f"environments.{env}.provider = {name!r} is not available yet "
            f"(available: {', '.join(sorted(PROVIDERS))})"
        ) from None
    cached = ctx.providers.get(name)
    if cached is None:
        cached = ctx.providers[name] = factory(ctx)
    return cached
