"""``flowkit explain``: a node's key parts in one run against the previous run of that node.

Each reason (the same words ``plan`` uses, from ``keys.parts.differences``) comes with what it
stands for: for code, each changed function's digests and a short unified diff of its normalized
source (the text its digest is made from, kept in ``store.sources``); for an input, the old and
new digests and the upstream step that made it; for a parameter or literal, the old and new value.
"""

from __future__ import annotations

import difflib
from typing import Any

from flowkit.errors import UsageError
from flowkit.keys.parts import ArgPart, KeyParts, differences
from flowkit.store.records import NodeRecord
from flowkit.store.store import Store

DIFF_LINES = 30  # lines of one function's diff in the text; --json has them all
_SHORT = 12


def explain(store: Store, run_id: str, node: str) -> dict[str, Any]:
    """A report (JSON-ready, with a ``text`` rendering) of what changed and why the node ran."""
    record = store.read_node(run_id, node)
    if record is None:
        names = [n["node"] for n in store.index.nodes(run_id)]
        raise UsageError(f"run {run_id} has no step {node!r}", hint=f"steps: {', '.join(names) or '(none)'}")
    previous = store.index.previous(record.flow, node, before=record.started, exclude_run=run_id)
    report: dict[str, Any] = {"run_id": run_id, "step": node, "status": record.status, "key": record.key,
                              "previous_run": previous.run_id if previous else None, "changes": [],
                              "details": []}
    lines = [f"step {node!r} in run {run_id}: {record.status}" + (f" ({record.error})" if record.error else "")]
    parts = store.parts_of(record)
    old_parts = store.parts_of(previous)
    if parts is None:
        lines.append("  no key: " + (record.error or "the step was not keyed (skipped or unstable input)"))
    elif previous is None or old_parts is None:
        lines.append("  no earlier run of this step: nothing to compare with")
    else:
        changes = differences(old_parts, parts)
        details = change_details(store, old_parts, parts, old_run=previous.run_id, new_run=run_id)
        report["changes"], report["details"] = changes, details
        lines.append(f"  compared with run {previous.run_id} ({previous.status}):")
        for change in changes:
            lines.append(f"  - {change}")
            lines += [f"      {line}" for detail in details if _explains(detail, change)
                      for line in _detail_lines(detail)]
        if not changes and previous.key == record.key:
            lines.append("  - same key: " + ("cache hit" if record.status == "cached" else _same_key_reason(record)))
    if parts is not None:
        lines.append("  key parts:")
        lines += _part_lines(parts)
    report["parts"] = parts.to_json() if parts is not None else None
    report["text"] = "\n".join(lines)
    return report


def change_details(store: Store, old: KeyParts, new: KeyParts, *, old_run: str, new_run: str) -> list[dict[str, Any]]:
    """What each changed part was and is, in key order: code (per function, with a diff of its kept
    source), arguments, image and env."""
    details = _code_details(store, old, new, old_run, new_run)
    for name in list(new.args) + [n for n in old.args if n not in new.args]:
        before, after = old.args.get(name), new.args.get(name)
        if before is None or after is None or before.fp != after.fp:
            details.append(_arg_detail(name, before, after))
    if old.env.image != new.env.image:
        details.append({"part": "image", "old": old.env.image, "new": new.env.image})
    if old.env.env != new.env.env:
        changed = sorted(k for k in set(old.env.env) | set(new.env.env) if old.env.env.get(k) != new.env.env.get(k))
        details.append({"part": "env", "names": changed})
    return details


def _code_details(store: Store, old: KeyParts, new: KeyParts, old_run: str, new_run: str) -> list[dict[str, Any]]:
    if old.code.digest == new.code.digest:
        return []
    values = set(old.code.values) | set(new.code.values)
    details = []
    for name in sorted(set(old.code.parts) | set(new.code.parts)):
        before, after = old.code.parts.get(name), new.code.parts.get(name)
        if before == after:
            continue
        kind = "step" if name == new.code.root else "global" if name in values else "helper"
        detail: dict[str, Any] = {"part": "code", "name": name, "kind": kind, "old": before, "new": after,
                                  "diff": None}
        if kind != "global":
            detail["diff"] = _source_diff(store, _label(name, kind), before, after, old_run, new_run)
        details.append(detail)
    return details


