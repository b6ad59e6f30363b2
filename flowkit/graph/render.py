"""Pictures of a flow graph: text, Mermaid and Graphviz source, and SVG/PNG through Graphviz's
``dot``; optionally coloured and labelled by how each step fared in one run.

Every node name is escaped for the language it is written in (names are free text: quotes,
backslashes, ``#``, ``<`` and control characters all occur), and the output is deterministic.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

import attrs

from flowkit.errors import UsageError

if TYPE_CHECKING:
    from flowkit.graph.nodes import FlowGraph

FORMATS = ("text", "mermaid", "dot", "svg", "png")
IMAGES = ("svg", "png")
DOT_TIMEOUT = 60.0  # seconds; a few hundred nodes lay out in well under one


@attrs.frozen
class Mark:
    """How one node fared in a run: its status picks the colour, ``took`` (a duration already
    written for people, e.g. ``1.2s``) goes under its name."""

    status: str
    took: str | None = None


@attrs.frozen
class Style:
    fill: str
    stroke: str
    ansi: str  # SGR code for the text format on a terminal
    dashed: bool = False


# In legend order. Light fills under dark text (contrast above 10:1), a darker border of the same
# hue so the states stay apart in greyscale too, dashed borders for steps that did not run.
STYLES: dict[str, Style] = {
    "ran": Style("#c8ecc9", "#2e7d32", "32"),
    "cached": Style("#cfe0fc", "#1f5fbf", "34"),
    "failed": Style("#f9c4c4", "#c62828", "31;1"),
    "skipped": Style("#e6e6e6", "#6b6b6b", "2", dashed=True),
    "interrupted": Style("#ffe4a0", "#a15c00", "33"),
    "pending": Style("#ffffff", "#8a8a8a", "2", dashed=True),
    "not run": Style("#ffffff", "#8a8a8a", "2", dashed=True),
}
_PLAIN = Style("#ffffff", "#455a64", "0")
_INK, _EDGE, _FONT = "#1f2933", "#5f6b76", "Helvetica,Arial,sans-serif"


def render_graph(graph: "FlowGraph", fmt: str, marks: dict[str, Mark] | None = None, *,
                 caption: str | None = None, colour: bool = False) -> str:
    """The graph as text, Mermaid or Graphviz dot. ``marks``: per node, from a run; ``caption``:
    the dot picture's title; ``colour``: ANSI colours in the text format (for a terminal)."""
    marks = marks or {}
    if fmt == "mermaid":
        return _mermaid(graph, marks)
    if fmt == "dot":
        return _dot(graph, marks, caption)
    if fmt == "text":
        return _text(graph, marks, colour)
    raise UsageError(f"unknown graph format {fmt!r}", hint=f"use one of: {', '.join(FORMATS[:3])}")


def label_lines(name: str, mark: Mark | None) -> list[str]:
    """A node's label: its name, then the duration for a step that ran, else its status."""
    if mark is None:
        return [name]
    if mark.status == "ran" and mark.took:
        return [name, mark.took]
    return [name, f"{mark.status}, {mark.took}" if mark.took else mark.status]


def direction(graph: "FlowGraph") -> str:
    """``LR`` for a graph wider than it is deep (a fan-out of 20 reads as a column, not a
    strip of tiny boxes), else ``TB``."""
    levels = graph.generations()
    return "LR" if levels and max(len(level) for level in levels) > len(levels) else "TB"


def visible(text: str) -> str:
    """Control and other unprintable characters written as Python escapes (``\\x07``)."""
    return text if text.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


# --- text ------------------------------------------------------------------------------------------


def _text(graph: "FlowGraph", marks: dict[str, Mark], colour: bool) -> str:
    lines = []
    for name in graph.order():
        ups = graph.upstream(name)
        line = visible(name)
        mark = marks.get(name)
        if mark is not None:
            words = f"[{mark.status} {mark.took}]" if mark.took else f"[{mark.status}]"
            if colour:
                words = f"\033[{STYLES.get(mark.status, _PLAIN).ansi}m{words}\033[0m"
            line += f" {words}"
        lines.append(line + (f"  <- {', '.join(visible(up) for up in ups)}" if ups else ""))
    return "\n".join(lines)


