"""``Flow.run``: start a run in the store, hand it to a runner, record how it ended.

However it ends, it says so in the store: succeeded or failed; cancelled by Ctrl-C or by
SIGTERM (how Airflow, Kubernetes and CI stop a task); failed with the error when the store
cannot be written (a full disk). Only SIGKILL leaves no end, and the run header names this
process, so the run then shows as interrupted.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import secrets
import signal
import sys
import threading
import time
from typing import Any, Iterator, Protocol, runtime_checkable

import attrs

from flowkit.errors import CorruptObject, FlowDefinitionError, MissingInput, RunCancelled, StoreError
from flowkit.execution.runtime import NodeOutcome, RunContext, execute, loader, value_of
from flowkit.graph.nodes import FlowGraph, FlowSpec, Node
from flowkit.keys.values import one_pass
from flowkit.store.journal import Journal
from flowkit.store.liveness import this_process
from flowkit.store.records import RunEnd, RunHeader
from flowkit.store.store import Store, open_store

REMAKE_LIMIT = 3  # how often a lost output is made again for one load before giving up


def new_run_id() -> str:
    """Sortable by start time, unique without coordination."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def run_header(graph: FlowGraph, params: dict[str, Any], backend: str, started: float, *,
               this: bool = False) -> RunHeader:
    """The run.json record: who, what, with which parameters; ``this``: run by this process (named
    in the record, so a run left without an end is known to be interrupted once it is gone)."""
    pid, host, pid_start = this_process() if this else (None, None, None)
    return RunHeader(graph.flow_name, params, graph.order(), backend, started, pid, host, pid_start)


