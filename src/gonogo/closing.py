"""Remote-service clients that may own their httpx client (and then close it)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import httpx


class OwnsHttpClient:
    """`with Client(...) as c:` closes the httpx client only when this object made it; a
    client passed in (tests, connection reuse) belongs to the caller."""

    _client: httpx.Client
    _own_client: bool

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
