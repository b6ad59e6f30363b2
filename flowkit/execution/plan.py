"""The dry run: each node's verdict (``cached`` | ``run`` | ``after upstream``) and the reason.

Nothing is executed or written. The verdict comes from the same ``verdict.decide`` a run uses,
so the plan predicts the run; the reason compares the key parts with the node's last record.
"""

from __future__ import annotations

from typing import Any

import attrs

from flowkit.authoring.params import plain_params
from flowkit.errors import CorruptObject, FlowDefinitionError
from flowkit.execution import mapping
from flowkit.execution.verdict import decide
from flowkit.graph.nodes import FlowSpec, Node
from flowkit.keys.parts import KeyParts, differences, gather_digest
from flowkit.keys.values import one_pass
from flowkit.store.objects import StoredOutput
from flowkit.store.store import Store


@attrs.frozen
class PlanRow:
    node: str
    verdict: str  # cached | run | after upstream
    reason: str
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Plan:
    flow: str
    params: dict[str, Any]
    rows: tuple[PlanRow, ...]

    def __getitem__(self, node: str) -> PlanRow:
        return next(row for row in self.rows if row.node == node)

    def counts(self) -> dict[str, int]:
        out = {"cached": 0, "run": 0, "after upstream": 0}
        for row in self.rows:
            out[row.verdict] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"flow": self.flow, "params": plain_params(self.params), "steps": [row.to_json() for row in self.rows]}


@one_pass()  # the graph check and the keys share each large value's hash
def make_plan(flow: FlowSpec, params: dict[str, Any], store: Store, *, force: bool = False,
              force_steps: tuple[str, ...] = ()) -> Plan:
    """Predict every node's verdict in topological order."""
    graph = flow.graph
    for name in force_steps:
        graph.node(name)
    digests: dict[str, str] = {}  # node (or map item) -> its output digest, where cached
    hits: dict[str, StoredOutput] = {}
    items: dict[str, list[str]] = {}  # a map found all cached -> its item names
    rows: list[PlanRow] = []
    pending: set[str] = set()
    for name in graph.order():
        waiting = [up for up in graph.upstream(name) if up in pending]
        if waiting:
            rows.append(PlanRow(name, "after upstream", f"waits for {', '.join(waiting)}"))
            pending.add(name)
            continue
        node = graph.nodes[name]
        forced = force or name in force_steps
        if node.map is not None:
            row = _map_row(flow, store, node, params, forced, digests, hits, items)
            rows.append(row)
            if row.verdict != "cached":
                pending.add(name)
            continue
        decision = decide(store, node, params=params, upstream={up: digests[up] for up in graph.upstream(name) if up in digests},
                          flow_image=flow.image, forced=forced)
        if decision.hit is not None:
            digests[name] = decision.hit.digest
            hits[name] = decision.hit
            rows.append(PlanRow(name, "cached", "same key", decision.key))
            continue
        reason = decision.reason or why_missing(store, flow.name, name, decision.parts)
        rows.append(PlanRow(name, "run", reason, decision.key))
        pending.add(name)
    return Plan(flow.name, params, tuple(rows))


def _map_row(flow: FlowSpec, store: Store, node: Node, params: dict[str, Any], forced: bool,
             digests: dict[str, str], hits: dict[str, StoredOutput], items: dict[str, list[str]]) -> PlanRow:
    """One row for a ``.map`` whose list is known: how many of its items are cached and how many
    run (each decided as the run decides it); all cached, its digest is known downstream."""
    try:
        args = mapping.item_args(node, flow.name, params, lambda up: store.files.load_output(hits[up]), items.get)
    except FlowDefinitionError as exc:
        return PlanRow(node.name, "run", f"fails: {exc.message}")
    except CorruptObject:
        return PlanRow(node.name, "run", "its list is lost from the store: made again first")
    made = mapping.item_nodes(node, args)
    cached: list[str] = []
    for item in made:
        decision = decide(store, item, params=params, upstream={up: digests[up] for up in item.inputs()},
                          flow_image=flow.image, forced=forced)
        if decision.hit is not None:
            digests[item.name] = decision.hit.digest
            cached.append(item.name)
    if len(cached) == len(made):
        digests[node.name] = gather_digest([digests[item] for item in cached])
        items[node.name] = cached
        return PlanRow(node.name, "cached", f"all {len(made)} items cached")
    return PlanRow(node.name, "run", f"{len(made) - len(cached)} of {len(made)} items to run, {len(cached)} cached")


def why_missing(store: Store, flow: str, node: str, parts: KeyParts | None,
                before: float | None = None, exclude_run: str | None = None) -> str:
    """The reason a key has no entry: what changed since this node's last recorded key."""
    old_parts = store.parts_of(store.index.previous(flow, node, before=before, exclude_run=exclude_run))
    if old_parts is None or parts is None:
        return "no entry"
    reasons = differences(old_parts, parts)
    return "; ".join(reasons) if reasons else "no entry (output removed)"
