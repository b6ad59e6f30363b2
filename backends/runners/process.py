"""The ``process`` backend: ready steps run at once in forked worker processes.

Each step that must run gets a fresh forked child (``execution.forking``); the child computes and
stores the output and sends its outcome back, and this process records it. Cache hits are
decided here, with no fork.
"""

from __future__ import annotations

import functools
import os

import attrs

from flowkit.errors import MissingInput, StepFailure
from flowkit.execution.forking import ForkedCall
from flowkit.execution.run import RunReport
from flowkit.execution.runtime import NodeOutcome, RunContext, execute
from flowkit.execution.verdict import Decision
from flowkit.store.objects import StoredOutput
from flowkit.store.records import NodeRecord

from flowkit.backends.runners.scheduler import run_nodes


class _Discard:
    """The child's node log: its outcome travels back to the parent, which records it."""

    def add(self, record: NodeRecord) -> None:
        pass

    def flush(self) -> None:
        pass


def _in_child(ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision) -> object:
    ctx.store.after_fork()
    try:
        return execute(attrs.evolve(ctx, journal=_Discard()), name, outputs, decision=decision)
    except MissingInput as missing:
        return missing  # a value, not a failure: the parent makes the lost input again


class ForkJob:
    def __init__(self, ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision) -> None:
        self.name = name
        self._call = ForkedCall(functools.partial(_in_child, ctx, name, outputs, decision), name=name)
        self.sentinel = self._call.sentinel

    def result(self) -> NodeOutcome:
        try:
            value = self._call.result()
        except StepFailure as exc:
            return NodeOutcome(self.name, "failed", error=exc.error, traceback=exc.traceback_text or None)
        if isinstance(value, MissingInput):
            raise value
        return value

    def kill(self) -> None:
        self._call.kill()


class ForkLauncher:
    records = False
    reads_records = False

    def start(self, ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision) -> ForkJob:
        return ForkJob(ctx, name, outputs, decision)


class ProcessRunner:
    """Up to ``workers`` steps at once (default: the number of cores)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    def run(self, ctx: RunContext) -> RunReport:
        return run_nodes(ctx, ForkLauncher(), self.workers)
