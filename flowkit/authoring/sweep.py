"""``fk.sweep``: one node per point of a parameter grid (SPEC §10).

``fk.sweep(train, over={"lr": [0.1, 1.0], "depth": [3, 5]}, rows=rows)`` in a flow body records
``train[lr=0.1,depth=3]``, ``train[lr=0.1,depth=5]``, ``train[lr=1.0,depth=3]``,
``train[lr=1.0,depth=5]`` and returns their handles in that order: the order of nested ``for``
loops over ``over``'s keys as written, the last varying fastest. Each node has its own key, so
adding a value to a list runs only the new points. Outside a flow the same calls run as plain
functions (steps stay unit-testable) and their results come back in the same order.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from flowkit.authoring.step import Step, current_recorder
from flowkit.errors import FlowDefinitionError

_NAME_VALUE_LIMIT = 40  # longer values are named by their position in the list
_SIMPLE = (int, float, str, bool, type(None))


def sweep(step: Step, /, over: Mapping[str, Any], **fixed: Any) -> list[Any]:
    """Call ``step`` once per combination of the values in ``over``, with ``fixed`` as the other
    arguments; the handles (in a flow) or results (outside one), in grid order. (A step parameter
    named ``over`` is therefore swept, never fixed.)"""
    where = f"fk.sweep({getattr(step, 'name', step)!r})"
    if not isinstance(step, Step):
        raise FlowDefinitionError(f"fk.sweep: the first argument must be a step, got {step!r}",
                                  hint="decorate the function with @fk.step, or write a for loop over the calls")
    grid = _grid(over, where)
    _check_names(step, grid, fixed, where)
    labels = {name: [_value_name(name, value, i) for i, value in enumerate(values)] for name, values in grid.items()}
    _check_distinct(labels, grid, where)
    indices = list(itertools.product(*(range(len(values)) for values in grid.values())))
    points = [{name: grid[name][i] for name, i in zip(grid, index)} for index in indices]
    names = [f"{step.name}[{','.join(labels[name][i] for name, i in zip(grid, index))}]" for index in indices]
    recorder = current_recorder()
    if recorder is None:
        return [step.fn(**fixed, **point) for point in points]
    handles = []
    for name, point in zip(names, points):  # a loop, not a comprehension: its frame would be the call site
        handles.append(recorder.record(step.options(name=name), (), {**fixed, **point}))  # the flow body's line
    return handles


def _grid(over: Any, where: str) -> dict[str, list[Any]]:
    if not isinstance(over, Mapping) or not over:
        raise FlowDefinitionError(f"{where}: over must be a non-empty dict of parameter name -> list of values, "
                                  f"got {over!r}", hint='e.g. fk.sweep(train, over={"lr": [0.01, 0.1]}, rows=rows)')
    grid: dict[str, list[Any]] = {}
    for name, values in over.items():
        if not isinstance(values, (list, tuple, range)):
            raise FlowDefinitionError(
                f"{where}: over[{name!r}] must be a list of values known when the flow is built, "
                f"got {type(values).__name__} {values!r}",
                hint=f"write the values out: over={{{name!r}: [...]}} (a set has no order, and a step output or flow "
                     "parameter has no value yet: fan out over those inside a step)")
        if not values:
            raise FlowDefinitionError(f"{where}: over[{name!r}] is empty, so the sweep would make no step",
                                      hint="give at least one value")
        grid[name] = list(values)
    return grid


def _check_names(step: Step, grid: dict[str, list[Any]], fixed: dict[str, Any], where: str) -> None:
    """Every name is a parameter of the step, none is both swept and fixed, and a call binds."""
    params = step.signature.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    keyword = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for name in (*grid, *fixed):
        if not takes_any and name not in keyword:
            raise FlowDefinitionError(f"{where}: {name!r} is not a parameter of step {step.name!r}",
                                      hint=f"its parameters: {', '.join(keyword) or '(none)'}")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise FlowDefinitionError(f"{where}: {', '.join(map(repr, both))} is both swept over and fixed",
                                  hint="give each parameter in over or as a keyword, not both")
    try:
        step.signature.bind(**fixed, **{name: values[0] for name, values in grid.items()})
    except TypeError as exc:
        raise FlowDefinitionError(f"{where}: {exc}",
                                  hint="pass the step's other arguments as keywords of fk.sweep") from None


def _check_distinct(labels: dict[str, list[str]], grid: dict[str, list[Any]], where: str) -> None:
    """The same value twice would be two nodes with one name (and one key)."""
    for name, shown in labels.items():
        for i, text in enumerate(shown):
            if shown.index(text) != i:
                raise FlowDefinitionError(f"{where}: over[{name!r}] holds {grid[name][i]!r} twice",
                                          hint="give each value once")


def _value_name(name: str, value: Any, position: int) -> str:
    """``lr=0.1`` for a short number, text, bool or None; ``model#2`` (the value's position in its
    list, from 1) for anything else, whose repr may differ between processes or be long."""
    if isinstance(value, _SIMPLE):
        text = repr(value)
        if len(text) <= _NAME_VALUE_LIMIT:
            return f"{name}={text}"
    return f"{name}#{position + 1}"
