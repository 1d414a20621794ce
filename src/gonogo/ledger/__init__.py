"""The ledger: append-only, hash-chained record of runs, steps, releases and locks."""

from gonogo.ledger.store import Ledger, ReleaseRow, RunRow

__all__ = ["Ledger", "ReleaseRow", "RunRow"]
