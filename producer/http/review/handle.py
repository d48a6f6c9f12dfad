"""The app's ledger, opened on first use by the review desk: importing the app loads no database
code, and a process that never serves the desk never connects to one."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from producer.ledger import Ledger


class LedgerHandle:
    """One `Ledger` per app, opened the first time a desk page needs it (thread-safe)."""

    def __init__(self, url: str | None = None) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._ledger: Ledger | None = None

    def get(self) -> Ledger:
        """The ledger at `url` (default: the ledger's settings, `TRIAGE_DATABASE_URL`)."""
        with self._lock:
            if self._ledger is None:
                from producer.ledger import Ledger

                self._ledger = Ledger.open(self._url)
            return self._ledger

    def close(self) -> None:
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
