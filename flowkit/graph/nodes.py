"""The recorded graph of a flow: nodes, their inputs, and the only use of networkx.

A ``Node`` holds the step and its bound arguments as a tree of ``Literal``, ``ParamRef`` and
``Ref`` leaves; ``FlowGraph`` validates the DAG and answers ordering questions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

import attrs

from flowkit.authoring.params import ParamSpec
from flowkit.authoring.step import Step
from flowkit.errors import CycleError, FlowDefinitionError

if TYPE_CHECKING:
    import networkx as nx


@attrs.frozen
class Literal:
    """A plain Python value written in the flow body."""

    value: Any


@attrs.frozen
class ParamRef:
    """A flow parameter, optionally indexed (``cfg["lr"]``)."""

    name: str
    path: tuple[Any, ...] = ()


@attrs.frozen
class Ref:
    """An upstream node's output, optionally indexed (``out[0]``, ``out["key"]``)."""

    node: str
    path: tuple[Any, ...] = ()


@attrs.frozen
class Item:
    """One item of a list an upstream node returned, for one item node of a ``.map``: ``fp`` is the
    item's own fingerprint (None: it has none that is stable), so its key never depends on its
    position in the list."""

    node: str
    path: tuple[Any, ...]
    index: int
    fp: str | None
    unstable: str | None = None  # why the item has no stable fingerprint


@attrs.frozen
class Seq:
    """A list or tuple written in the flow body that contains handles."""

    kind: str  # "list" | "tuple"
    items: tuple[Any, ...]


@attrs.frozen
class Mapping:
    """A dict written in the flow body that contains handles."""

    items: tuple[tuple[Any, Any], ...]


Arg = Literal | ParamRef | Ref | Item | Seq | Mapping


@attrs.frozen
class MapSpec:
    """What makes a node a ``step.map(items, ...)``: which argument takes each item (its value in
    ``Node.args`` is the list to map over), and the map's options."""

    param: str
    max_parallel: int | None = None
    min_success_ratio: float = 1.0


def iter_leaves(arg: Arg) -> Iterator[Literal | ParamRef | Ref | Item]:
    """Every leaf of an argument tree, depth first."""
    if isinstance(arg, Seq):
        for item in arg.items:
            yield from iter_leaves(item)
    elif isinstance(arg, Mapping):
        for _key, item in arg.items:
            yield from iter_leaves(item)
    else:
        yield arg


@attrs.define(eq=False)
class Node:
    """One call of a step in a flow body."""

    name: str
    step: Step
    args: dict[str, Arg]          # bound to the function's parameter names, in signature order
    call_site: str
    after: set[str] = attrs.field(factory=set)
    map: MapSpec | None = None      # set on a ``.map`` node (the gather of its items)
    item_of: str | None = None      # set on an item node made at run time: its map node's name
    _inputs: list[str] | None = attrs.field(default=None, init=False, repr=False)

    def inputs(self) -> list[str]:
        """Nodes whose output this node reads, sorted (computed once: it is on the hot path)."""
        if self._inputs is None:
            self._inputs = sorted({leaf.node for arg in self.args.values() for leaf in iter_leaves(arg)
                                   if isinstance(leaf, (Ref, Item))})
        return self._inputs

    def upstream(self) -> set[str]:
        """Nodes whose output or completion this node waits for."""
        return set(self.inputs()) | self.after


class FlowGraph:
    """A validated DAG of nodes, in call order, backed by a networkx DiGraph."""

    def __init__(self, flow_name: str, nodes: dict[str, Node], result: Arg | None) -> None:
        import networkx as nx  # heavy (0.3 s): only when a graph is built

        self.flow_name = flow_name
        self.nodes = nodes
        self.result = result
        self._position = {name: i for i, name in enumerate(nodes)}
        self._upstream = {name: sorted(node.upstream(), key=self._position.__getitem__) for name, node in nodes.items()}
        self.dag: nx.DiGraph = nx.DiGraph()
        self.dag.add_nodes_from(nodes)
        self.dag.add_edges_from((up, name) for name, ups in self._upstream.items() for up in ups)
        self._order = self._stable_topological_order()

    def _stable_topological_order(self) -> list[str]:
        """Call order where it is already topological (data flows backwards in a flow body; only
        ``after`` can point forwards), else networkx's lexicographical sort by call order, which
        gives the same order when both apply. A CycleError names the cycle."""
        import networkx as nx

        position = self._position
        if all(position[up] < position[name] for name, ups in self._upstream.items() for up in ups):
            return list(self.nodes)
        try:
            return list(nx.lexicographical_topological_sort(self.dag, key=self._position.__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = [edge[0] for edge in nx.find_cycle(self.dag)]
        raise CycleError(
            f"flow {self.flow_name!r}: cycle {' -> '.join(cycle + cycle[:1])}",
            cycle=cycle,
            hint="remove one of the .after() orderings on that path",
        )

    def order(self) -> list[str]:
        """Node names in a deterministic topological order (call order breaks ties)."""
        return list(self._order)

    def generations(self) -> list[list[str]]:
        """Levels of nodes that can run together, each in call order."""
        import networkx as nx

        return [sorted(level, key=self._position.__getitem__) for level in nx.topological_generations(self.dag)]

    def upstream(self, name: str) -> list[str]:
        """Direct predecessors of a node, in call order."""
        return self._upstream[name]

    def downstream(self, name: str) -> list[str]:
        """Direct successors of a node, in call order."""
        return sorted(self.dag.successors(name), key=self._position.__getitem__)

    def node(self, name: str) -> Node:
        """A node by name, with the valid names in the error."""
        try:
            return self.nodes[name]
        except KeyError:
            raise FlowDefinitionError(
                f"flow {self.flow_name!r} has no step {name!r}",
                hint=f"steps: {', '.join(self.nodes) or '(none)'}",
            ) from None

    def __len__(self) -> int:
        return len(self.nodes)

    def maps(self) -> list[str]:
        """The ``.map`` nodes, in order (their items are made at run time)."""
        return [name for name in self._order if self.nodes[name].map is not None]


class FlowSpec(Protocol):
    """What the runtime, runners and compilers need of a flow; ``flowkit.flow.Flow`` is one. A
    protocol, so that nothing below the ``Flow`` class imports it."""

    name: str
    image: str | None
    schedule: str | None
    fn: Callable[..., Any]

    @property
    def params(self) -> tuple[ParamSpec, ...]: ...

    @property
    def graph(self) -> FlowGraph: ...

    def resolve_params(self, given: dict[str, Any]) -> dict[str, Any]: ...
