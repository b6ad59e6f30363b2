"""Text, Mermaid and Graphviz renderings of a flow graph, optionally coloured by run status."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowkit.graph.nodes import FlowGraph

_COLOURS = {"ran": "#8fd18f", "cached": "#9ec5fe", "failed": "#f4a3a3", "skipped": "#dddddd"}


def render_graph(graph: "FlowGraph", fmt: str, status: dict[str, str] | None = None) -> str:
    status = status or {}
    if fmt == "mermaid":
        return _mermaid(graph, status)
    if fmt == "dot":
        return _dot(graph, status)
    lines = []
    for name in graph.order():
        ups = graph.upstream(name)
        mark = f" [{status[name]}]" if name in status else ""
        lines.append(f"{name}{mark}" + (f"  <- {', '.join(ups)}" if ups else ""))
    return "\n".join(lines)


def _mermaid(graph: "FlowGraph", status: dict[str, str]) -> str:
    ids = {name: f"n{i}" for i, name in enumerate(graph.order())}
    lines = ["graph TD"]
    for name, ident in ids.items():
        label = name.replace('"', "#quot;")
        lines.append(f'    {ident}["{label}"]')
    for name in graph.order():
        lines += [f"    {ids[up]} --> {ids[name]}" for up in graph.upstream(name)]
    for state, colour in _COLOURS.items():
        members = [ids[n] for n in graph.order() if status.get(n) == state]
        if members:
            lines.append(f"    classDef {state} fill:{colour}")
            lines.append(f"    class {','.join(members)} {state}")
    return "\n".join(lines)


def _dot(graph: "FlowGraph", status: dict[str, str]) -> str:
    lines = [f"digraph {json.dumps(graph.flow_name)} {{", "    node [shape=box, style=filled, fillcolor=white];"]
    for name in graph.order():
        fill = _COLOURS.get(status.get(name, ""), "white")
        lines.append(f"    {json.dumps(name)} [fillcolor={json.dumps(fill)}];")
    for name in graph.order():
        lines += [f"    {json.dumps(up)} -> {json.dumps(name)};" for up in graph.upstream(name)]
    lines.append("}")
    return "\n".join(lines)
