"""One node of one run against a store: what ``python -m flowkit run-step`` does once the flow
is loaded (SPEC §7; ``cli.run`` loads it).

Every backend but ``local`` and every compiled target runs steps through this, so a compiled
run, a local run and a resumed run share one cache. Exit codes: 0 ran or cached, 1 the step
raised, 2 usage error, 3 a missing upstream output or a store error.

A ``.map`` node is three kinds of call (issue #10): ``map_items`` lists its items (what an
orchestrator fans out over), ``run_step(..., item=N)`` runs item N, and ``run_step`` on the map
node itself gathers the items' outputs, whatever they did, applying ``min_success_ratio``.
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from flowkit.errors import FlowDefinitionError, MissingInput, MissingUpstream, UsageError
from flowkit.execution.run import run_header
from flowkit.execution.run_inputs import expand_map, finished_items, upstream_outputs
from flowkit.execution.runtime import NodeOutcome, RunContext, execute
from flowkit.graph.nodes import FlowSpec, Node
from flowkit.store.objects import StoredOutput
from flowkit.store.store import Store

__all__ = ["ItemList", "map_items", "run_step", "upstream_outputs"]


@attrs.frozen
class ItemList:
    """A map's item indices in one run; ``failure`` (recorded as the map's outcome) when its
    list is not a list, so there is nothing to fan out over."""

    indices: list[int]
    failure: NodeOutcome | None = None


def run_step(flow: FlowSpec, name: str, run_id: str, store: Store, params: dict[str, Any], *,
             item: int | None = None, retries: bool = True, force: bool = False,
             backend: str = "run-step") -> NodeOutcome:
    """Check this node's inputs in the store, then run or reuse it; ``params`` are resolved.
    On a map node: run item ``item``, or with no item gather the items recorded in this run."""
    node = flow.graph.node(name)
    ctx = RunContext(flow, params, store, run_id, force_steps=frozenset({name} if force else ()), retries=retries)
    if node.map is None:
        if item is not None:
            raise UsageError(f"flow {flow.name!r}, step {name!r}: --item {item} needs a .map step, and {name!r} is not one",
                             hint=f"drop --item to run {name!r}, or name the .map step")
        return _execute(ctx, name, upstream_outputs(ctx, name), backend)
    try:
        items, outputs = expand_map(ctx, name)
    except FlowDefinitionError as exc:
        return _map_failed(ctx, node, exc, backend)
    if item is None:
        outputs.update(finished_items(ctx, items))
        return _execute(ctx, name, outputs, backend)
    if not 0 <= item < len(items):
        raise UsageError(
            f"flow {flow.name!r}, step {name!r}: --item {item} is out of range: the map has {len(items)} items "
            f"in run {run_id}", hint="run the indices that --items prints")
    return _execute(ctx, items[item].name, outputs, backend)


def map_items(flow: FlowSpec, name: str, run_id: str, store: Store, params: dict[str, Any], *,
              backend: str = "run-step") -> ItemList:
    """The indices of map ``name``'s items once its list is recorded in this run; runs nothing."""
    node = flow.graph.node(name)
    if node.map is None:
        raise UsageError(f"flow {flow.name!r}, step {name!r}: --items lists the items of a .map step, "
                         f"and {name!r} is not one", hint="name a step called with .map(...)")
    ctx = RunContext(flow, params, store, run_id)
    try:
        items, _ = expand_map(ctx, name)
    except FlowDefinitionError as exc:
        return ItemList([], _map_failed(ctx, node, exc, backend))
    return ItemList(list(range(len(items))))


def _execute(ctx: RunContext, name: str, outputs: dict[str, StoredOutput], backend: str) -> NodeOutcome:
    ctx.store.ensure_run_start(ctx.run_id, run_header(ctx.graph, ctx.params, backend, time.time()))
    try:
        return execute(ctx, name, outputs)
    except MissingInput as exc:
        raise MissingUpstream(f"flow {ctx.flow.name!r}, step {name!r}: {exc}",
                              hint=f"re-run step {exc.node!r} in run {ctx.run_id}: its output is gone") from None


def _map_failed(ctx: RunContext, node: Node, exc: FlowDefinitionError, backend: str) -> NodeOutcome:
    """A list that is not a list fails the map in this run's history, as the scheduler records it."""
    ctx.store.ensure_run_start(ctx.run_id, run_header(ctx.graph, ctx.params, backend, time.time()))
    outcome = NodeOutcome(node.name, "failed", started=time.time(), error=str(exc))
    ctx.record(outcome)
    return outcome
