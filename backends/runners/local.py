"""The ``local`` backend: every step in this process, in topological order (the scheduler with one
worker whose jobs run when their result is asked for)."""

from __future__ import annotations

from flowkit.execution.run import RunReport
from flowkit.execution.runtime import NodeOutcome, RunContext, execute
from flowkit.execution.verdict import Decision
from flowkit.store.objects import StoredOutput

from flowkit.backends.runners.scheduler import run_nodes


class InlineJob:
    """A node run here, at ``result()``: it records its own outcome, like every ``execute``."""

    sentinel = None

    def __init__(self, ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision) -> None:
        self._args = (ctx, name, outputs, decision)

    def result(self) -> NodeOutcome:
        ctx, name, outputs, decision = self._args
        return execute(ctx, name, outputs, decision=decision)

    def kill(self) -> None:
        pass


class InlineLauncher:
    records = True
    reads_records = False

    def start(self, ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision) -> InlineJob:
        return InlineJob(ctx, name, outputs, decision)


class LocalRunner:
    """Runs nodes one by one; a failure skips what depends on it and lets other branches finish."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = 1

    def run(self, ctx: RunContext) -> RunReport:
        return run_nodes(ctx, InlineLauncher(), self.workers)