# True while the command line runs a flow: a runner then prints a plain line per finished step
# where its output is not a terminal (CI logs); ``Flow.run`` in a script or notebook stays quiet.
progress_lines: contextvars.ContextVar[bool] = contextvars.ContextVar("flowkit_progress_lines", default=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop like Ctrl-C (every runner already does), and say so in the run's end."""


class Sigterm:
    """SIGTERM while a run goes: ``Terminated`` in the main thread, raised again every quarter of a
    second until the run takes it (``taken``). A raise can land where Python swallows exceptions
    (an at-fork hook, while a step's process is being started), and the run would go on as if it
    had never been stopped. The thread that insists is started beforehand: a signal handler must
    not start threads (it may run while threading's own locks are held)."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.taken = threading.Event()
        self._thread = threading.Thread(target=self._insist, name="flowkit-sigterm", daemon=True)
        self._thread.start()

    def handle(self, signum: int, frame: Any) -> None:
        if self.taken.is_set():
            return  # the run is recording its end: let it
        self.requested.set()
        raise Terminated()

    def take(self) -> None:
        self.taken.set()

    def close(self) -> None:
        self.taken.set()
        self.requested.set()

    def _insist(self) -> None:
        self.requested.wait()
        while not self.taken.wait(0.25):
            os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[Sigterm | None]:
    """Turn SIGTERM into ``Terminated`` while a run goes, where nobody else handles it (in the main
    thread, with the default action)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield None
        return
    sigterm = Sigterm()
    signal.signal(signal.SIGTERM, sigterm.handle)
    try:
        yield sigterm
    finally:
        sigterm.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


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
        self.items: dict[str, Node] = {}  # the item nodes of its maps, as the run made them
        self.expansions: dict[str, list[str]] = {}

    @property
    def failed_steps(self) -> list[NodeOutcome]:
        return [outcome for outcome in self.steps.values() if outcome.status == "failed"]

    def output(self, name: str) -> Any:
        """Load one node's output from the store (its digest is checked); an output found corrupt or
        gone is made again, in this run."""
        outcome = self.steps.get(name)
        if outcome is None:
            self.graph.node(name)  # raises with the valid names
        if outcome is None or outcome.output is None:
            raise FlowDefinitionError(f"run {self.id}: step {name!r} has no output ({outcome and outcome.status})")
        for _ in range(REMAKE_LIMIT):
            try:
                return self.store.files.load_output(self.steps[name].output)
            except CorruptObject:
                self._remake(name)
        return self.store.files.load_output(self.steps[name].output)

    @property
    def result(self) -> Any:
        """The flow's return value, loaded from the store; outputs found corrupt or gone are made again."""
        spec = self.graph.result
        if spec is None or self.status != "succeeded":
            return None
        for attempt in range(REMAKE_LIMIT + 1):
            outputs = {name: o.output for name, o in self.steps.items() if o.output is not None}
            try:
                return value_of(spec, self.params, loader(self.store, outputs))
            except MissingInput as missing:
                if attempt == REMAKE_LIMIT:
                    raise self._lost(missing.node, missing.reason) from None
                self._remake(missing.node)
        return None  # not reached

    def _remake(self, name: str, depth: int = 0) -> None:
        """Make node ``name`` again in this run, here (its upstream first, where theirs are lost too),
        and record it: its output was found corrupt or gone."""
        ctx = RunContext(self.flow, self.params, self.store, self.id, force_steps=frozenset({name}), graph=self.graph,
                         items=self.items, expansions=self.expansions)
        for _ in range(REMAKE_LIMIT):
            outputs = {up: o.output for up, o in self.steps.items() if o.output is not None}
            try:
                outcome = execute(ctx, name, outputs)
            except MissingInput as missing:
                if depth >= len(self.graph):
                    raise self._lost(name, str(missing)) from None
                self._remake(missing.node, depth + 1)
                continue
            if outcome.status not in ("ran", "cached") or outcome.output is None:  # a map's gather may be all cached
                raise self._lost(name, f"making it again failed: {outcome.error}")
            self.steps[name] = outcome
            return
        raise self._lost(name, "its inputs kept going missing")

    def _lost(self, name: str, why: str) -> StoreError:
        return StoreError(f"run {self.id} of flow {self.flow.name!r}: the output of step {name!r} is lost ({why})",
                          hint=f"run the flow again: it makes {name!r} anew; `flowkit cache verify` checks the store")

    def __repr__(self) -> str:
        return f"<flowkit run {self.id} {self.flow.name} {self.status}>"


@one_pass()  # the graph check and the keys share each large value's hash
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
    the_store.write_run_start(ctx.run_id, run_header(graph, params, backend, started, this=True))
    children = _children()
    with stop_on_sigterm() as sigterm:
        try:
            journal.start()
            report = runner.run(ctx)
            journal.close()
        except KeyboardInterrupt as stop:
            if sigterm is not None:
                sigterm.take()
            _stop_children(children)
            _close(journal)
            why = "stopped by SIGTERM" if isinstance(stop, Terminated) else None
            _end(the_store, ctx.run_id, RunEnd("cancelled", time.time(), why))
            cancelled = RunCancelled(f"run {ctx.run_id} of flow {flow.name!r} was cancelled" + (f" ({why})" if why else ""),
                                     hint="finished steps are kept: the next run re-uses them")
            if isinstance(stop, Terminated):
                cancelled.exit_code = 128 + signal.SIGTERM  # what a shell reports for a process SIGTERM stopped
            raise cancelled from None
        except BaseException as exc:  # a full disk, a bug: the run ended, and says how
            if sigterm is not None:
                sigterm.take()
            _stop_children(children)
            _close(journal)
            _end(the_store, ctx.run_id, RunEnd("failed", time.time(), _one_line(exc)))
            raise
    # every node of the graph ran or was cached; the items of a map count through it (some of
    # them may fail while its min_success_ratio tolerates it)
    ok = all(name in report.outcomes and report.outcomes[name].status in ("ran", "cached") for name in graph.nodes)
    status = "succeeded" if ok else "failed"
    the_store.write_run_end(ctx.run_id, RunEnd(status, time.time()))
    run = Run(flow, ctx.run_id, params, the_store, report.outcomes, status, graph)
    run.items, run.expansions = ctx.items, ctx.expansions
    return run


def _children() -> set[int]:
    """The pids of this process's multiprocessing children now (none if it never imported it)."""
    multiprocessing = sys.modules.get("multiprocessing")
    return {child.pid for child in multiprocessing.active_children()} if multiprocessing else set()


def _stop_children(before: set[int]) -> None:
    """Kill the step processes this run started that still run: a stop that came while one was
    being forked finds it unknown to its runner, and the interpreter would wait for it at exit."""
    multiprocessing = sys.modules.get("multiprocessing")
    for child in multiprocessing.active_children() if multiprocessing else ():
        if child.pid not in before:
            child.kill()
            child.join(timeout=5)


def _close(journal: Journal) -> None:
    """Write the pending node records if the store takes them (the key records have the steps anyway)."""
    try:
        journal.close()
    except StoreError:
        pass


def _end(store: Store, run_id: str, end: RunEnd) -> None:
    """Record the run's end if the store takes it; if not (a full disk), its process being gone
    shows it as interrupted."""
    try:
        store.write_run_end(run_id, end)
    except StoreError:
        pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
