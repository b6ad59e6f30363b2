"""Tracing a flow body: step calls become ``Node``s and return ``Output`` handles.

While the body runs, a ``Builder`` is the step recorder (``authoring.step.recording``); flow
parameters are ``Param`` placeholders that refuse to be used in Python control flow.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from flowkit.authoring.step import Step, recording
from flowkit.errors import CycleError, FlowDefinitionError
from flowkit.graph.nodes import Arg, FlowGraph, Literal, MapSpec, Mapping, Node, ParamRef, Ref, Seq

_ITEM = object()  # stands for "each item" while a .map call is bound


class Output:
    """A handle on a node's future output; index it or order it, never read it at build time."""

    __slots__ = ("_builder", "node", "path")

    def __init__(self, builder: "Builder", node: str, path: tuple[Any, ...] = ()) -> None:
        self._builder = builder
        self.node = node
        self.path = path

    def __getitem__(self, key: Any) -> "Output":
        return Output(self._builder, self.node, self.path + (key,))

    def after(self, *others: "Output") -> "Output":
        """Run this node only after ``others`` finished, without passing their data."""
        for other in others:
            if not isinstance(other, Output):
                raise FlowDefinitionError(f"step {self.node!r}: .after() takes step outputs, got {type(other).__name__}")
            self._builder.order(self.node, other.node)
        return self

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise FlowDefinitionError(
            f"flow {self._builder.flow_name!r}: the output of step {self.node!r} has no value while the flow is built",
            hint="pass it to another step, index it (out[0], out['key']) or return it from the flow",
        )

    __bool__ = __iter__ = __len__ = __int__ = __float__ = __index__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __add__ = __radd__ = __sub__ = __mul__ = __truediv__ = _refuse

    def __repr__(self) -> str:
        suffix = "".join(f"[{p!r}]" for p in self.path)
        return f"<flowkit output of {self.node}{suffix}>"


class Param:
    """A flow parameter while the flow is built: a placeholder to pass to steps."""

    __slots__ = ("_flow", "name", "path")

    def __init__(self, flow: str, name: str, path: tuple[Any, ...] = ()) -> None:
        self._flow = flow
        self.name = name
        self.path = path

    def __getitem__(self, key: Any) -> "Param":
        return Param(self._flow, self.name, self.path + (key,))

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise FlowDefinitionError(
            f"flow {self._flow!r}: parameter {self.name!r} was used in Python control flow or arithmetic "
            "while the flow is built; its value is only known when a step runs",
            hint=f"pass {self.name} to a step and use it there",
        )

    __bool__ = __iter__ = __len__ = __int__ = __float__ = __index__ = __str__ = __format__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __contains__ = _refuse  # type: ignore[assignment]
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __mod__ = _refuse
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<flowkit parameter {self.name}>"


