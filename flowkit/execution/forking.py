"""Calling a function in a forked child process: for steps with a timeout, and for the process backend.

A thread cannot be killed; a process can. The child dies with its parent (a killed run must not
leave steps running unseen), calls the function, and sends back what it returned (pickled, dill
where pickle cannot) or what it raised (as text and traceback). Forking carries the flow, its
closures and the parent's imports along, so flows defined anywhere work.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from typing import Any, Callable

from flowkit.authoring.metrics import collecting, current_log
from flowkit.errors import StepFailure, StepRaised, StepTimedOut
from flowkit.store.objects import serialize

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (elsewhere a no-op), then make sure
    the parent did not die before the request was made."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            return
    if os.getppid() != parent:
        os._exit(1)


class ForkedCall:
    """``fn()`` running in a forked child; ``sentinel`` turns readable when it has answered or died."""

    def __init__(self, fn: Callable[[], Any], *, name: str) -> None:
        context = multiprocessing.get_context("fork")
        self._receiver, sender = context.Pipe(duplex=False)
        self._child = context.Process(target=_child, args=(fn, sender, os.getpid(), name))
        self._child.start()
        sender.close()
        self.sentinel = self._receiver.fileno()

    def answered(self, timeout: float | None) -> bool:
        """Wait at most ``timeout`` seconds (None: for ever) for the child's answer."""
        return self._receiver.poll(timeout)

    def result(self) -> Any:
        """What ``fn`` returned; StepRaised for what it raised, StepFailure when the child died."""
        try:
            kind, payload = pickle.loads(self._receiver.recv_bytes())
        except EOFError:
            self._child.join()
            raise StepFailure(f"the step's process died (exit code {self._child.exitcode})") from None
        finally:
            self._receiver.close()
            self._child.join(timeout=5)
        if kind == "raised":
            raise StepRaised(*payload)
        return payload

    def kill(self) -> None:
        self._child.kill()
        self._child.join()
        self._receiver.close()


def _child(fn: Callable[[], Any], sender: Any, parent: int, name: str) -> None:
    die_with_parent(parent)
    try:
        data = serialize(("value", fn()), where=f"step {name!r}")
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as text
        data = pickle.dumps(("raised", (f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)))))
    sender.send_bytes(data)
    sender.close()
    os._exit(0)


def call_with_timeout(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, timeout: float,
                      name: str) -> Any:
    """``fn(*args, **kwargs)`` in a child process, killed (SIGKILL) after ``timeout`` seconds; what
    the step logs there is logged here."""

    def logged_call() -> tuple[Any, Any, Any]:
        with collecting(name) as log:
            value = fn(*args, **kwargs)
        return value, log.metrics, log.params

    call = ForkedCall(logged_call, name=name)
    if not call.answered(timeout):
        call.kill()
        raise StepTimedOut(f"timed out after {timeout:g}s: the step's process was killed")
    value, metrics, params = call.result()
    log = current_log()
    if log is not None:
        log.metrics += metrics
        log.params.update(params)
    return value
