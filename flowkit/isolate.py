"""Call a step function in a forked child process, so a timeout can stop it for real.

A thread cannot be killed; a process can. Steps with a ``timeout`` run here on every backend:
the child calls the function and sends back the value and what it logged; the parent waits at
most ``timeout`` seconds, then kills the child (SIGKILL) and raises ``StepTimedOut``.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import traceback
from typing import Any, Callable

from ._children import die_with_parent
from .metrics import collecting, current_log
from .store import serialize


class StepTimedOut(Exception):
    """The step ran past its timeout and its process was killed."""


class StepRaised(Exception):
    """The step raised in the child; carries the child's formatted traceback."""

    def __init__(self, error: str, traceback_text: str) -> None:
        super().__init__(error)
        self.error = error
        self.traceback_text = traceback_text


def call_isolated(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, timeout: float,
                  name: str) -> Any:
    """``fn(*args, **kwargs)`` in a child process, killed after ``timeout`` seconds."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(fn, args, kwargs, sender, name, os.getpid()))
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            child.kill()
            raise StepTimedOut(f"timed out after {timeout:g}s: the step's process was killed")
        try:
            kind, payload = pickle.loads(receiver.recv_bytes())
        except EOFError:
            child.join()
            raise StepRaised(f"the step's process died (exit code {child.exitcode})", "") from None
    finally:
        child.join(timeout=5)
        receiver.close()
    if kind == "raised":
        raise StepRaised(*payload)
    value, metrics, params = payload
    log = current_log()
    if log is not None:
        log.metrics += metrics
        log.params.update(params)
    return value


def _child(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], sender: Any, name: str,
           parent: int) -> None:
    die_with_parent(parent)
    try:
        with collecting(name) as log:
            value = fn(*args, **kwargs)
        message = ("value", (value, log.metrics, log.params))
        data = serialize(message, where=f"step {name!r}")
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as text
        data = pickle.dumps(("raised", (f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)))))
    sender.send_bytes(data)
    sender.close()
    os._exit(0)
