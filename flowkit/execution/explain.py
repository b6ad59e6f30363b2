"""``flowkit explain``: a node's key parts in one run against the previous run of that node."""

from __future__ import annotations

from typing import Any

from flowkit.errors import UsageError
from flowkit.keys.parts import KeyParts, differences
from flowkit.store.records import NodeRecord
from flowkit.store.store import Store


def explain(store: Store, run_id: str, node: str) -> dict[str, Any]:
    """A report (JSON-ready, with a ``text`` rendering) of what changed and why the node ran."""
    record = store.read_node(run_id, node)
    if record is None:
        names = [n["node"] for n in store.index.nodes(run_id)]
        raise UsageError(f"run {run_id} has no step {node!r}", hint=f"steps: {', '.join(names) or '(none)'}")
    previous = store.index.previous(record.flow, node, before=record.started, exclude_run=run_id)
    report: dict[str, Any] = {"run_id": run_id, "step": node, "status": record.status, "key": record.key,
                              "previous_run": previous.run_id if previous else None, "changes": []}
    lines = [f"step {node!r} in run {run_id}: {record.status}" + (f" ({record.error})" if record.error else "")]
    parts = store.parts_of(record)
    old_parts = store.parts_of(previous)
    if parts is None:
        lines.append("  no key: " + (record.error or "the step was not keyed (skipped or unstable input)"))
    elif previous is None or old_parts is None:
        lines.append("  no earlier run of this step: nothing to compare with")
    else:
        changes = differences(old_parts, parts)
        report["changes"] = changes
        same_key = previous.key == record.key
        lines.append(f"  compared with run {previous.run_id} ({previous.status}):")
        if changes:
            lines += [f"  - {change}" for change in changes]
        elif same_key:
            lines.append("  - same key: " + ("cache hit" if record.status == "cached" else _same_key_reason(record)))
    if parts is not None:
        lines.append("  key parts:")
        lines += _part_lines(parts)
    report["parts"] = parts.to_json() if parts is not None else None
    report["text"] = "\n".join(lines)
    return report


def _same_key_reason(record: NodeRecord) -> str:
    return "it ran although the key was known: forced, cache disabled, or its output had been removed"


def _part_lines(parts: KeyParts) -> list[str]:
    lines = [f"    scheme   {parts.scheme}", f"    version  {parts.version}",
             f"    code     {parts.code.digest[:12]}  ({', '.join(sorted(parts.code.parts))})"]
    for name, arg in parts.args.items():
        detail = arg.show or (f"output of {arg.source}" if arg.source else "")
        lines.append(f"    arg      {name} = {detail}  [{arg.kind} {arg.fp[:12]}]")
    lines.append(f"    image    {parts.env.image}")
    if parts.env.env:
        lines.append(f"    env      {', '.join(sorted(parts.env.env))}")
    return lines
