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


def parse_duration(value: float | int | str | None, *, where: str = "option 'timeout'") -> float | None:
    """Seconds from ``30``, ``"30s"``, ``"10m"`` or ``"2h"``; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FlowDefinitionError(f"{where}: expected seconds or a duration like '10m', got {value!r}",
                                  hint="use seconds (30) or a number with a unit: '30s', '10m', '2h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match:
            raise FlowDefinitionError(
                f"{where}: cannot read duration {value!r}",
                hint="use seconds (30) or a number with a unit: '30s', '10m', '2h'",
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not seconds > 0 or seconds == float("inf"):  # NaN compares false, so it lands here too
        raise FlowDefinitionError(f"{where}: duration must be positive and finite, got {value!r}")
    return seconds


def _delay(value: float | int | str | None) -> float:
    """``retry_delay`` may be zero, unlike a timeout."""
    if value in (None, 0, 0.0, "0") and not isinstance(value, bool):
        return 0.0
    return parse_duration(value, where="option 'retry_delay'") or 0.0


def _memory_text(value: Any) -> str | None:
    """Memory as its text; checked when a step takes the resources, so the error can name the step."""
    return None if value is None else str(value)


def _check_resources(res: "Resources") -> "Resources":
    """The quantities a runner or target reads, checked: memory in Kubernetes units, cpu a number,
    gpu a whole number (a wrong one would otherwise surface as a traceback in a backend)."""
    if res.memory is not None and not _MEMORY.match(res.memory):
        raise FlowDefinitionError(f"option 'resources': cannot read memory {res.memory!r}",
                                  hint="use a number with Kubernetes units: '512Mi', '4Gi' (or bytes: '1000000')")
    if res.cpu is not None and (isinstance(res.cpu, bool) or not isinstance(res.cpu, (int, float))):
        raise FlowDefinitionError(f"option 'resources': cpu must be a number of CPUs, got {res.cpu!r}",
                                  hint="e.g. fk.Resources(cpu=2) or cpu=0.5")
    if isinstance(res.gpu, bool) or not isinstance(res.gpu, int) or res.gpu < 0:
        raise FlowDefinitionError(f"option 'resources': gpu must be a whole number >= 0, got {res.gpu!r}")
    return res


@attrs.frozen
class Resources:
    """What a step asks of the machine that runs it (container limits, Kubernetes requests)."""

    cpu: float | None = None
    memory: str | None = attrs.field(default=None, converter=_memory_text)
    gpu: int = 0

    def memory_bytes(self) -> int | None:
        """Memory as bytes, for Docker's ``mem_limit``."""
        if self.memory is None:
            return None
        _check_resources(self)  # a Resources made outside a step is checked here, not when made
        number, unit = _MEMORY.match(self.memory).groups()  # type: ignore[union-attr]
        powers = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                  "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, None: 1}
        return int(float(number) * powers[unit])


def _resources(value: Any) -> Resources:
    if value is None:
        return Resources()
    if isinstance(value, dict):
        try:
            value = Resources(**value)
        except TypeError as exc:  # an unknown field
            raise FlowDefinitionError(f"option 'resources': {exc}", hint="fields: cpu, memory, gpu") from None
    if not isinstance(value, Resources):
        raise FlowDefinitionError(f"option 'resources': expected fk.Resources(cpu=..., memory=..., gpu=...), got {value!r}")
    return _check_resources(value)


# What an environment variable's value may be given as. A number has one text that every reader
# parses back (str(3) == "3"); a bool ("True"? "true"? "1"?) and None (usually a missing value,
# e.g. os.environ.get) have none, and containers have no environment form: those are refused.
_ENV_VALUE_TYPES = (str, int, float)


