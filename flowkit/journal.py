"""Node records of one run, written at once or in batches.

An in-process runner records cache hits and finished steps in batches (one file and one index
transaction a second at most), which keeps a cached step well under a tenth of a millisecond.
Nothing finished is lost to a kill: every step that ran has already written its key record
(with this run's id), so the next run re-uses it and ``cache reindex`` restores its history.
"""

from __future__ import annotations

import time
from typing import Any

from .store import Store


class Journal:
    """Collects node records; ``flush()`` writes what is pending."""

    def __init__(self, store: Store, run_id: str, *, batch_seconds: float | None = 1.0) -> None:
        self.store = store
        self.run_id = run_id
        self.batch_seconds = batch_seconds
        self._pending: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    def add(self, record: dict[str, Any]) -> None:
        if self.batch_seconds is None:
            self.store.write_node(self.run_id, record)
            return
        self._pending.append(record)
        if time.monotonic() - self._last_flush >= self.batch_seconds:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.store.write_nodes(self.run_id, self._pending)
            self._pending = []
        self._last_flush = time.monotonic()
