"""The ``local`` backend: every step in this process, in topological order."""

from __future__ import annotations

from flowkit.runtime import MissingInput, NodeOutcome, RunContext, execute
from flowkit.store import StoredOutput

from ._progress import Progress
from .base import RunReport

_REMAKE_LIMIT = 3  # a corrupt upstream object is re-made at most this often per node


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
        for _ in range(_REMAKE_LIMIT):
            try:
                return execute(ctx, name, outputs)
            except MissingInput as missing:
                remade = execute(ctx.evolve_forced(missing.node), missing.node, outputs)
                outcomes[missing.node] = remade
                if remade.output is None:
                    return skip(ctx, name, [missing.node])
                outputs[missing.node] = remade.output
        return execute(ctx, name, outputs)


def skip(ctx: RunContext, name: str, blocked: list[str]) -> NodeOutcome:
    """Record a node that cannot run because an upstream node failed."""
    outcome = NodeOutcome(name, "skipped", error=f"upstream failed: {', '.join(blocked)}")
    ctx.record(outcome)
    return outcome
