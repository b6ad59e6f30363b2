"""Run a flow's nodes on any launcher: in this process, in forked workers, in containers.

``Schedule`` is the state machine of one run: each node waits (for its upstream nodes), is
ready, running, or done; a node that found an upstream output lost sends that node back to
ready, forced, and waits for it again. ``run_nodes`` drives it: it decides cache hits itself
(cheap, no launch), hands the nodes that must run to the launcher, up to ``workers`` at once,
and waits on the jobs' file descriptors. A failed node skips what depends on it; independent
branches run to the end. Ctrl-C stops every job and re-raises.
"""

from __future__ import annotations

import heapq
from typing import Protocol

from flowkit.errors import MissingInput
from flowkit.execution.run import RunReport, progress_lines
from flowkit.execution.runtime import NodeOutcome, RunContext, execute
from flowkit.execution.verdict import Decision
from flowkit.graph.nodes import FlowGraph
from flowkit.store.objects import StoredOutput

from flowkit.backends.runners.progress import Progress

REMAKE_LIMIT = 3  # a lost or corrupt upstream object is made again at most this often per node


class Job(Protocol):
    sentinel: int | None  # a file descriptor that turns readable when the job ends; None: it runs in result()

    def result(self) -> NodeOutcome:
        """The node's outcome; MissingInput when an upstream output is lost."""

    def kill(self) -> None: ...


class Launcher(Protocol):
    records: bool  # jobs record their own outcomes in the store
    reads_records: bool  # jobs read this run's records from the store (run-step): write pending ones first

    def start(self, ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision) -> Job: ...


class Schedule:
    """Which nodes of one run wait, are ready, run or are done; ready nodes leave in call order."""

    def __init__(self, graph: FlowGraph) -> None:
        self._graph = graph
        self._position = {name: i for i, name in enumerate(graph.order())}
        self._waiting = {name: set(graph.upstream(name)) for name in graph.order()}
        self._downstream: dict[str, list[str]] = {name: [] for name in graph.order()}
        for name in graph.order():  # once here: networkx per finished node costs more than the node
            for up in graph.upstream(name):
                self._downstream[up].append(name)
        self._ready: list[tuple[int, str]] = []
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._forced: set[str] = set()  # nodes to make again: their output was lost
        self._remakes: dict[str, int] = {}
        self.outcomes: dict[str, NodeOutcome] = {}
        self.outputs: dict[str, StoredOutput] = {}
        for name in graph.order():
            if not self._waiting[name]:
                self._queue(name)

    def _queue(self, name: str) -> None:
        heapq.heappush(self._ready, (self._position[name], name))
        self._queued.add(name)

    def unfinished(self) -> bool:
        return bool(self._ready or self._running)

    def take(self) -> str | None:
        """The first ready node in call order, now running; None when none is ready."""
        if not self._ready:
            return None
        _, name = heapq.heappop(self._ready)
        self._queued.discard(name)
        self._running.add(name)
        return name

    def failed_upstream(self, name: str) -> list[str]:
        return [up for up in self._graph.upstream(name) if self.outcomes[up].status in ("failed", "skipped")]

    def forced(self, name: str) -> bool:
        """True for a node being made again because a downstream node found its output lost."""
        return name in self._forced

    def done(self, name: str, outcome: NodeOutcome) -> None:
        """A running node finished: record it and release what waited for it."""
        self._stop_running(name)
        self._forced.discard(name)
        self.outcomes[name] = outcome
        if outcome.output is not None and outcome.status in ("ran", "cached"):
            self.outputs[name] = outcome.output
        for down in self._downstream[name]:
            waiting = self._waiting[down]
            if name in waiting:
                waiting.discard(name)
                if not waiting and down not in self.outcomes and down not in self._running:
                    self._queue(down)

    def make_again(self, name: str, lost: str) -> bool:
        """Running node ``name`` found the output of ``lost`` gone: ``lost`` runs again, forced, and
        ``name`` waits for it. False, changing nothing, once ``name`` asked too often."""
        if self._remakes.get(name, 0) >= REMAKE_LIMIT:
            return False
        self._stop_running(name)
        self._remakes[name] = self._remakes.get(name, 0) + 1
        self._waiting[name] = {lost}
        self.outputs.pop(lost, None)
        self.outcomes.pop(lost, None)
        if lost not in self._queued and lost not in self._running:
            self._forced.add(lost)
            self._queue(lost)
        return True

    def _stop_running(self, name: str) -> None:
        if name not in self._running:
            raise RuntimeError(f"node {name!r} is not running")
        self._running.discard(name)


