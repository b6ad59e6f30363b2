"""The ``@step`` decorator and its options.

A step is a plain function plus frozen options. Called outside a flow it is the plain function,
so steps stay unit-testable; called while a flow body is being traced it records a node and
returns a handle (see ``graph/builder.py``).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import re
from typing import Any, Callable, Iterator, Mapping, Protocol

import attrs

from flowkit.errors import FlowDefinitionError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T)?\s*$")


def parse_duration(value: float | int | str | None, *, where: str = "timeout") -> float | None:
    """Seconds from ``30``, ``"30s"``, ``"10m"`` or ``"2h"``; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise FlowDefinitionError(f"{where}: expected seconds or a duration like '10m', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise FlowDefinitionError(
                f"{where}: cannot read duration {value!r}",
                hint="use seconds (30) or a number with a unit: '30s', '10m', '2h'",
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise FlowDefinitionError(f"{where}: duration must be positive, got {value!r}")
    return seconds


def _delay(value: float | int | str | None) -> float:
    """``retry_delay`` may be zero, unlike a timeout."""
    if value in (None, 0, 0.0, "0"):
        return 0.0
    return parse_duration(value, where="retry_delay") or 0.0


def _check_memory(value: str | None) -> str | None:
    if value is not None and not _MEMORY.match(str(value)):
        raise FlowDefinitionError(
            f"Resources.memory: cannot read {value!r}", hint="use Kubernetes units: '512Mi', '4Gi'"
        )
    return None if value is None else str(value)


@attrs.frozen
class Resources:
    """What a step asks of the machine that runs it (container limits, Kubernetes requests)."""

    cpu: float | None = None
    memory: str | None = attrs.field(default=None, converter=_check_memory)
    gpu: int = 0

    def memory_bytes(self) -> int | None:
        """Memory as bytes, for Docker's ``mem_limit``."""
        if self.memory is None:
            return None
        number, unit = _MEMORY.match(self.memory).groups()  # type: ignore[union-attr]
        powers = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                  "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, None: 1}
        return int(float(number) * powers[unit])


def _resources(value: Any) -> Resources:
    if value is None:
        return Resources()
    if isinstance(value, dict):
        return Resources(**value)
    if not isinstance(value, Resources):
        raise FlowDefinitionError(f"resources: expected fk.Resources(cpu=..., memory=..., gpu=...), got {value!r}")
    return value


def _env(value: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    items = dict(value or {})
    for key in items:
        if not isinstance(key, str) or not key:
            raise FlowDefinitionError(f"env: variable names must be non-empty strings, got {key!r}")
    return tuple(sorted((k, str(v)) for k, v in items.items()))


def _non_negative_int(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FlowDefinitionError(f"{name}: expected a whole number >= 0, got {value!r}")
    return check


@attrs.frozen
class StepOptions:
    """Options of one step; only ``version``, ``image`` and ``env`` enter the cache key."""

    name: str | None = None
    version: str | None = attrs.field(default=None, converter=attrs.converters.optional(str))
    cache: bool = True
    retries: int = attrs.field(default=0, validator=_non_negative_int("retries"))
    retry_delay: float = attrs.field(default=0.0, converter=lambda v: _delay(v))
    timeout: float | None = attrs.field(default=None, converter=lambda v: parse_duration(v))
    image: str | None = None
    resources: Resources = attrs.field(factory=Resources, converter=lambda v: _resources(v))
    env: tuple[tuple[str, str], ...] = attrs.field(factory=tuple, converter=_env)


_OPTION_NAMES = tuple(f.name for f in attrs.fields(StepOptions))


class Recorder(Protocol):
    """What turns a step call into a node while a flow body is traced (``graph.builder.Builder``)."""

    def record(self, step: "Step", args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


_RECORDER: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar("flowkit_recorder", default=None)


@contextlib.contextmanager
def recording(recorder: Recorder) -> Iterator[None]:
    """Step calls inside the block are recorded by ``recorder`` instead of running."""
    token = _RECORDER.set(recorder)
    try:
        yield
    finally:
        _RECORDER.reset(token)


class Step:
    """A decorated function: the plain function outside a flow, a node recorder inside one."""

    def __init__(self, fn: Callable[..., Any], options: StepOptions) -> None:
        self.fn = fn
        self.opts = options
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        """The function's signature, computed once: binding arguments is on the hot path."""
        return inspect.signature(self.fn)

    @functools.cached_property
    def _plain_names(self) -> tuple[tuple[str, ...], int] | None:
        """For a signature of plain positional-or-keyword parameters: their names, and how many
        lead without a default; None for anything else (``*args``, keyword-only, ...)."""
        params = list(self.signature.parameters.values())
        if any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in params):
            return None
        required = sum(p.default is p.empty for p in params)
        if any(p.default is p.empty for p in params[required:]):
            return None
        return tuple(p.name for p in params), required

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name, as ``signature.bind`` gives them (its errors included), with a
        fast path for positional calls of plain functions: a 10,000-node flow binds 10,000 calls."""
        plain = self._plain_names
        if plain is not None and not kwargs and plain[1] <= len(args) <= len(plain[0]):
            return dict(zip(plain[0], args))
        return dict(self.signature.bind(*args, **kwargs).arguments)

    @property
    def name(self) -> str:
        """The base node name: the ``name`` option, else the function's name."""
        return self.opts.name or self.fn.__name__

    def options(self, **changes: Any) -> "Step":
        """A copy of this step with changed options, e.g. ``train.options(name="train_small")``."""
        unknown = sorted(set(changes) - set(_OPTION_NAMES))
        if unknown:
            raise FlowDefinitionError(
                f"step {self.name!r}: unknown option(s) {', '.join(unknown)}",
                hint=f"valid options: {', '.join(_OPTION_NAMES)}",
            )
        return Step(self.fn, attrs.evolve(self.opts, **changes))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        recorder = _RECORDER.get()
        if recorder is None:
            return self.fn(*args, **kwargs)
        return recorder.record(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<flowkit step {self.name}>"


def step(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a step: ``@step`` bare or ``@step(retries=2, timeout="10m", ...)``."""
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise FlowDefinitionError(
            f"@step: unknown option(s) {', '.join(unknown)}", hint=f"valid options: {', '.join(_OPTION_NAMES)}"
        )
    opts = StepOptions(**options)
    if fn is None:
        return lambda f: Step(_checked_function(f), opts)
    return Step(_checked_function(fn), opts)


def _checked_function(fn: Any) -> Callable[..., Any]:
    if isinstance(fn, Step):
        raise FlowDefinitionError(f"step {fn.name!r} is decorated with @step twice")
    if not callable(fn):
        raise FlowDefinitionError(f"@step expects a function, got {type(fn).__name__}")
    return fn