class Builder:
    """Records the nodes of one flow body."""

    def __init__(self, flow_name: str) -> None:
        self.flow_name = flow_name
        self.nodes: dict[str, Node] = {}
        self._auto: dict[str, int] = {}  # base name -> calls so far, for train, train-2, ...
        self._defaults: dict[int, tuple[tuple[str, ...], dict[str, Any]]] = {}  # per step function

    def record(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Output:
        """A step call in the flow body: bind its arguments, name the node, return its handle."""
        call_site = _call_site()
        name = self._name_for(step, call_site)
        try:
            bound = step.bind(args, kwargs)
        except TypeError as exc:
            raise FlowDefinitionError(f"flow {self.flow_name!r}, step {name!r} at {call_site}: {exc}") from None
        bound_args = {key: self._arg(value) for key, value in self._with_defaults(step, bound).items()}
        self.nodes[name] = Node(name=name, step=step, args=bound_args, call_site=call_site)
        return Output(self, name)

    def record_map(self, step: Step, items: Any, fixed: dict[str, Any]) -> Output:
        """``step.map(items, **fixed)`` in the flow body: one node that becomes an item node per
        item at run time, then gathers their outputs; its handle is the list of results."""
        call_site = _call_site()
        name = self._name_for(step, call_site)
        where = f"flow {self.flow_name!r}, step {name!r} at {call_site}"
        over = self._map_source(items, where, step)
        try:
            bound = step.bind((_ITEM,), fixed)
        except TypeError as exc:
            raise FlowDefinitionError(f"{where}: {exc}",
                                      hint="each item goes to the step's first parameter; pass the others by name") from None
        param = next((key for key, value in bound.items() if value is _ITEM), None)
        if param is None:
            raise FlowDefinitionError(f"{where}: .map needs a first parameter that takes one item",
                                      hint="give the step a plain first parameter, e.g. def train(fold, lr=0.1)")
        bound_args = {key: over if key == param else self._arg(value)
                      for key, value in self._with_defaults(step, bound).items()}
        spec = MapSpec(param, step.opts.max_parallel, step.opts.min_success_ratio)
        self.nodes[name] = Node(name=name, step=step, args=bound_args, call_site=call_site, map=spec)
        return Output(self, name)

    def _map_source(self, items: Any, where: str, step: Step) -> Ref | ParamRef:
        """The list a ``.map`` goes over: an upstream output (or a part of one) or a parameter."""
        if isinstance(items, (Output, Param)):
            return self._arg(items)  # type: ignore[return-value]
        if isinstance(items, (list, tuple)):
            raise FlowDefinitionError(
                f"{where}: .map over a list written in the flow body; .map is for lists known only at run time",
                hint=f"for a fixed list use a loop: [{step.fn.__name__}(x) for x in ...], "
                     "or make the list a flow parameter and map over that",
            )
        raise FlowDefinitionError(
            f"{where}: .map takes a step output or a list parameter, got {type(items).__name__}",
            hint="pass the output of an upstream step that returns a list, or a flow parameter",
        )

    def _with_defaults(self, step: Step, bound: dict[str, Any]) -> dict[str, Any]:
        """Every parameter with a value, in signature order: ``add3(1, 2)`` and ``add3(1, 2, 3)`` with
        ``c=3`` are one call, and must have one key."""
        names, defaults = self._defaults.get(id(step.fn)) or self._defaults.setdefault(id(step.fn), _defaults(step))
        if len(bound) == len(names):
            return bound
        return {name: bound[name] if name in bound else defaults[name] for name in names
                if name in bound or name in defaults}

    def _name_for(self, step: Step, call_site: str) -> str:
        base = step.name
        if step.opts.name is None and base in self._auto and self.nodes.get(base) and self.nodes[base].step.fn is step.fn:
            self._auto[base] += 1
            name = f"{base}-{self._auto[base]}"
        else:
            self._auto.setdefault(base, 1)
            name = base
        if name in self.nodes:
            raise FlowDefinitionError(
                f"flow {self.flow_name!r}: two steps are named {name!r}: at {self.nodes[name].call_site} and at {call_site}",
                hint=f"give one a unique name: {step.fn.__name__}.options(name=...)(...)",
            )
        return name

    def _arg(self, value: Any) -> Arg:
        if isinstance(value, Output):
            if value._builder is not self:
                raise FlowDefinitionError(f"flow {self.flow_name!r}: a step output from another flow was passed in")
            return Ref(value.node, value.path)
        if isinstance(value, Param):
            return ParamRef(value.name, value.path)
        if isinstance(value, (list, tuple)) and _holds_handles(value):
            return Seq("list" if isinstance(value, list) else "tuple", tuple(self._arg(v) for v in value))
        if isinstance(value, dict) and _holds_handles(value):
            return Mapping(tuple((k, self._arg(v)) for k, v in value.items()))
        return Literal(value)

    def order(self, node: str, before: str) -> None:
        """Record that ``node`` runs after ``before``, refusing an ordering that closes a cycle."""
        cycle = self._path(node, before)
        if cycle is not None:
            path = cycle + [node]
            raise CycleError(
                f"flow {self.flow_name!r}: {node!r}.after({before!r}) makes a cycle: {' -> '.join(path)}",
                cycle=path[:-1],
                hint="remove this .after() or the dependency that closes the loop",
            )
        self.nodes[node].after.add(before)

    def _path(self, start: str, goal: str) -> list[str] | None:
        """A dependency path start -> ... -> goal, following downstream edges, or None."""
        downstream: dict[str, list[str]] = {}
        for node in self.nodes.values():
            for up in node.upstream():
                downstream.setdefault(up, []).append(node.name)
        stack, parent = [start], {start: ""}
        while stack:
            current = stack.pop()
            if current == goal:
                path = [goal]
                while parent[path[-1]]:
                    path.append(parent[path[-1]])
                return path[::-1]
            for nxt in downstream.get(current, ()):
                if nxt not in parent:
                    parent[nxt] = current
                    stack.append(nxt)
        return None


def _defaults(step: Step) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The step's parameter names in order, and the defaults of those that have one (``*args`` and
    ``**kwargs`` have none: an empty one is not bound)."""
    params = step.signature.parameters.values()
    return (tuple(p.name for p in params),
            {p.name: p.default for p in params if p.default is not p.empty})


def _holds_handles(value: Any, outer: tuple[int, ...] = ()) -> bool:
    """True if a literal list, tuple or dict holds step outputs or parameters, at any depth; a
    container that holds itself is searched once (its fingerprint then refuses it as unstable)."""
    if id(value) in outer:
        return False
    items = value.values() if isinstance(value, dict) else value
    inner = (*outer, id(value))
    return any(isinstance(v, (Output, Param)) or (isinstance(v, (list, tuple, dict)) and _holds_handles(v, inner))
               for v in items)


def _call_site() -> str:
    frame = sys._getframe(3)  # record <- Step.__call__ (or record_map <- Step.map) <- the flow body
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def trace(flow_name: str, fn: Callable[..., Any], param_names: list[str]) -> FlowGraph:
    """Run the flow body once with placeholders for its parameters; the validated graph it records."""
    builder = Builder(flow_name)
    with recording(builder):
        returned = fn(**{name: Param(flow_name, name) for name in param_names})
    if not builder.nodes:
        raise FlowDefinitionError(f"flow {flow_name!r} calls no step", hint="call @step functions in the flow body")
    result = None if returned is None else builder._arg(returned)
    if isinstance(result, (Literal, ParamRef)):
        raise FlowDefinitionError(
            f"flow {flow_name!r} returns {returned!r}",
            hint="return a step output, a tuple/list/dict of step outputs, or None",
        )
    return FlowGraph(flow_name, builder.nodes, result)
