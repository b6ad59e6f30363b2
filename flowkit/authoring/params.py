"""Flow parameters: the schema read from the flow signature, and checking values against it."""

from __future__ import annotations

import inspect
import json
import os
import reprlib
from typing import Any, Callable

import attrs

from flowkit.authoring.files import Dir, File
from flowkit.errors import FlowDefinitionError, ParameterError, UsageError

RESERVED = ("backend", "workers", "force", "force_steps", "store")
# `-p NAME=<this>` means "the flow's own default": for targets that cannot write some defaults
# (Argo evaluates "{{" in every value and has no escape for it)
FLOW_DEFAULT = "<flowkit: the flow's default>"
_TYPES: dict[Any, str] = {int: "int", float: "float", str: "str", bool: "bool", list: "list", dict: "dict",
                          File: "file", Dir: "dir"}
# Parameters that are data: given as a path (JSON: a string), keyed by the content found there
DATA_TYPES: dict[str, type[File] | type[Dir]] = {"file": File, "dir": Dir}
_NO_DEFAULT = inspect.Parameter.empty
# Deeper values are refused with a clear error: fingerprinting, JSON and the compiled targets
# all recurse, and Python's recursion limit would otherwise end the run with a RecursionError.
MAX_DEPTH = 100
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 4, 80, 80


def check_workers(workers: Any, *, what: str = "workers") -> int | None:
    """``workers`` as a run option: None (one per core) or a whole number >= 1.

    Zero or less would never start a step (the scheduler waits for a free slot forever), and a
    silent "0 means all cores" hides a typo, so both are refused; the CLI and ``Flow.run`` share this.
    """
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"{what} must be a whole number of at least 1, got {workers!r}",
                         hint=f"leave {what} out to run one step per core ({os.cpu_count() or 1} here)")
    return workers


@attrs.frozen
class ParamSpec:
    """One flow parameter: name, JSON type (or "any"), default."""

    name: str
    type: str
    default: Any = _NO_DEFAULT

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT

    def to_json(self) -> dict[str, Any]:
        """The JSON-schema-like description used by the CLI, compiled targets and the REST API."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        if not self.required:
            out["default"] = self.default
        return out


def _type_name(flow: str, param: inspect.Parameter, namespace: dict[str, Any]) -> str:
    annotation = param.annotation
    if isinstance(annotation, str):  # from __future__ import annotations
        annotation = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict}.get(
            annotation.split("[")[0], annotation
        )
        if isinstance(annotation, str):
            annotation = _data_class(annotation, namespace) or annotation
    origin = getattr(annotation, "__origin__", annotation)  # list[int] -> list
    if origin is _NO_DEFAULT:
        return _TYPES.get(type(param.default), "any") if param.default is not None else "any"
    if origin in _TYPES:
        return _TYPES[origin]
    raise FlowDefinitionError(
        f"flow {flow!r}: parameter {param.name!r} has annotation {annotation!r}",
        hint="flow parameters are JSON values: annotate with int, float, str, bool, list or dict; "
             "or fk.File / fk.Dir for data given by its path",
    )


def _data_class(text: str, namespace: dict[str, Any]) -> type[File] | type[Dir] | None:
    """``"fk.File"`` / ``"File"`` / ``"flowkit.Dir"`` as written under ``from __future__ import
    annotations``, looked up (not evaluated) in the flow module's globals."""
    first, *rest = text.strip().split(".")
    if (rest[-1] if rest else first) not in ("File", "Dir"):
        return None
    found: Any = namespace.get(first)
    for name in rest:
        found = getattr(found, name, None)
    return found if found in (File, Dir) else None


def schema_of(flow: str, fn: Callable[..., Any]) -> tuple[ParamSpec, ...]:
    """Parameter specs from the flow function's signature, checked for reserved names and JSON defaults."""
    specs = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise FlowDefinitionError(f"flow {flow!r}: *args/**kwargs cannot be flow parameters",
                                      hint="name each parameter")
        if param.name in RESERVED:
            raise FlowDefinitionError(
                f"flow {flow!r}: parameter {param.name!r} is a reserved run option",
                hint=f"rename it; reserved: {', '.join(RESERVED)}",
            )
        spec = ParamSpec(param.name, _type_name(flow, param, getattr(fn, "__globals__", {})), param.default)
        if not spec.required:
            _check_type(flow, spec, spec.default, what="default")
            if spec.type in DATA_TYPES:  # the schema's default is the path, a JSON string
                spec = attrs.evolve(spec, default=os.fspath(spec.default))
        specs.append(spec)
    return tuple(specs)


def _matches(type_name: str, value: Any) -> bool:
    if type_name == "any":
        return _is_json(value)
    if type_name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name in DATA_TYPES:
        return isinstance(value, (str, os.PathLike)) and bool(os.fspath(value))
    expected = {"str": str, "bool": bool, "list": (list, tuple), "dict": dict}[type_name]
    return isinstance(value, expected) and _is_json(value)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError, RecursionError):
        return False


