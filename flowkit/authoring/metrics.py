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

from flowkit.errors import UsageError

_CURRENT: contextvars.ContextVar["StepLog | None"] = contextvars.ContextVar("flowkit_step_log", default=None)


@attrs.frozen
class Metric:
    """One logged number; ``value`` is text for NaN and infinities, which JSON cannot hold."""

    name: str
    value: float | str
    step: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "step": self.step}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Metric":
        return cls(str(data["name"]), data["value"], data.get("step"))


@attrs.define
class StepLog:
    """What one step execution logged."""

    node: str
    metrics: list[Metric] = attrs.field(factory=list)
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
        raise UsageError(f"step {log.node!r}: log_metric({name!r}) needs a number, got {type(value).__name__}",
                           hint="log a float or int; use log_param for other values") from None
    if math.isnan(number) or math.isinf(number):
        number_out: Any = repr(number)
    else:
        number_out = number
    log.metrics.append(Metric(str(name), number_out, step))


def log_param(name: str, value: Any) -> None:
    """Record a setting (a chosen hyper-parameter, a data version) against the current run and node."""
    log = _CURRENT.get()
    if log is not None:
        log.params[str(name)] = value