# --- Mermaid ---------------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: characters Mermaid or its HTML would read as syntax
    (quote, entity ``#..;``, tags, markdown backticks) and unprintable ones as ``#NN;`` codes."""
    return "".join(f"#{ord(c)};" if c in '"#&<>`' or not c.isprintable() else c for c in text)


def _mermaid(graph: "FlowGraph", marks: dict[str, Mark]) -> str:
    ids = {name: f"n{i}" for i, name in enumerate(graph.order())}
    lines = [f"graph {'LR' if direction(graph) == 'LR' else 'TD'}"]
    for name, ident in ids.items():
        label = "<br>".join(_mermaid_text(line) for line in label_lines(name, marks.get(name)))
        lines.append(f'    {ident}["{label}"]')
    for name in graph.order():
        lines += [f"    {ids[up]} --> {ids[name]}" for up in graph.upstream(name)]
    for state in [*STYLES, *sorted({m.status for m in marks.values()} - set(STYLES))]:
        members = [ids[n] for n in graph.order() if n in marks and marks[n].status == state]
        if members:
            style = STYLES.get(state, _PLAIN)
            dash = ",stroke-dasharray:5 3" if style.dashed else ""
            css = "".join(c if c.isalnum() else "_" for c in state)
            lines.append(f"    classDef {css} fill:{style.fill},stroke:{style.stroke},color:{_INK}{dash}")
            lines.append(f"    class {','.join(members)} {css}")
    return "\n".join(lines)


# --- Graphviz --------------------------------------------------------------------------------------


def _dot_quoted(text: str) -> str:
    """Text inside a quoted DOT string: ``"`` and ``\\`` escaped (in a label a backslash would
    start ``\\n``, ``\\N``, ``\\l``...), unprintable characters as visible escapes (raw, they
    break the SVG)."""
    return visible(text).replace("\\", "\\\\").replace('"', '\\"')


def _dot_text(text: str) -> str:
    """A quoted DOT label's text: also ``&`` as ``&amp;``, as Graphviz reads entities even outside
    HTML labels (``&lt;`` would show as ``<``)."""
    return _dot_quoted(text).replace("&", "&amp;")


def _html(text: str) -> str:
    """Text inside a Graphviz HTML-like label."""
    return (visible(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _dot_ids(graph: "FlowGraph") -> dict[str, str]:
    """Node IDs: the quoted names (the source stays readable), unless escaping made two alike."""
    ids = {name: f'"{_dot_quoted(name)}"' for name in graph.order()}
    return ids if len(set(ids.values())) == len(ids) else {name: f"n{i}" for i, name in enumerate(ids)}


def _dot(graph: "FlowGraph", marks: dict[str, Mark], caption: str | None) -> str:
    ids = _dot_ids(graph)
    lines = [
        f'digraph "{_dot_quoted(graph.flow_name)}" {{',
        f'    graph [rankdir={direction(graph)}, nodesep=0.3, ranksep=0.45, pad=0.25, bgcolor="white", '
        f'fontname="{_FONT}", fontsize=12, fontcolor="{_INK}", labelloc=t];',
        f'    node [shape=box, style="rounded,filled", fontname="{_FONT}", fontsize=12, fontcolor="{_INK}", '
        f'margin="0.18,0.07", height=0.4, penwidth=1.4];',
        f'    edge [color="{_EDGE}", arrowsize=0.7, penwidth=1.1];',
    ]
    if caption is not None or marks:
        lines.append(f"    label=<{_legend(caption, marks)}>;")
    for name in graph.order():
        mark = marks.get(name)
        style = STYLES.get(mark.status, _PLAIN) if mark else _PLAIN
        label = "\\n".join(_dot_text(line) for line in label_lines(name, mark))
        dash = ', style="rounded,filled,dashed"' if style.dashed else ""
        width = ", penwidth=2.2" if mark and mark.status == "failed" else ""
        lines.append(f'    {ids[name]} [label="{label}", fillcolor="{style.fill}", color="{style.stroke}"{dash}{width}];')
    for name in graph.order():
        lines += [f"    {ids[up]} -> {ids[name]};" for up in graph.upstream(name)]
    lines.append("}")
    return "\n".join(lines)


def _legend(caption: str | None, marks: dict[str, Mark]) -> str:
    """The picture's title and, for a run, one chip styled like a node per status in it."""
    present = [s for s in STYLES if any(m.status == s for m in marks.values())]
    present += sorted({m.status for m in marks.values()} - set(STYLES))
    rows = [f"<tr><td><b>{_html(caption)}</b></td></tr>"] if caption is not None else []
    if present:  # chips, not swatches: Graphviz widens a nested table's cells to its caption's width
        chips = "".join(
            f'<td bgcolor="{STYLES.get(s, _PLAIN).fill}" color="{STYLES.get(s, _PLAIN).stroke}" '
            f'style="rounded{",dashed" if STYLES.get(s, _PLAIN).dashed else ""}">'
            f'<font point-size="11">{_html(s)}</font></td>' for s in present)
        rows.append(f'<tr><td><table border="0" cellborder="1" cellspacing="6" cellpadding="3">'
                    f"<tr>{chips}</tr></table></td></tr>")
    return f'<table border="0" cellborder="0" cellspacing="3">{"".join(rows)}</table>'


def find_dot() -> str:
    """The path of Graphviz's ``dot``; a UsageError that says how to get it when it is missing."""
    found = shutil.which("dot")
    if found is None:
        raise UsageError("Graphviz is not installed: apt-get install graphviz, or use --format dot|mermaid|text")
    return found


def to_image(source: str, fmt: str, timeout: float = DOT_TIMEOUT) -> bytes:
    """SVG or PNG bytes of a dot source, from Graphviz's ``dot`` (the source on its stdin)."""
    if fmt not in IMAGES:
        raise UsageError(f"cannot render {fmt!r} through Graphviz", hint=f"use one of: {', '.join(IMAGES)}")
    command = [find_dot(), f"-T{fmt}"] + (["-Gdpi=144"] if fmt == "png" else [])
    try:
        done = subprocess.run(command, input=source.encode(), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise UsageError(f"Graphviz's dot took longer than {timeout:.0f}s to draw the {fmt}",
                         hint="write --format dot and render it with dot yourself") from None
    except OSError as exc:
        raise UsageError(f"cannot run Graphviz's dot ({command[0]}): {exc.strerror or exc}",
                         hint="reinstall it: apt-get install --reinstall graphviz") from None
    if done.returncode != 0 or not done.stdout:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(f"Graphviz's dot could not draw the {fmt}: {said[-1] if said else f'exit {done.returncode}'}",
                         hint=f"check the install with: echo 'digraph{{a}}' | dot -T{fmt} >/dev/null")
    return done.stdout
