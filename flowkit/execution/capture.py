"""A step's stdout and stderr, shown live as always and copied into its log in the store.

Python-level: ``sys.stdout`` and ``sys.stderr`` are wrapped while the step runs, which catches
``print``, ``logging``, warnings, progress bars and what prebuilt steps relay from their child
processes; bytes a C library writes straight to file descriptor 1 or 2 reach the terminal only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from flowkit.store.logs import LiveLog


class _Tee:
    """A text stream that writes to the stream it replaces and to the step's log."""

    def __init__(self, stream: TextIO | None, log: LiveLog) -> None:
        self._stream, self._log = stream, log

    def write(self, text: str) -> int:
        if self._stream is not None:
            self._stream.write(text)
        self._log.write(text.encode("utf-8", "replace"))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def isatty(self) -> bool:  # a progress bar still sees the terminal it draws on
        return self._stream is not None and self._stream.isatty()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, buffer: the real stream's
        return getattr(self._stream, name)


@contextmanager
def capturing(log: LiveLog) -> Iterator[LiveLog]:
    """Copy what the code inside prints into ``log``; the log is closed (made final) on the way out."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)  # type: ignore[assignment]
    try:
        yield log
    finally:
        sys.stdout, sys.stderr = out, err
        log.close()
