"""What a ``run-step`` process reads of its run from the store: the outputs its node's upstream
nodes recorded, and for a ``.map`` node its items, made again as the scheduler makes them.

A compiled target runs each node (each item of a map, too) in a process of its own; every one of
them expands the map from the same records (``mapping.expand``), so the item an orchestrator
runs as ``train[3]`` is the item a local run calls ``train[3]``, keyed by its content.
"""

from __future__ import annotations

from flowkit.errors import MissingInput, MissingUpstream
from flowkit.execution import mapping
from flowkit.execution.runtime import RunContext
from flowkit.graph.nodes import Node, Ref
from flowkit.store.objects import StoredOutput

OK = ("ran", "cached")  # a record whose output downstream nodes may read


def upstream_outputs(ctx: RunContext, name: str) -> dict[str, StoredOutput]:
    """The outputs this run's upstream nodes recorded, or MissingUpstream naming the first absent one."""
    outputs = {}
    for up in ctx.graph.upstream(name):
        record = ctx.store.read_node(ctx.run_id, up)
        if record is None or record.status not in OK or record.output is None:
            state = "has not run" if record is None else f"is {record.status}"
            raise MissingUpstream(
                f"flow {ctx.flow.name!r}, step {name!r}: upstream step {up!r} {state} in run {ctx.run_id}",
                hint=f"run {up!r} first with the same --run-id and --store",
            )
        outputs[up] = record.output
    return outputs


def finished_items(ctx: RunContext, items: list[Node]) -> dict[str, StoredOutput]:
    """The outputs of the items that succeeded in this run; those that ran here count as fresh
    (the gather is ``ran`` then, as in the scheduler). An item with no record has not finished."""
    outputs = {}
    for item in items:
        record = ctx.store.read_node(ctx.run_id, item.name)
        if record is not None and record.status in OK and record.output is not None:
            outputs[item.name] = record.output
            if record.status == "ran":
                ctx.fresh.add(item.name)
    return outputs


def expand_map(ctx: RunContext, name: str) -> tuple[list[Node], dict[str, StoredOutput]]:
    """Map node ``name``'s items and the outputs they read: its upstream outputs and, for a map
    over another map, that map's items that succeeded (expanded first, the same way).

    Raises MissingUpstream for an upstream record that is absent or an output that no longer
    loads, and FlowDefinitionError when the list is not a list (the map fails then)."""
    node = ctx.graph.nodes[name]
    assert node.map is not None
    outputs = upstream_outputs(ctx, name)
    over = node.args[node.map.param]
    if isinstance(over, Ref) and not over.path and ctx.graph.nodes[over.node].map is not None:
        upstream_items, _ = expand_map(ctx, over.node)
        outputs.update(finished_items(ctx, upstream_items))
    try:
        return mapping.expand(ctx, node, outputs), outputs
    except MissingInput as exc:
        raise MissingUpstream(f"flow {ctx.flow.name!r}, step {name!r}: {exc}",
                              hint=f"re-run step {exc.node!r} in run {ctx.run_id}: its output is gone") from None