def depth_of(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply lists, tuples and dicts nest in ``value`` (a scalar is 0), counted without
    recursion and only up to ``limit + 1``: enough to refuse a value nested too deep."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                break
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _too_deep(flow: str, name: str, what: str) -> ParameterError:
    return ParameterError(f"flow {flow!r}: parameter {name!r}: the {what} nests deeper than {MAX_DEPTH} levels",
                          hint=f"flow parameters take JSON values nested at most {MAX_DEPTH} deep: "
                               "pass a flatter value, or a path to a file that holds it")


def _check_type(flow: str, spec: ParamSpec, value: Any, *, what: str = "value") -> Any:
    if depth_of(value) > MAX_DEPTH:
        raise _too_deep(flow, spec.name, what)
    if not _matches(spec.type, value):
        raise ParameterError(
            f"flow {flow!r}: parameter {spec.name!r} expects {spec.type}, got {what} {_SHORT.repr(value)}",
            hint=(f"pass a path, e.g. -p {spec.name}={_example(spec.type)}" if spec.type in DATA_TYPES
                  else f"pass a {spec.type} JSON value, e.g. -p {spec.name}={_example(spec.type)}"),
        )
    if spec.type == "float":
        return float(value)
    if spec.type == "list":
        return list(value)
    return value


def _example(type_name: str) -> str:
    return {"int": "10", "float": "0.5", "str": "text", "bool": "true", "list": "'[1,2]'",
            "dict": "'{\"a\":1}'", "file": "data/in.csv", "dir": "data/images"}.get(type_name, "1")


def parse_cli_value(text: str) -> Any:
    """``-p`` values parse as JSON when they do, else they are strings.

    JSON nested deeper than Python's recursion limit raises RecursionError, which the caller
    turns into a ParameterError naming the parameter."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def cli_text(type_name: str, value: Any) -> str:
    """A value as ``-p NAME=TEXT`` gives it back through ``parse_assignments``: a ``str``
    parameter as its text, anything else as JSON. Every backend and target passes values so."""
    if type_name == "str" and isinstance(value, str):
        return value
    if type_name in DATA_TYPES and isinstance(value, os.PathLike):
        value = os.fspath(value)  # a resolved fk.File / fk.Dir goes as its path
    return json.dumps(value, sort_keys=True)


def parse_assignments(flow: str, items: list[str] | None, schema: tuple[ParamSpec, ...] = ()) -> dict[str, Any]:
    """``["n=3", "name=x"]`` -> ``{"n": 3, "name": "x"}``.

    A ``str`` parameter takes the text as it is (``-p tag=123`` is ``"123"``); any other value is
    read as JSON when it parses, else as a string, and checked against the schema later.
    """
    text_params = {spec.name for spec in schema if spec.type == "str"}
    data_params = {spec.name for spec in schema if spec.type in DATA_TYPES}
    out: dict[str, Any] = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ParameterError(f"flow {flow!r}: cannot read -p {item!r}", hint="write -p NAME=VALUE")
        if text == FLOW_DEFAULT:
            out.pop(name, None)
            continue
        if name in text_params:
            out[name] = text
            continue
        try:
            out[name] = parse_cli_value(text)
        except RecursionError:  # deeper than MAX_DEPTH too, which resolve() checks for every value
            raise _too_deep(flow, name, "value") from None
        if name in data_params and not isinstance(out[name], str):
            out[name] = text  # a path that reads as JSON (2024, true): the text is the path
    return out


def resolve(flow: str, schema: tuple[ParamSpec, ...], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every value checked: unknown names list the valid ones."""
    by_name = {spec.name: spec for spec in schema}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        raise ParameterError(
            f"flow {flow!r} has no parameter {', '.join(map(repr, unknown))}",
            hint=f"parameters: {', '.join(by_name) or '(none)'}",
        )
    values: dict[str, Any] = {}
    for spec in schema:
        if spec.name in given:
            values[spec.name] = _check_type(flow, spec, given[spec.name])
        elif spec.required:
            raise ParameterError(
                f"flow {flow!r}: parameter {spec.name!r} ({spec.type}) is required",
                hint=f"pass it: -p {spec.name}={_example(spec.type)}",
            )
        else:
            values[spec.name] = spec.default
        if spec.type in DATA_TYPES:
            values[spec.name] = _data_value(flow, spec, values[spec.name])
    return values


def _data_value(flow: str, spec: ParamSpec, value: Any) -> File | Dir:
    """A ``file`` / ``dir`` parameter as the step gets it: ``fk.File`` / ``fk.Dir`` of the absolute
    path (relative paths are read from the current folder), checked to be there and of its kind.
    The path is not in the key (the content is), so a moved identical file stays cached."""
    path = os.path.abspath(os.path.expanduser(os.fspath(value)))
    want_dir = spec.type == "dir"
    what = "folder" if want_dir else "file"
    if not os.path.exists(path):
        raise ParameterError(f"flow {flow!r}: parameter {spec.name!r}: there is no {what} at {path}",
                             hint=f"pass an existing {what}: -p {spec.name}=PATH (a relative path is read from "
                                  f"{os.getcwd()})")
    is_dir, is_file = os.path.isdir(path), os.path.isfile(path)
    if want_dir != is_dir or not (want_dir or is_file):
        found = "a folder" if is_dir else "a file" if is_file else "not a regular file"
        fix = ("or annotate the parameter as fk.File" if is_file else "or annotate the parameter as fk.Dir" if is_dir
               else "not a fifo, socket or device")
        kind = DATA_TYPES[spec.type].__name__
        raise ParameterError(f"flow {flow!r}: parameter {spec.name!r} expects a {what} (fk.{kind}), but {path} is {found}",
                             hint=f"pass a {what}, {fix}")
    return DATA_TYPES[spec.type](path)


def plain_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values, for records: an ``fk.File`` / ``fk.Dir`` as its path."""
    return {name: os.fspath(value) if isinstance(value, (File, Dir)) else value for name, value in params.items()}
