"""``flowkit lineage``: the chain of steps, code, parameters and input data an output came from,
and the runs that made or used it, from the store's records alone."""

from __future__ import annotations

from typing import Any

from flowkit.errors import UsageError
from flowkit.store.records import NodeRecord
from flowkit.store.store import Store

_SHORT = 12


def find(store: Store, ref: str, resolve_run: Any) -> NodeRecord:
    """The node record ``RUN:STEP`` or an output ``DIGEST`` (or its prefix) names."""
    if ":" in ref:
        run_ref, _, step = ref.partition(":")
        run_id = resolve_run(store, run_ref)
        record = store.read_node(run_id, step)
        if record is None:
            names = [n["node"] for n in store.index.nodes(run_id)]
            raise UsageError(f"run {run_id} has no step {step!r}", hint=f"its steps: {', '.join(names) or '(none)'}")
        return record
    rows = store.index.made(ref) if len(ref) >= 6 else []
    digests = {row["output"]["digest"] for row in rows}
    if not rows:
        raise UsageError(f"no output with digest {ref!r} in store {store.root}",
                         hint="give RUN:STEP, or a digest (6 characters or more) as `flowkit show RUN` prints it")
    if len(digests) > 1:
        raise UsageError(f"digest prefix {ref!r} is ambiguous: {', '.join(sorted(d[:_SHORT] for d in digests))}",
                         hint="give more characters")
    first = rows[0]
    record = store.read_node(first["run_id"], first["node"])
    assert record is not None  # the index has it only from the records
    return record


def lineage(store: Store, record: NodeRecord) -> dict[str, Any]:
    """A JSON-ready report, with a ``text`` rendering."""
    seen: dict[str, dict[str, Any]] = {}
    root = _origin(store, record, seen)
    digest = record.output.digest if record.output else None
    uses = _uses(store, digest) if digest else []
    lines = [f"{'output ' + digest[:_SHORT] if digest else 'no output'} of step {record.node!r} "
             f"in run {record.run_id} (flow {record.flow}, {record.status})"]
    _render(root, seen, lines, depth=0, shown=set())
    if uses:
        lines.append("runs that made or used it:")
        lines += [f"  {u['run_id']}  {u['node']}  {u['role']}" for u in uses]
    return {"output": digest, "run_id": record.run_id, "step": record.node, "origin": root,
            "steps": seen, "used_by": uses, "text": "\n".join(lines)}


def _origin(store: Store, record: NodeRecord, seen: dict[str, dict[str, Any]]) -> str:
    """Describe ``record`` and, first, the upstream records its inputs came from (same run)."""
    name = record.node
    if name in seen:
        return name
    parts = store.parts_of(record)
    entry: dict[str, Any] = {"step": name, "run_id": record.run_id, "status": record.status,
                             "output": record.output.digest if record.output else None, "key": record.key,
                             "code": None, "version": None, "image": None, "params": {}, "values": {}, "inputs": {}}
    seen[name] = entry
    if record.status == "cached" and record.key:
        made = store.records.read_key(record.key)
        if made is not None:
            entry["made_in"] = made.run_id
    if parts is None:
        return name
    entry.update(code={"digest": parts.code.digest, "functions": dict(parts.code.parts)},
                 version=parts.version, image=parts.env.image)
    for upstream, digest in record.inputs.items():  # older records have none: then the args name them
        entry["inputs"][upstream] = {"step": upstream, "digest": digest}
    for arg, part in parts.args.items():
        if part.kind == "input" and part.source and not record.inputs:
            entry["inputs"][part.source] = {"step": part.source, "digest": part.fp}
        elif part.kind == "input":
            continue  # named by ``record.inputs`` (or just above)
        elif part.kind == "param":
            entry["params"][arg] = {"param": part.source, "value": part.show, "fp": part.fp}
        else:
            entry["values"][arg] = {"value": part.show, "fp": part.fp}
    for upstream in entry["inputs"]:
        up = store.read_node(record.run_id, upstream)
        if up is not None:
            _origin(store, up, seen)
    return name


def _render(name: str, seen: dict[str, dict[str, Any]], lines: list[str], depth: int, shown: set[str]) -> None:
    entry, pad = seen[name], "  " * depth
    if name in shown:
        lines.append(f"{pad}{name}  (as above)")
        return
    made = f", made in run {entry['made_in']}" if entry.get("made_in") else ""
    code = entry["code"]
    functions = ", ".join(sorted(code["functions"])) if code else "no key"
    lines.append(f"{pad}{name}  [{entry['status']}{made}]  code {code['digest'][:_SHORT] if code else '-'} ({functions})"
                 + (f"  version {entry['version']}" if entry["version"] is not None else "")
                 + (f"  image {entry['image']}" if entry["image"] else ""))
    shown.add(name)
    for arg, param in entry["params"].items():
        lines.append(f"{pad}  {arg} = {param['value']}  (parameter {param['param']}, {param['fp'][:_SHORT]})")
    for arg, value in entry["values"].items():
        lines.append(f"{pad}  {arg} = {value['value'] or '(value)'}  ({value['fp'][:_SHORT]})")
    for up in entry["inputs"].values():
        lines.append(f"{pad}  <- {up['step']}  (output {up['digest'][:_SHORT]})")
        if up["step"] in seen:
            _render(up["step"], seen, lines, depth + 2, shown)


def _uses(store: Store, digest: str) -> list[dict[str, Any]]:
    """Every node of any run that made this output (ran or cached) or took it as an input."""
    found: dict[tuple[str, str], str] = {}
    for row in store.index.made(digest):
        found.setdefault((row["run_id"], row["node"]), "made it" if row["status"] == "ran" else f"{row['status']} it")
    for row in store.index.consumers(digest):
        found.setdefault((row["run_id"], row["node"]), "used it as an input")
    rows = [{"run_id": run, "node": node, "role": role} for (run, node), role in found.items()]
    return sorted(rows, key=lambda r: (r["run_id"], r["node"]))
