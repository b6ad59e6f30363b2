"""Run-time fan-out (``step.map``): the item nodes of a map once its list is known.

A map node waits for the nodes its list comes from; then it becomes one item node per item,
``train[0]``, ``train[1]``, ..., each keyed by its item's own content (a fingerprint, or for a
map over another map the upstream item's output digest), never by its position, so inserting
an item re-runs only that item. The run and the plan make the items here, the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from flowkit.errors import FlowDefinitionError, Unstable
from flowkit.graph.nodes import Arg, Item, Node, ParamRef, Ref
from flowkit.keys.parts import resolve_path
from flowkit.keys.values import fingerprint

if TYPE_CHECKING:
    from flowkit.execution.runtime import RunContext
    from flowkit.store.objects import StoredOutput

ItemsOf = Callable[[str], "list[str] | None"]  # a map node's finished item names; None: not a map


def item_name(map_node: str, index: int) -> str:
    """``train[3]``: what run.steps, show and explain call the item."""
    return f"{map_node}[{index}]"


def item_index(name: str, map_node: str) -> int:
    """N of item ``map_node[N]``: what ``run-step --item`` takes."""
    return int(name[len(map_node) + 1:-1])


def item_args(node: Node, flow: str, params: dict[str, Any], load: Callable[[str], Any],
              items_of: ItemsOf) -> list[Arg]:
    """The argument each item node gets in place of the list: element-wise over another map's
    items, a part of a list parameter, or an item of an upstream output with its fingerprint."""
    assert node.map is not None
    over = node.args[node.map.param]
    if isinstance(over, Ref) and not over.path:
        names = items_of(over.node)
        if names is not None:
            return [Ref(name) for name in names]
    if isinstance(over, ParamRef):
        value = _listed(node, flow, _resolve(params[over.name], over.path, f"parameter {over.name!r}"),
                        f"parameter {over.name!r}")
        return [ParamRef(over.name, over.path + (i,)) for i in range(len(value))]
    assert isinstance(over, Ref)
    what = f"the output of step {over.node!r}" + "".join(f"[{key!r}]" for key in over.path)
    value = _listed(node, flow, _resolve(load(over.node), over.path, what), what)
    return [_item(over, i, item) for i, item in enumerate(value)]


def item_nodes(node: Node, args: list[Arg]) -> list[Node]:
    """One node per item: the map's step and fixed arguments, the item in the mapped parameter."""
    assert node.map is not None
    param = node.map.param
    return [Node(name=item_name(node.name, i), step=node.step, args={**node.args, param: arg},
                 call_site=node.call_site, item_of=node.name) for i, arg in enumerate(args)]


def expand(ctx: "RunContext", node: Node, outputs: "dict[str, StoredOutput]") -> list[Node]:
    """The map's item nodes, registered in the run (where a worker and the gather find them): the
    one expansion the scheduler and ``run-step`` share. ``outputs`` holds the map's upstream
    outputs and, for a map over another map, the outputs of that map's items that succeeded."""
    from flowkit.execution.runtime import loader  # runtime is heavier than the plan needs

    def items_of(up: str) -> list[str] | None:
        names = ctx.expansions.get(up)
        return None if names is None else [item for item in names if item in outputs]

    args = item_args(node, ctx.flow.name, ctx.params, loader(ctx.store, outputs), items_of)
    items = item_nodes(node, args)
    for item in items:
        ctx.items[item.name] = item
    ctx.expansions[node.name] = [item.name for item in items]
    return items


def _item(over: Ref, index: int, value: Any) -> Item:
    try:
        return Item(over.node, over.path, index, fingerprint(value))
    except Unstable as exc:  # that item runs uncached, and the plan says why
        return Item(over.node, over.path, index, None, f"item {index}: {exc.reason}")


def _resolve(value: Any, path: tuple[Any, ...], what: str) -> Any:
    try:
        return resolve_path(value, path)
    except (KeyError, IndexError, TypeError) as exc:
        shown = "".join(f"[{key!r}]" for key in path)
        raise FlowDefinitionError(f"{what}{shown} does not exist: {type(exc).__name__}: {exc}",
                                  hint="map over a key or position the value has") from None


def _listed(node: Node, flow: str, value: Any, what: str) -> list[Any] | tuple[Any, ...]:
    """The list to map over; anything else is the flow's mistake, named with its type."""
    if isinstance(value, (list, tuple)):
        return value
    raise FlowDefinitionError(
        f"flow {flow!r}, step {node.name!r}: .map needs a list, but {what} is a {type(value).__name__}",
        hint="make it a list (or tuple), e.g. return list(...) from the upstream step, or map over a part of it: out['key']",
    )
