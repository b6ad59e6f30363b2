"""One status line on a terminal: steps done / total, cached, failed, and what is running; or,
where the command line's output goes to a file (a CI log), one plain line per finished step."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Rewrites one line of stderr while a run goes on. Not on a terminal: one line per finished
    step when ``lines`` (``flowkit run``), else silent (``Flow.run`` in a script or a notebook)."""

    def __init__(self, total: int, stream: TextIO | None = None, *, lines: bool = False) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.lines = lines and not self.enabled
        self.done = self.cached = self.failed = 0
        self.running: list[str] = []
        self._width = 0

    def start(self, name: str) -> None:
        self.running.append(name)
        self._draw()

    def finish(self, name: str, status: str, duration: float = 0.0) -> None:
        if name in self.running:
            self.running.remove(name)
        self.done += 1
        self.cached += status == "cached"
        self.failed += status in ("failed", "skipped")
        if self.lines:
            took = f"  {duration:.2f}s" if status in ("ran", "failed") else ""
            self.stream.write(f"[{self.done}/{self.total}] {status:<7} {name}{took}\n")
            self.stream.flush()
        self._draw()

    def undo(self, name: str, *, lost_was_done: bool) -> None:
        """``name`` stopped to wait for a lost upstream output, which counts as not done again."""
        if name in self.running:
            self.running.remove(name)
        self.done -= lost_was_done
        self._draw()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()

    def _draw(self) -> None:
        if not self.enabled:
            return
        running = ", ".join(self.running[:3]) + (f" +{len(self.running) - 3}" if len(self.running) > 3 else "")
        line = f"[{self.done}/{self.total}] {self.cached} cached, {self.failed} failed" + (
            f" | running: {running}" if running else "")
        line = line[:120]
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)
