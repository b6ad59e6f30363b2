"""The ``process`` backend: ready steps run at once in forked worker processes.

Each step that must run gets a fresh forked child (the flow, its closures and the parent's
imports come along, so flows defined anywhere work); the child computes and stores the output
and sends its outcome back through a pipe. Cache hits are decided in the parent, with no fork.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import traceback
from typing import Any

import attrs

from flowkit._children import die_with_parent
from flowkit.runtime import Decision, MissingInput, NodeOutcome, RunContext, execute
from flowkit.store import StoredOutput

from ._scheduler import run_parallel
from .base import RunReport


class _Collect:
    """A journal for the child: its outcome travels back to the parent, which records it."""

    def add(self, record: dict[str, Any]) -> None:
        pass


class ForkJob:
    def __init__(self, ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision) -> None:
        self.name = name
        context = multiprocessing.get_context("fork")
        self._receiver, sender = context.Pipe(duplex=False)
        self._child = context.Process(target=_child, args=(ctx, name, outputs, decision, sender, os.getpid()))
        self._child.start()
        sender.close()
        self.sentinel = self._receiver.fileno()

    def result(self) -> NodeOutcome:
        try:
            kind, payload = pickle.loads(self._receiver.recv_bytes())
        except EOFError:
            self._child.join()
            return NodeOutcome(self.name, "failed", error=f"worker process died (exit code {self._child.exitcode})")
        finally:
            self._receiver.close()
        self._child.join()
        if kind == "outcome":
            return payload
        if kind == "missing":
            raise MissingInput(*payload)
        return NodeOutcome(self.name, "failed", error=payload[0], traceback=payload[1])

    def kill(self) -> None:
        self._child.kill()
        self._child.join()


def _child(ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision, sender: Any,
           parent: int) -> None:
    die_with_parent(parent)
    try:
        ctx.store.after_fork()
        child_ctx = attrs.evolve(ctx, journal=_Collect())
        message: tuple[str, Any] = ("outcome", execute(child_ctx, name, outputs, decision=decision))
    except MissingInput as missing:
        message = ("missing", (missing.node, str(missing)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as the step's failure
        message = ("error", (f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc))))
    sender.send_bytes(pickle.dumps(message))
    sender.close()
    os._exit(0)


class _ForkLauncher:
    recorded = False

    def start(self, ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision) -> ForkJob:
        return ForkJob(ctx, name, outputs, decision)


class ProcessRunner:
    """Up to ``workers`` steps at once (default: the number of cores)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    def run(self, ctx: RunContext) -> RunReport:
        return run_parallel(ctx, _ForkLauncher(), self.workers)
