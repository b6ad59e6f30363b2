"""``Flow.run``: start a run in the store, hand it to a runner, record how it ended."""

from __future__ import annotations

import secrets
import time
from typing import Any, Protocol, runtime_checkable

import attrs

from flowkit.errors import FlowDefinitionError, RunCancelled
from flowkit.execution.runtime import NodeOutcome, RunContext, loader, value_of
from flowkit.graph.nodes import FlowGraph, FlowSpec
from flowkit.store.journal import Journal
from flowkit.store.records import RunEnd, RunHeader
from flowkit.store.store import Store, open_store


def new_run_id() -> str:
    """Sortable by start time, unique without coordination."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def run_header(graph: FlowGraph, params: dict[str, Any], backend: str, started: float) -> RunHeader:
    """The run.json record: who, what, with which parameters."""
    return RunHeader(graph.flow_name, params, graph.order(), backend, started)


@attrs.define
class RunReport:
    """What a runner returns: one outcome per node it reached, in the order they finished."""

    outcomes: dict[str, NodeOutcome]


@runtime_checkable
class Runner(Protocol):
    """Executes a run's nodes, each through ``runtime.execute``; the backends' runners are ones.
    Defined here, by the code that calls it, so execution never imports a backend."""

    def run(self, ctx: RunContext) -> RunReport: ...


class Run:
    """The outcome of one run: status, per-step outcomes, and lazy access to outputs."""

    def __init__(self, flow: FlowSpec, run_id: str, params: dict[str, Any], store: Store,
                 steps: dict[str, NodeOutcome], status: str, graph: FlowGraph | None = None) -> None:
        self.flow = flow
        self.graph = graph if graph is not None else flow.graph  # the graph that ran
        self.id = run_id
        self.params = params
        self.store = store
        self.steps = steps
        self.status = status

    @property
    def failed_steps(self) -> list[NodeOutcome]:
        return [outcome for outcome in self.steps.values() if outcome.status == "failed"]

    def output(self, name: str) -> Any:
        """Load one node's output from the store (its digest is checked)."""
        outcome = self.steps.get(name)
        if outcome is None:
            self.graph.node(name)  # raises with the valid names
        if outcome is None or outcome.output is None:
            raise FlowDefinitionError(f"run {self.id}: step {name!r} has no output ({outcome and outcome.status})")
        return self.store.load(outcome.output)

    @property
    def result(self) -> Any:
        """The flow's return value, loaded from the store."""
        spec = self.graph.result
        if spec is None or self.status != "succeeded":
            return None
        outputs = {name: o.output for name, o in self.steps.items() if o.output is not None}
        return value_of(spec, self.params, loader(self.store, outputs))

    def __repr__(self) -> str:
        return f"<flowkit run {self.id} {self.flow.name} {self.status}>"


def run_flow(flow: FlowSpec, params: dict[str, Any], runner: Runner, *, backend: str, force: bool = False,
             force_steps: tuple[str, ...] = (), store: Any = None) -> Run:
    """Record the run, execute it with ``runner`` (the backend named ``backend``), record its end.
    ``params`` are resolved already."""
    graph = flow.graph
    for name in force_steps:
        graph.node(name)
    the_store = open_store(store)
    run_id = new_run_id()
    journal = Journal(the_store, run_id)
    ctx = RunContext(flow, params, the_store, run_id, force, frozenset(force_steps), journal=journal, graph=graph)
    started = time.time()
    the_store.write_run_start(ctx.run_id, run_header(graph, params, backend, started))
    try:
        report = runner.run(ctx)
    except KeyboardInterrupt:
        report = None
    finally:
        journal.close()
    if report is None:
        the_store.write_run_end(ctx.run_id, RunEnd("cancelled", time.time()))
        raise RunCancelled(f"run {ctx.run_id} of flow {flow.name!r} was cancelled",
                           hint="finished steps are kept: the next run re-uses them")
    ok = len(report.outcomes) == len(graph) and all(o.status in ("ran", "cached") for o in report.outcomes.values())
    status = "succeeded" if ok else "failed"
    the_store.write_run_end(ctx.run_id, RunEnd(status, time.time()))
    return Run(flow, ctx.run_id, params, the_store, report.outcomes, status, graph)
