"""``flowkit diff RUN_A RUN_B``: what differs between two runs, read from their records.

Flow parameters (a -> b), metrics (the last value each step logged under a name, a -> b), the
steps only one run has, and for the steps both have, those whose key differs (with the reasons
``plan`` and ``explain`` give, from ``keys.parts.differences``) or whose output differs.
"""

from __future__ import annotations

from typing import Any

from flowkit.errors import StoreError
from flowkit.keys.parts import differences, show
from flowkit.store.records import NodeRecord, RunHeader
from flowkit.store.runs import shown_status, state_of
from flowkit.store.store import Store

_SHORT = 12


def diff_runs(store: Store, run_a: str, run_b: str) -> dict[str, Any]:
    """A report (JSON-ready, with a ``text`` rendering) of how run ``run_b`` differs from ``run_a``."""
    header_a, header_b = _header(store, run_a), _header(store, run_b)
    nodes_a = {r.node: r for r in store.node_records(run_a)}
    nodes_b = {r.node: r for r in store.node_records(run_b)}
    order_a, order_b = _order(header_a, nodes_a), _order(header_b, nodes_b)
    report: dict[str, Any] = {
        "a": _run_summary(store, run_a, header_a), "b": _run_summary(store, run_b, header_b),
        "params": _param_changes(header_a.params, header_b.params),
        "metrics": _metric_changes(order_a, nodes_a, order_b, nodes_b),
        "only_in_a": [n for n in order_a if n not in nodes_b and n not in header_b.nodes],
        "only_in_b": [n for n in order_b if n not in nodes_a and n not in header_a.nodes],
        "steps": [change for node in order_b if node in order_a
                  for change in [_step_change(store, node, nodes_a.get(node), nodes_b.get(node))] if change],
    }
    report["text"] = render(report)
    return report


def _header(store: Store, run_id: str) -> RunHeader:
    header = store.records.read_header(run_id)
    if header is None:
        raise StoreError(f"run {run_id} has no readable run.json in store {store.root}",
                         hint="`flowkit cache verify` reports what is damaged; pick another run with `flowkit runs`")
    return header


def _order(header: RunHeader, nodes: dict[str, NodeRecord]) -> list[str]:
    """The run's nodes in the flow's order, then any recorded that the header does not list."""
    return list(header.nodes) + sorted(n for n in nodes if n not in header.nodes)


def _run_summary(store: Store, run_id: str, header: RunHeader) -> dict[str, Any]:
    """Who the run was; its status as ``flowkit runs`` shows it (``interrupted`` once its process is gone)."""
    row = store.index.run(run_id)
    status = shown_status(store.records, run_id, row["status"]) if row else state_of(store.records, run_id).state
    return {"run_id": run_id, "flow": header.flow, "status": status, "started": header.started}


def _param_changes(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """The parameters whose values differ; a side that lacks one has no ``a`` or ``b`` key."""
    changes = []
    for name in sorted(set(a) | set(b)):
        if name in a and name in b and _same(a[name], b[name]):
            continue
        change: dict[str, Any] = {"name": name}
        if name in a:
            change["a"] = a[name]
        if name in b:
            change["b"] = b[name]
        changes.append(change)
    return changes


def _same(x: Any, y: Any) -> bool:
    """Equal as JSON values: ``1`` and ``True`` are not the same parameter."""
    return type(x) is type(y) and x == y


def _last_metrics(order: list[str], nodes: dict[str, NodeRecord]) -> dict[tuple[str, str], Any]:
    last: dict[tuple[str, str], Any] = {}
    for node in order:
        if node in nodes:
            for metric in nodes[node].metrics:
                last[(node, metric.name)] = metric.value
    return last


def _metric_changes(order_a: list[str], nodes_a: dict[str, NodeRecord], order_b: list[str],
                    nodes_b: dict[str, NodeRecord]) -> list[dict[str, Any]]:
    """Every metric of either run: the last value each step logged under the name, a and b (None
    where that run has none), and whether they differ."""
    a, b = _last_metrics(order_a, nodes_a), _last_metrics(order_b, nodes_b)
    position = {node: i for i, node in enumerate(order_b + [n for n in order_a if n not in order_b])}
    rows = []
    for step, name in sorted(set(a) | set(b), key=lambda k: (position.get(k[0], len(position)), k[0], k[1])):
        va, vb = a.get((step, name)), b.get((step, name))
        rows.append({"step": step, "name": name, "a": va, "b": vb, "changed": va != vb})
    return rows


def _step_change(store: Store, node: str, a: NodeRecord | None, b: NodeRecord | None) -> dict[str, Any] | None:
    """How one step of both runs differs (None: same key and output)."""
    key_a, key_b = (a.key if a else None), (b.key if b else None)
    out_a = a.output.digest if a is not None and a.output is not None else None
    out_b = b.output.digest if b is not None and b.output is not None else None
    if key_a == key_b and out_a == out_b:
        return None
    why: list[str] = []
    if key_a != key_b:
        parts_a, parts_b = store.parts_of(a), store.parts_of(b)
        if parts_a is not None and parts_b is not None:
            why = differences(parts_a, parts_b) or ["key changed"]
        else:
            why = [_unkeyed(side, record) for side, record, parts in (("a", a, parts_a), ("b", b, parts_b))
                   if parts is None]
    return {"step": node, "status_a": a.status if a else None, "status_b": b.status if b else None,
            "key_a": key_a, "key_b": key_b, "key_changed": key_a != key_b, "why": why,
            "output_a": out_a, "output_b": out_b, "output_changed": out_a != out_b}


def _unkeyed(side: str, record: NodeRecord | None) -> str:
    if record is None:
        return f"not recorded in run {side}"
    return f"no key in run {side}" + (f": {record.error}" if record.error else f" ({record.status})")


def _short(digest: str | None) -> str:
    return digest[:_SHORT] if digest else "(none)"


def _value(change: dict[str, Any], side: str) -> str:
    return show(change[side]) if side in change else "(none)"


def _metric(value: Any) -> str:
    if value is None:
        return "(none)"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def render(report: dict[str, Any]) -> str:
    """The text ``flowkit diff`` prints."""
    a, b = report["a"], report["b"]
    lines = [f"run {a['run_id']} ({a['flow']}, {a['status']}) -> run {b['run_id']} ({b['flow']}, {b['status']})"]
    if a["flow"] != b["flow"]:
        lines.append(f"  note: the runs are of different flows ({a['flow']!r}, {b['flow']!r})")
    lines.append("params:" if report["params"] else "params: the same")
    lines += [f"  {c['name']}: {_value(c, 'a')} -> {_value(c, 'b')}" for c in report["params"]]
    if report["metrics"]:
        lines.append("metrics:")
        lines += [f"  {m['step']} {m['name']}: {_metric(m['a'])} -> {_metric(m['b'])}"
                  + ("" if m["changed"] else "  (same)") for m in report["metrics"]]
    for side in ("a", "b"):
        if report[f"only_in_{side}"]:
            lines.append(f"steps only in {side}: {', '.join(report[f'only_in_{side}'])}")
    if not report["steps"]:
        lines.append("steps: the same keys and outputs")
    else:
        lines.append("steps that differ:")
        for step in report["steps"]:
            lines.append(f"  {step['step']} ({step['status_a']} -> {step['status_b']}):")
            lines += [f"    - {reason}" for reason in step["why"]]
            if step["output_changed"]:
                lines.append(f"    - output changed: {_short(step['output_a'])} -> {_short(step['output_b'])}")
            elif step["key_changed"]:
                lines.append("    - same output")
    return "\n".join(lines)
