"""``log_metric`` / ``log_param``: record numbers and settings against the running step.

The runtime opens a ``StepLog`` around each step call; outside a run (a step called as a plain
function in a unit test) logging is a no-op, so steps stay testable.
"""

from __future__ import annotations

import contextvars
import math
from contextlib import contextmanager
from typing import Any, Iterator

import attrs

from .errors import FlowkitError

_CURRENT: contextvars.ContextVar["StepLog | None"] = contextvars.ContextVar("flowkit_step_log", default=None)


@attrs.define
class StepLog:
    """What one step execution logged."""

    node: str
    metrics: list[dict[str, Any]] = attrs.field(factory=list)
    params: dict[str, Any] = attrs.field(factory=dict)


@contextmanager
def collecting(node: str) -> Iterator[StepLog]:
    """Collect what the code inside logs."""
    log = StepLog(node)
    token = _CURRENT.set(log)
    try:
        yield log
    finally:
        _CURRENT.reset(token)


def current_log() -> StepLog | None:
    """The log of the step running in this context, if any."""
    return _CURRENT.get()


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Record a number (accuracy, loss at ``step``) against the current run and node."""
    log = _CURRENT.get()
    if log is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FlowkitError(f"step {log.node!r}: log_metric({name!r}) needs a number, got {type(value).__name__}",
                           hint="log a float or int; use log_param for other values") from None
    if math.isnan(number) or math.isinf(number):
        number_out: Any = repr(number)
    else:
        number_out = number
    log.metrics.append({"name": str(name), "value": number_out, "step": step})


def log_param(name: str, value: Any) -> None:
    """Record a setting (a chosen hyper-parameter, a data version) against the current run and node."""
    log = _CURRENT.get()
    if log is not None:
        log.params[str(name)] = value
