"""What each step printed, kept beside its run (``flowkit logs``): appended live while the step
runs, so ``--follow`` and a killed step still show it, then moved to its final name in one rename.

A log is what a person reads, not an input of anything: it carries no digest, and a step that
printed nothing leaves no file (a cached chain of 10,000 steps writes none).
"""

from __future__ import annotations

import os
from typing import IO

import attrs

from flowkit.store import layout
from flowkit.store.fs import FileSystem


@attrs.frozen
class StepLog:
    """A step's log as read back: the text, and whether the step finished writing it."""

    text: str
    complete: bool


class LiveLog:
    """The live log of one step execution: opened at the first write, appended unbuffered with
    O_APPEND, so a forked child (a step with a timeout) appends to the same file."""

    def __init__(self, fs: FileSystem, run_id: str, node: str) -> None:
        self._fs, self._run_id, self._node = fs, run_id, node
        self._fd: int | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._fd is None:
            path = self._fs.local(layout.log_path(self._run_id, self._node, live=True))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, data)

    def close(self) -> None:
        """The step ended: the live file takes its final name (nothing is written if it printed nothing).
        Tried even when this process wrote nothing: a forked child (a timeout) may have."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._fs.move(layout.log_path(self._run_id, self._node, live=True), layout.log_path(self._run_id, self._node))


class Logs:
    """The logs of a store's runs."""

    def __init__(self, fs: FileSystem) -> None:
        self.fs = fs

    def live(self, run_id: str, node: str) -> LiveLog:
        return LiveLog(self.fs, run_id, node)

    def read(self, run_id: str, node: str, offset: int = 0) -> StepLog | None:
        """The log from byte ``offset`` on; None when the step printed nothing (or has not yet)."""
        for live in (False, True):
            data = self._read_from(layout.log_path(run_id, node, live=live), offset)
            if data is not None:
                return StepLog(data.decode("utf-8", "replace"), complete=not live)
        return None

    def _read_from(self, path: str, offset: int) -> bytes | None:
        if offset == 0:
            return self.fs.read(path)
        try:
            handle: IO[bytes] = open(self.fs.local(path), "rb")
        except (FileNotFoundError, NotADirectoryError):
            return None
        with handle:
            handle.seek(offset)
            return handle.read()
