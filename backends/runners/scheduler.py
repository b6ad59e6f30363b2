"""Run a flow's nodes on any launcher: in this process, in forked workers, in containers.

``Schedule`` is the state machine of one run: each node waits (for its upstream nodes), is
ready, running, or done; a node that found an upstream output lost sends that node back to
ready, forced, and waits for it again. A ``.map`` node, once ready, expands: its item nodes
join the schedule (at most ``max_parallel`` of them out at once) and it waits for them, then
gathers their outputs. ``run_nodes`` drives it: it decides cache hits itself
(cheap, no launch), hands the nodes that must run to the launcher, up to ``workers`` at once,
and waits on the jobs' file descriptors. A failed node skips what depends on it; independent
branches run to the end. Ctrl-C stops every job and re-raises.
"""

from __future__ import annotations

import collections
import heapq
from typing import Protocol

from flowkit.errors import FlowDefinitionError, MissingInput
from flowkit.execution import mapping
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
        # (call order, item index): a map's items leave in their order, before later nodes
        self._position = {name: (i, 0) for i, name in enumerate(graph.order())}
        self._upstream = {name: graph.upstream(name) for name in graph.order()}
        self._waiting = {name: set(ups) for name, ups in self._upstream.items()}
        self._downstream: dict[str, list[str]] = {name: [] for name in graph.order()}
        for name in graph.order():  # once here: networkx per finished node costs more than the node
            for up in graph.upstream(name):
                self._downstream[up].append(name)
        self._ready: list[tuple[tuple[int, int], str]] = []
        self._item_of: dict[str, str] = {}  # item node -> its map node
        self._held: dict[str, collections.deque[str]] = {}  # map node -> items held back by max_parallel
        self._out: dict[str, set[str]] = {}  # map node -> its items released and not done
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
        return [up for up in self._upstream[name] if self.outcomes[up].status in ("failed", "skipped")]

    def expand(self, name: str, items: list[tuple[str, list[str]]], max_parallel: int | None) -> None:
        """Running map node ``name`` found its items (name, upstream nodes), whose upstream nodes
        are all done: they join the schedule, and ``name`` waits for them, then gathers."""
        self._stop_running(name)
        order = self._position[name][0]
        self._waiting[name] = {item for item, _ in items}
        self._held[name] = collections.deque()
        self._out[name] = set()
        for index, (item, ups) in enumerate(items, start=1):
            self._position[item] = (order, index)
            self._upstream[item] = ups
            self._waiting[item] = set()
            self._downstream[item] = [name]
            self._item_of[item] = name
            for up in ups:
                self._downstream[up].append(item)
            self._held[name].append(item)
        self._release(name, max_parallel)
        if not items:
            self._queue(name)

    def _release(self, name: str, max_parallel: int | None) -> None:
        """Queue held items of map ``name`` while fewer than ``max_parallel`` are out."""
        held, out = self._held[name], self._out[name]
        while held and (max_parallel is None or len(out) < max_parallel):
            item = held.popleft()
            out.add(item)
            self._queue(item)

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
        owner = self._item_of.get(name)
        if owner is not None and name in self._out[owner]:
            self._out[owner].discard(name)
            spec = self._graph.nodes[owner].map
            self._release(owner, spec.max_parallel if spec else None)
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
    node = ctx.node(name)
    if node.map is not None:
        _map_step(run_ctx, schedule, name, progress)
        return None
    decision = run_ctx.decide(name, {up: schedule.outputs[up].digest for up in node.inputs()})
    if decision.hit is not None:
        _finish(schedule, progress, name, execute(run_ctx, name, schedule.outputs, decision=decision))
        return None
    if launcher.reads_records and ctx.journal is not None:
        ctx.journal.flush()
    progress.start(name)
    return launcher.start(run_ctx, name, schedule.outputs, decision)


def _map_step(ctx: RunContext, schedule: Schedule, name: str, progress: Progress) -> None:
    """A ready map node: expand it into its items once its list is known, or, once they finished,
    gather them (here: it reads records, no launch). A list lost from the store is made again."""
    node = ctx.node(name)
    assert node.map is not None
    try:
        if name in ctx.expansions:
            _finish(schedule, progress, name, execute(ctx, name, schedule.outputs))
            return
        items = mapping.expand(ctx, node, schedule.outputs)  # registered in ctx: a forked worker finds them
    except MissingInput as missing:
        was_done = missing.node in schedule.outcomes
        if schedule.make_again(name, missing.node):
            progress.undo(name, lost_was_done=was_done)
            return
        _finish(schedule, progress, name, skip(ctx, name, [missing.node]))
        return
    except FlowDefinitionError as exc:  # not a list, or a part of it that is not there
        outcome = NodeOutcome(name, "failed", error=str(exc))
        ctx.record(outcome)
        _finish(schedule, progress, name, outcome)
        return
    progress.total += len(items)
    schedule.expand(name, [(item.name, item.inputs()) for item in items], node.map.max_parallel)


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
        elif outcome.status == "ran" and name in ctx.items:  # recorded by its job: the gather counts it fresh
            ctx.fresh.add(name)
    _finish(schedule, progress, name, outcome)


def _finish(schedule: Schedule, progress: Progress, name: str, outcome: NodeOutcome) -> None:
    schedule.done(name, outcome)
    progress.finish(name, outcome.status, outcome.duration)


def skip(ctx: RunContext, name: str, blocked: list[str]) -> NodeOutcome:
    """Record a node that cannot run because an upstream node failed (or its output stayed lost)."""
    outcome = NodeOutcome(name, "skipped", error=f"upstream failed: {', '.join(blocked)}")
    ctx.record(outcome)
    return outcome
