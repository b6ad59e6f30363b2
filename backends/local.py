"""The ``local`` backend: every step in this process, in topological order."""

from __future__ import annotations

from flowkit.runtime import MissingInput, NodeOutcome, RunContext, execute
from flowkit.store import StoredOutput

from ._progress import Progress
from ._recovery import REMAKE_LIMIT, remake, skip
from .base import RunReport


class LocalRunner:
    """Runs nodes one by one; a failure skips what depends on it and lets other branches finish."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = 1

    def run(self, ctx: RunContext) -> RunReport:
        graph = ctx.graph
        outputs: dict[str, StoredOutput] = {}
        outcomes: dict[str, NodeOutcome] = {}
        progress = Progress(len(graph))
        try:
            for name in graph.order():
                blocked = [up for up in graph.upstream(name) if outcomes[up].status in ("failed", "skipped")]
                if blocked:
                    outcomes[name] = skip(ctx, name, blocked)
                else:
                    progress.start(name)
                    outcomes[name] = self._execute(ctx, name, outputs, outcomes)
                    if outcomes[name].output is not None:
                        outputs[name] = outcomes[name].output
                progress.finish(name, outcomes[name].status)
        finally:
            progress.close()
        return RunReport(outcomes)

    def _execute(self, ctx: RunContext, name: str, outputs: dict[str, StoredOutput],
                 outcomes: dict[str, NodeOutcome]) -> NodeOutcome:
        for _ in range(REMAKE_LIMIT):
            try:
                return execute(ctx, name, outputs)
            except MissingInput as missing:
                if not remake(ctx, missing.node, outputs, outcomes):
                    return skip(ctx, name, [missing.node])
        return execute(ctx, name, outputs)
