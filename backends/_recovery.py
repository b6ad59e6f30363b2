"""What every runner does when a node cannot run: skip it, or make a lost upstream output again."""

from __future__ import annotations

from flowkit.runtime import NodeOutcome, RunContext, execute
from flowkit.store import StoredOutput

REMAKE_LIMIT = 3  # a lost or corrupt upstream object is made again at most this often per node


def skip(ctx: RunContext, name: str, blocked: list[str]) -> NodeOutcome:
    """Record a node that cannot run because an upstream node failed."""
    outcome = NodeOutcome(name, "skipped", error=f"upstream failed: {', '.join(blocked)}")
    ctx.record(outcome)
    return outcome


def remake(ctx: RunContext, node: str, outputs: dict[str, StoredOutput], outcomes: dict[str, NodeOutcome]) -> bool:
    """Run ``node`` again in this process, forced, to replace its lost output; False if that failed."""
    outcome = execute(ctx.evolve_forced(node), node, outputs)
    outcomes[node] = outcome
    if outcome.output is None:
        return False
    outputs[node] = outcome.output
    return True