def _source_diff(store: Store, label: str, before: str | None, after: str | None, old_run: str,
                 new_run: str) -> str | None:
    """A unified diff of the kept normalized sources (a function added or removed diffs against
    nothing); None when a source was not kept (an older store, bytecode only, a killed writer)."""
    texts = [store.sources.get(digest) if digest is not None else "" for digest in (before, after)]
    if texts[0] is None or texts[1] is None:
        return None
    lines = difflib.unified_diff(texts[0].splitlines(), texts[1].splitlines(), fromfile=f"{label} in run {old_run}",
                                 tofile=f"{label} in run {new_run}", lineterm="", n=2)
    return "\n".join(lines)


def _arg_detail(name: str, before: ArgPart | None, after: ArgPart | None) -> dict[str, Any]:
    either = after or before
    assert either is not None
    detail: dict[str, Any] = {"part": "input" if either.kind == "input" else "param", "name": name, "kind": either.kind,
                              "old": before.fp if before else None, "new": after.fp if after else None,
                              "source": either.source}
    if either.kind != "input":
        detail["old_value"] = before.show if before else None
        detail["new_value"] = after.show if after else None
    return detail


def _label(name: str, kind: str) -> str:
    return f"global {name}" if kind == "global" else f"{name}()"


def _explains(detail: dict[str, Any], change: str) -> bool:
    """Whether ``detail`` belongs under the reason ``change`` (both made in key order from the same parts)."""
    part = detail["part"]
    if part == "code":
        return change.startswith("code changed")
    if part in ("input", "param"):
        prefix = "input changed: " if part == "input" else "param changed: "
        return change.startswith(prefix) and change[len(prefix):].split(" ", 1)[0] == detail["name"]
    return change.startswith(f"{part} changed")


def _short(digest: str | None) -> str:
    return digest[:_SHORT] if digest else "(none)"


def _detail_lines(detail: dict[str, Any]) -> list[str]:
    part = detail["part"]
    if part == "code":
        lines = [f"{_label(detail['name'], detail['kind'])}: {_short(detail['old'])} -> {_short(detail['new'])}"]
        if detail["kind"] != "global":
            lines += _diff_lines(detail["diff"])
        return lines
    if part == "input":
        made_by = f", output of step {detail['source']!r}" if detail["source"] else ""
        return [f"{detail['name']}: {_short(detail['old'])} -> {_short(detail['new'])}{made_by}"]
    if part == "param":
        return _param_lines(detail)
    if part == "image":
        return [f"{detail['old'] or '(none)'} -> {detail['new'] or '(none)'}"]
    return [f"variables: {', '.join(detail['names'])}"]


def _param_lines(detail: dict[str, Any]) -> list[str]:
    """A line where the reason does not say it all already: values it could not show, or a flow
    parameter of another name."""
    shown = detail["old_value"] is not None and detail["new_value"] is not None
    renamed = detail["kind"] == "param" and detail["source"] not in (None, detail["name"])
    if shown and not renamed:
        return []
    values = (f"{detail['old_value']} -> {detail['new_value']}" if shown
              else f"{_short(detail['old'])} -> {_short(detail['new'])}")
    return [f"{detail['name']}: {values}" + (f", flow parameter {detail['source']!r}" if renamed else "")]


def _diff_lines(diff: str | None) -> list[str]:
    if diff is None:
        return ["  (its source was not kept: no lines to show)"]
    lines = diff.splitlines()
    if len(lines) > DIFF_LINES:
        lines = lines[:DIFF_LINES] + [f"... {len(lines) - DIFF_LINES} more lines (--json has them all)"]
    return [f"  {line}" for line in lines]


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
