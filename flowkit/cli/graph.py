"""``flowkit graph``: the flow's shape as text, Mermaid, Graphviz dot, SVG or PNG, optionally
coloured and labelled by one run (what ran and how long it took, what came from the cache)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import TYPE_CHECKING, Any

from flowkit.cli.args import add_flow, add_store
from flowkit.errors import UsageError

if TYPE_CHECKING:
    from flowkit.flow import Flow
    from flowkit.graph.render import Mark

FORMATS = ("text", "mermaid", "dot", "svg", "png")
_SUFFIXES = {".txt": "text", ".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot",
             ".svg": "svg", ".png": "png"}
# What a step the run has no record of did, by the run's status.
_UNRECORDED = {"running": "pending", "interrupted": "interrupted", "cancelled": "interrupted"}


def add_parsers(sub: Any) -> None:
    graph = sub.add_parser("graph", help="draw the flow's graph: text, Mermaid, dot, SVG or PNG")
    add_flow(graph)
    graph.add_argument("--format", choices=FORMATS, help="default: from -o FILE's suffix, else text")
    graph.add_argument("--run", metavar="RUN", help="colour and label the steps by this run: an id, a unique "
                                                    "prefix or 'last' (this flow's latest run)")
    graph.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout "
                                                              "(needed for svg/png on a terminal)")
    add_store(graph)
    graph.set_defaults(handler=cmd_graph)


def cmd_graph(args: argparse.Namespace) -> int:
    from flowkit.graph.render import IMAGES, find_dot, render_graph, to_image
    from flowkit.loading import load_flow

    fmt = output_format(args.format, args.output)
    if fmt in IMAGES:
        if args.output is None and sys.stdout.isatty():
            raise UsageError(f"--format {fmt} writes binary data, not for a terminal",
                             hint=f"add -o graph.{fmt}, or pipe it: flowkit graph ... --format {fmt} > graph.{fmt}")
        find_dot()  # before any work: a missing Graphviz is the likeliest failure
    flow = load_flow(args.flow)
    marks, caption = run_marks(flow, args.store, args.run) if args.run else ({}, flow.name)
    colour = fmt == "text" and args.output is None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    text = render_graph(flow.graph, "dot" if fmt in IMAGES else fmt, marks, caption=caption, colour=colour)
    data = to_image(text, fmt) if fmt in IMAGES else None
    if args.output is None:
        if data is None:
            print(text)
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return 0
    write_file(args.output, data if data is not None else (text + "\n").encode())
    print(f"wrote {args.output}")
    return 0


def output_format(given: str | None, output: str | None) -> str:
    """``--format``, else the one ``-o``'s suffix names, else text; a clash of the two is refused
    (an SVG named ``graph.png`` opens nowhere)."""
    suffix = os.path.splitext(output)[1].lower() if output else ""
    implied = _SUFFIXES.get(suffix)
    if given is None:
        return implied or "text"
    if implied is not None and implied != given:
        raise UsageError(f"-o {output} names a {implied} file but --format is {given}",
                         hint=f"use -o {os.path.splitext(output or '')[0]}{_suffix_of(given)} or --format {implied}")
    return given


def _suffix_of(fmt: str) -> str:
    return next(suffix for suffix, name in _SUFFIXES.items() if name == fmt)


def run_marks(flow: "Flow", store_spec: str | None, ref: str) -> tuple[dict[str, "Mark"], str]:
    """Per node of the flow, how it fared in run ``ref``, and the picture's caption."""
    from flowkit.cli.history import resolve_run
    from flowkit.cli.output import seconds
    from flowkit.graph.render import Mark
    from flowkit.store import open_store
    from flowkit.store.runs import shown_status

    store = open_store(store_spec, create=False)
    if ref == "last":  # this flow's latest, not the store's: another flow's run would colour nothing
        latest = store.index.runs(flow=flow.name, limit=1)
        if not latest:
            raise UsageError(f"flow {flow.name!r} has no runs in store {store.root}",
                             hint="run it first: flowkit run FLOW, or pick a run from: flowkit runs")
        run_id = latest[0]["run_id"]
    else:
        run_id = resolve_run(store, ref)
    run = store.index.run(run_id)
    if run["flow"] != flow.name:
        raise UsageError(f"run {run_id} is of flow {run['flow']!r}, not {flow.name!r}",
                         hint=f"list this flow's runs: flowkit runs --flow {shlex.quote(flow.name)}")
    status = shown_status(store.records, run_id, run["status"])
    rows = {row["node"]: row for row in store.index.nodes(run_id)}
    unrecorded = _UNRECORDED.get(status, "not run")
    marks: dict[str, Mark] = {}
    for name in flow.graph.order():
        row = rows.get(name)
        if row is None:
            marks[name] = Mark(unrecorded)
        else:
            took = seconds(row["duration"]) if row["status"] in ("ran", "failed") else None
            marks[name] = Mark(row["status"], took)
    return marks, f"{flow.name}  ·  run {run_id}  ·  {status}"


def write_file(path: str, data: bytes) -> None:
    """Write atomically (a reader never sees half a picture); a folder is refused, not replaced."""
    from flowkit.store.fs import atomic_write

    if os.path.isdir(path):
        raise UsageError(f"-o {path} is a folder", hint=f"name a file in it, e.g. -o {os.path.join(path, 'graph.svg')}")
    atomic_write(os.path.abspath(path), data)
