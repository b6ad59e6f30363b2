"""Node records of one run, written in batches.

An in-process runner records cache hits and finished steps in batches (one file and one index
transaction a second at most, and at the end), which keeps a cached step near a tenth of a
millisecond. Nothing finished is lost to a kill: every step that ran has already written its
key record (with this run's id), so the next run re-uses it and ``cache reindex`` restores its
history. (A writer thread was measured too: no faster, as JSON encoding holds the GIL.)
"""

from __future__ import annotations

import time
from typing import Any

from .store import Store

_BATCH_SECONDS = 1.0


class Journal:
    """Collects node records; ``flush()`` writes what is pending."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self._pending: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    def add(self, record: dict[str, Any]) -> None:
        self._pending.append(record)
        if time.monotonic() - self._last_flush >= _BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.store.write_nodes(self.run_id, self._pending)
            self._pending = []
        self._last_flush = time.monotonic()
