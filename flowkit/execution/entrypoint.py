"""One node of one run against a store: what ``python -m flowkit run-step`` does once the flow
is loaded (SPEC §7; ``cli.run`` loads it).

Every backend but ``local`` and every compiled target runs steps through this, so a compiled
run, a local run and a resumed run share one cache. Exit codes: 0 ran or cached, 1 the step
raised, 2 usage error, 3 a missing upstream output or a store error.
"""

from __future__ import annotations

import time
from typing import Any

from flowkit.errors import MissingInput, MissingUpstream
from flowkit.execution.run import run_header
from flowkit.execution.runtime import NodeOutcome, RunContext, execute
from flowkit.graph.nodes import FlowSpec
from flowkit.store.objects import StoredOutput
from flowkit.store.store import Store


def upstream_outputs(ctx: RunContext, name: str) -> dict[str, StoredOutput]:
    """The outputs this run's upstream nodes recorded, or MissingUpstream naming the first absent one."""
    outputs = {}
    for up in ctx.graph.upstream(name):
        record = ctx.store.read_node(ctx.run_id, up)
        if record is None or record.status not in ("ran", "cached") or record.output is None:
            state = "has not run" if record is None else f"is {record.status}"
            raise MissingUpstream(
                f"flow {ctx.flow.name!r}, step {name!r}: upstream step {up!r} {state} in run {ctx.run_id}",
                hint=f"run {up!r} first with the same --run-id and --store",
            )
        outputs[up] = record.output
    return outputs


def run_step(flow: FlowSpec, name: str, run_id: str, store: Store, params: dict[str, Any], *,
             retries: bool = True, force: bool = False, backend: str = "run-step") -> NodeOutcome:
    """Check this node's inputs in the store, then run or reuse it; ``params`` are resolved."""
    ctx = RunContext(flow, params, store, run_id, force_steps=frozenset({name} if force else ()), retries=retries)
    outputs = upstream_outputs(ctx, name)
    store.ensure_run_start(run_id, run_header(ctx.graph, params, backend, time.time()))
    try:
        return execute(ctx, name, outputs)
    except MissingInput as exc:
        raise MissingUpstream(f"flow {flow.name!r}, step {name!r}: {exc}",
                              hint=f"re-run step {exc.node!r} in run {run_id}: its output is gone") from None
