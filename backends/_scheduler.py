"""Run ready nodes in parallel, up to ``workers`` at once, on any launcher (fork, Docker).

The scheduler is single-threaded: it decides cache hits itself (cheap), hands nodes that must run
to the launcher, and waits on the jobs' file descriptors. A failed node skips what depends on it;
independent branches run to the end. A job that finds an upstream output lost or corrupt gets that
upstream node made again, by the same launcher, first. Ctrl-C stops every job and re-raises.
"""

from __future__ import annotations

from multiprocessing.connection import wait
from typing import Protocol

from flowkit.runtime import Decision, MissingInput, NodeOutcome, RunContext, decide, execute
from flowkit.store import StoredOutput

from ._progress import Progress
from .base import RunReport
from ._recovery import REMAKE_LIMIT, skip


class Job(Protocol):
    sentinel: int  # a file descriptor that becomes readable when the job ends

    def result(self) -> NodeOutcome: ...

    def kill(self) -> None: ...


class Launcher(Protocol):
    recorded: bool  # True when jobs record their own outcomes in the store (run-step)

    def start(self, ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision) -> Job: ...


def run_parallel(ctx: RunContext, launcher: Launcher, workers: int) -> RunReport:
    graph = ctx.graph
    waiting = {name: set(graph.upstream(name)) for name in graph.order()}
    ready = [name for name in graph.order() if not waiting[name]]
    outputs: dict[str, StoredOutput] = {}
    outcomes: dict[str, NodeOutcome] = {}
    running: dict[int, tuple[str, Job]] = {}
    forced: set[str] = set()       # nodes to make again: their output was lost
    remakes: dict[str, int] = {}
    progress = Progress(len(graph))

    def finished(name: str, outcome: NodeOutcome) -> None:
        outcomes[name] = outcome
        progress.finish(name, outcome.status)
        if outcome.output is not None and outcome.status in ("ran", "cached"):
            outputs[name] = outcome.output
        busy = {n for n, _ in running.values()}
        for down in graph.downstream(name):
            waiting[down].discard(name)
            if not waiting[down] and down not in outcomes and down not in ready and down not in busy:
                ready.append(down)

    def start(name: str) -> None:
        blocked = [up for up in graph.upstream(name) if outcomes[up].status in ("failed", "skipped")]
        if blocked:
            finished(name, skip(ctx, name, blocked))
            return
        run_ctx = ctx.evolve_forced(name) if name in forced else ctx
        forced.discard(name)
        node = graph.nodes[name]
        decision = decide(run_ctx, node, {up: outputs[up].digest for up in node.inputs()})
        if decision.hit is not None:
            finished(name, execute(run_ctx, name, outputs, decision=decision))
            return
        if launcher.recorded and ctx.journal is not None:
            ctx.journal.flush()  # the job's run-step reads its upstream records from the store
        job = launcher.start(run_ctx, name, outputs, decision)
        running[job.sentinel] = (name, job)
        progress.start(name)

    def make_again(name: str, lost: str) -> bool:
        """``name`` found the output of ``lost`` gone or corrupt: run ``lost`` again, then ``name``."""
        remakes[name] = remakes.get(name, 0) + 1
        if remakes[name] > REMAKE_LIMIT:
            return False
        forced.add(lost)
        outputs.pop(lost, None)
        if outcomes.pop(lost, None) is not None:
            progress.done -= 1
        waiting[name] = {lost}
        ready.insert(0, lost)
        return True

    try:
        while ready or running:
            while ready and len(running) < workers:
                start(ready.pop(0))
            if running:
                for sentinel in wait(list(running)):
                    name, job = running.pop(sentinel)  # type: ignore[arg-type]
                    try:
                        outcome = job.result()
                    except MissingInput as missing:
                        if make_again(name, missing.node):
                            continue
                        outcome = skip(ctx, name, [missing.node])
                    if not launcher.recorded:
                        ctx.record(outcome)
                    finished(name, outcome)
    except BaseException:
        for _, job in running.values():
            job.kill()
        raise
    finally:
        progress.close()
    return RunReport(outcomes)
