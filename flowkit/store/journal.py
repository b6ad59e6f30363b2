"""Node records of one run, written in batches: by a background thread once a second, and at the end.

An in-process runner records cache hits and finished steps in batches (one file and one index
transaction each), which keeps a cached step near a tenth of a millisecond, while the thread
keeps the history current during a long step: ``flowkit runs`` from another terminal is at most
a second behind. Nothing finished is lost to a kill: every step that ran has already written its
key record (with this run's id), so the next run re-uses it and ``cache reindex`` restores it.

The same thread touches the run's heartbeat every ``liveness.HEARTBEAT_SECONDS``, so a run seen
from another host shows as alive while it lives. A batch that cannot be written (a full disk)
stays pending and is tried again; ``close()`` raises if it still cannot be written.
"""

from __future__ import annotations

import threading
import time

from flowkit.errors import StoreError
from flowkit.store import layout, liveness
from flowkit.store.index import Index
from flowkit.store.records import NodeRecord
from flowkit.store.store import Store

_BATCH_SECONDS = 1.0


class Journal:
    """Collects node records; ``close()`` writes what is pending and stops the writer."""

    def __init__(self, store: Store, run_id: str, seconds: float = _BATCH_SECONDS) -> None:
        self.store = store
        self.run_id = run_id
        self.seconds = seconds
        self._pending: list[NodeRecord] = []
        self._lock = threading.Lock()   # guards _pending
        self._write_lock = threading.Lock()  # one batch at a time, so the index keeps record order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer now (it also starts with the first record): the run's heartbeat."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._every_second, name="flowkit-journal", daemon=True)
            self._thread.start()

    def add(self, record: NodeRecord) -> None:
        with self._lock:
            self._pending.append(record)
        if self._thread is None:
            self.start()

    def flush(self, index: Index | None = None) -> None:
        """Write what is pending now (``index``: the calling thread's own connection). A batch that
        cannot be written goes back to the front of the queue before the error is raised."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self.store.write_nodes(self.run_id, batch, index=index)
            except StoreError:
                with self._lock:
                    self._pending = batch + self._pending
                raise

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.flush()

    def _every_second(self) -> None:
        index = None  # a SQLite connection belongs to one thread: the writer has its own
        beat = time.monotonic()
        try:
            while not self._stop.wait(self.seconds):
                try:
                    if self._pending:
                        index = index or self.store.open_index()  # opened only if a run lasts
                        self.flush(index)
                    if time.monotonic() - beat >= liveness.HEARTBEAT_SECONDS:
                        beat = time.monotonic()
                        self.store.fs.touch(layout.run_heartbeat_path(self.run_id))
                except StoreError:
                    pass  # a full disk: the batch stays pending, tried again next time and at close()
        finally:
            if index is not None:
                index.close()
