"""``python -m flowkit run-step``: run one node of one run against a store (SPEC §7).

Every backend but ``local`` and every compiled target runs steps through this, so a compiled
run, a local run and a resumed run share one cache. Exit codes: 0 ran or cached, 1 the step
raised, 2 usage error, 3 a missing upstream output or a store error.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from .errors import FlowkitError, StoreError
from .run import run_header
from .runtime import MissingInput, NodeOutcome, RunContext, execute
from .store import StoredOutput, open_store

EXIT_MISSING = StoreError.exit_code


class MissingUpstream(StoreError):
    """An upstream node of this run has no usable output in the store."""


def upstream_outputs(ctx: RunContext, name: str) -> dict[str, StoredOutput]:
    """The outputs this run's upstream nodes recorded, or MissingUpstream naming the first absent one."""
    outputs = {}
    for up in ctx.graph.upstream(name):
        record = ctx.store.read_node(ctx.run_id, up)
        if record is None or record.get("status") not in ("ran", "cached") or not record.get("output"):
            state = "has not run" if record is None else f"is {record.get('status')}"
            raise MissingUpstream(
                f"flow {ctx.flow.name!r}, step {name!r}: upstream step {up!r} {state} in run {ctx.run_id}",
                hint=f"run {up!r} first with the same --run-id and --store",
            )
        outputs[up] = StoredOutput.from_json(record["output"])
    return outputs


def run_step(flow_ref: str, name: str, run_id: str, store_uri: str, raw_params: list[str] | None,
             *, retries: bool = True, expect_code: str | None = None, bundle: str | None = None,
             force: bool = False, backend: str = "run-step") -> NodeOutcome:
    """Load the flow, check this node's inputs in the store, then run or reuse it."""
    from .codehash import code_fingerprint
    from .loading import load_flow
    from .params import parse_assignments

    if not run_id or "/" in run_id or run_id in (".", "..") or "\0" in run_id:
        raise FlowkitError(f"run-step: --run-id {run_id!r} cannot name a run folder",
                           hint="use letters, digits and -_.:+ (an orchestrator's run id works)")
    store = open_store(store_uri)
    if bundle:
        from .bundle import activate

        flow_ref = activate(store, bundle, flow_ref)
    flow = load_flow(flow_ref)
    node = flow.graph.node(name)  # an unknown name lists the valid ones
    if expect_code is not None and code_fingerprint(node.step.fn).digest != expect_code:
        raise FlowkitError(
            f"flow {flow.name!r}, step {name!r}: the code here differs from the code that was compiled",
            hint="deploy the compiled version of the flow, or compile again from this code",
        )
    params = flow.resolve_params(parse_assignments(flow.name, raw_params, flow.params))
    ctx = RunContext(flow, params, store, run_id, force_steps=frozenset({name} if force else ()), retries=retries)
    outputs = upstream_outputs(ctx, name)
    store.ensure_run_start(run_id, run_header(flow, params, backend, time.time()))
    try:
        return execute(ctx, name, outputs)
    except MissingInput as exc:
        raise MissingUpstream(f"flow {flow.name!r}, step {name!r}: {exc}",
                              hint=f"re-run step {exc.node!r} in run {run_id}: its output is gone") from None


def report(outcome: NodeOutcome) -> int:
    """Print one line (and the traceback of a failure); return the exit code."""
    if outcome.status == "failed":
        print(f"step {outcome.node!r} failed: {outcome.error}", file=sys.stderr)
        if outcome.traceback:
            print(outcome.traceback.rstrip(), file=sys.stderr)
        return 1
    digest = outcome.output.digest[:12] if outcome.output else "-"
    print(f"step {outcome.node!r} {outcome.status} in {outcome.duration:.3f}s, output {digest}")
    return 0


def main_args(args: Any) -> int:
    return report(run_step(args.flow, args.step, args.run_id, args.store, args.params, retries=not args.no_retries,
                           expect_code=args.expect_code, bundle=args.bundle, force=args.force))