def run_nodes(ctx: RunContext, launcher: Launcher, workers: int) -> RunReport:
    """Every node of the run, at most ``workers`` launched at once."""
    schedule = Schedule(ctx.graph)
    progress = Progress(len(ctx.graph), lines=progress_lines.get())
    running: dict[int, tuple[str, Job]] = {}
    try:
        while schedule.unfinished():
            while len(running) < workers and (name := schedule.take()) is not None:
                job = _start(ctx, schedule, launcher, name, progress)
                if job is not None and job.sentinel is None:
                    _collect(ctx, schedule, launcher, name, job, progress)
                elif job is not None:
                    running[job.sentinel] = (name, job)
            for sentinel in _wait(list(running)) if running else ():
                name, job = running.pop(sentinel)  # type: ignore[arg-type]
                _collect(ctx, schedule, launcher, name, job, progress)
    except BaseException:
        for _, job in running.values():
            job.kill()
        raise
    finally:
        progress.close()
    return RunReport(schedule.outcomes)


def _wait(sentinels: list[int]) -> list[int]:
    """The sentinels that turned readable; multiprocessing is imported only by runs that launch
    jobs in other processes (20 modules a local run need not load)."""
    from multiprocessing.connection import wait

    return wait(sentinels)  # type: ignore[return-value]


def _start(ctx: RunContext, schedule: Schedule, launcher: Launcher, name: str, progress: Progress) -> Job | None:
    """Skip the node, record its cache hit, or launch it (the job, then)."""
    blocked = schedule.failed_upstream(name)
    if blocked:
        _finish(schedule, progress, name, skip(ctx, name, blocked))
        return None
    run_ctx = ctx.evolve_forced(name) if schedule.forced(name) else ctx
    node = ctx.graph.nodes[name]
    decision = run_ctx.decide(name, {up: schedule.outputs[up].digest for up in node.inputs()})
    if decision.hit is not None:
        _finish(schedule, progress, name, execute(run_ctx, name, schedule.outputs, decision=decision))
        return None
    if launcher.reads_records and ctx.journal is not None:
        ctx.journal.flush()
    progress.start(name)
    return launcher.start(run_ctx, name, schedule.outputs, decision)


def _collect(ctx: RunContext, schedule: Schedule, launcher: Launcher, name: str, job: Job,
             progress: Progress) -> None:
    try:
        outcome = job.result()
    except MissingInput as missing:
        was_done = missing.node in schedule.outcomes
        if schedule.make_again(name, missing.node):
            progress.undo(name, lost_was_done=was_done)
            return
        outcome = skip(ctx, name, [missing.node])
    else:
        if not launcher.records:
            ctx.record(outcome)
    _finish(schedule, progress, name, outcome)


def _finish(schedule: Schedule, progress: Progress, name: str, outcome: NodeOutcome) -> None:
    schedule.done(name, outcome)
    progress.finish(name, outcome.status, outcome.duration)


def skip(ctx: RunContext, name: str, blocked: list[str]) -> NodeOutcome:
    """Record a node that cannot run because an upstream node failed (or its output stayed lost)."""
    outcome = NodeOutcome(name, "skipped", error=f"upstream failed: {', '.join(blocked)}")
    ctx.record(outcome)
    return outcome