def _env(value: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """``env`` as sorted ``(NAME, text)`` pairs: str values as they are, int and float through str()."""
    if value is None:
        return ()
    if isinstance(value, tuple) and all(isinstance(pair, tuple) and len(pair) == 2 for pair in value):
        value = dict(value)  # the stored form, given back by attrs.evolve (Step.options)
    if not isinstance(value, Mapping):
        raise FlowDefinitionError(f"option 'env': expected a dict of NAME: value, got {type(value).__name__}",
                                  hint='e.g. env={"MODE": "fast", "THREADS": 4}')
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise FlowDefinitionError(f"option 'env': variable names must be non-empty strings, got {key!r}")
        if isinstance(item, bool) or not isinstance(item, _ENV_VALUE_TYPES):
            raise FlowDefinitionError(
                f"option 'env': {key!r} is {item!r} ({type(item).__name__}); a variable's value is text",
                hint=f"write the text the program reads, e.g. {{{key!r}: {_env_example(item)!r}}} "
                     "(str, int and float values are taken as str(value))",
            )
        if "\0" in str(item) or "\0" in key:
            raise FlowDefinitionError(f"option 'env': {key!r} holds a NUL character, which no environment can carry")
    return tuple(sorted((k, str(v)) for k, v in value.items()))


def _env_example(item: Any) -> str:
    """What a refused env value probably meant, for the hint."""
    if isinstance(item, bool):
        return "1" if item else "0"
    return "" if item is None else "..."


def _non_negative_int(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FlowDefinitionError(f"option {name!r}: expected a whole number >= 0, got {value!r}")
    return check


def _max_parallel(_inst: Any, _attr: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise FlowDefinitionError(f"option 'max_parallel': expected a whole number >= 1 or None, got {value!r}",
                                  hint="max_parallel bounds how many items of a .map run at once")


def _ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise FlowDefinitionError(f"option 'min_success_ratio': expected a fraction from 0 to 1, got {value!r}",
                                  hint="e.g. min_success_ratio=0.8: the map succeeds while 80% of its items do")
    return float(value)


@attrs.frozen
class StepOptions:
    """Options of one step; only ``version``, ``image`` and ``env`` enter the cache key.
    ``max_parallel`` and ``min_success_ratio`` (Flyte's name) apply to ``step.map``."""

    name: str | None = None
    version: str | None = attrs.field(default=None, converter=attrs.converters.optional(str))
    cache: bool = True
    retries: int = attrs.field(default=0, validator=_non_negative_int("retries"))
    retry_delay: float = attrs.field(default=0.0, converter=lambda v: _delay(v))
    timeout: float | None = attrs.field(default=None, converter=lambda v: parse_duration(v))
    image: str | None = None
    resources: Resources = attrs.field(factory=Resources, converter=lambda v: _resources(v))
    env: tuple[tuple[str, str], ...] = attrs.field(factory=tuple, converter=_env)
    max_parallel: int | None = attrs.field(default=None, validator=_max_parallel)
    min_success_ratio: float = attrs.field(default=1.0, converter=_ratio)


_OPTION_NAMES = tuple(f.name for f in attrs.fields(StepOptions))


class Recorder(Protocol):
    """What turns a step call into a node while a flow body is traced (``graph.builder.Builder``)."""

    def record(self, step: "Step", args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    def record_map(self, step: "Step", items: Any, fixed: dict[str, Any]) -> Any: ...


_RECORDER: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar("flowkit_recorder", default=None)


@contextlib.contextmanager
def recording(recorder: Recorder) -> Iterator[None]:
    """Step calls inside the block are recorded by ``recorder`` instead of running."""
    token = _RECORDER.set(recorder)
    try:
        yield
    finally:
        _RECORDER.reset(token)


def current_recorder() -> Recorder | None:
    """The recorder of the flow body being traced now; None outside one (a step then just runs)."""
    return _RECORDER.get()


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
        name = changes.get("name") or self.name
        return Step(self.fn, _located(self.fn, name, lambda: attrs.evolve(self.opts, **changes)))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        recorder = _RECORDER.get()
        if recorder is None:
            return self.fn(*args, **kwargs)
        return recorder.record(self, args, kwargs)

    def map(self, items: Any, /, **fixed: Any) -> Any:
        """Call the step once per item of a list known only at run time (an upstream output, a part
        of one, or a list parameter), the ``fixed`` arguments the same for every item; inside a flow
        a handle to the list of results, in input order. Outside a flow: a plain map."""
        recorder = _RECORDER.get()
        if recorder is None:
            return [self.fn(item, **fixed) for item in items]
        return recorder.record_map(self, items, fixed)

    def __repr__(self) -> str:
        return f"<flowkit step {self.name}>"


def step(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a step: ``@step`` bare or ``@step(retries=2, timeout="10m", ...)``.

    The options are checked when the decorator meets its function, so that an error can name
    the step and the line of its ``@step``.
    """
    if fn is None:
        return lambda f: _make_step(f, options)
    return _make_step(fn, options)


def _make_step(fn: Any, options: dict[str, Any]) -> Step:
    fn = _checked_function(fn)
    name = options.get("name") or getattr(fn, "__name__", "step")
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise FlowDefinitionError(f"step {name!r}{definition_site(fn)}: unknown option(s) {', '.join(unknown)}",
                                  hint=f"valid options: {', '.join(_OPTION_NAMES)}")
    return Step(fn, _located(fn, name, lambda: StepOptions(**options)))


def _located(fn: Callable[..., Any], name: Any, make: Callable[[], StepOptions]) -> StepOptions:
    """``make()``, with an option error prefixed by the step's name and where its ``@step`` is."""
    try:
        return make()
    except FlowDefinitionError as exc:
        raise FlowDefinitionError(f"step {name!r}{definition_site(fn)}: {exc.message}", hint=exc.hint) from None


def definition_site(fn: Callable[..., Any]) -> str:
    """`` at path/to/file.py:LINE`` of the function's ``@step`` line (a decorated function's code
    starts at its first decorator), or nothing for a callable without code of its own."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    return f" at {code.co_filename}:{code.co_firstlineno}"


def _checked_function(fn: Any) -> Callable[..., Any]:
    if isinstance(fn, Step):
        raise FlowDefinitionError(f"step {fn.name!r} is decorated with @step twice")
    if not callable(fn):
        raise FlowDefinitionError(f"@step expects a function, got {type(fn).__name__}")
    return fn
