"""The ledger: append-only, hash-chained record of runs, steps, releases and locks."""

from gonogo.ledger.store import Ledger, LockRow, ReleaseRow, RunRow

__all__ = ["Ledger", "LockRow", "ReleaseRow", "RunRow"]
