"""Arguments that several commands share: FLOW, --store, -p."""

from __future__ import annotations

import argparse
from typing import Any


def add_flow(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flow", metavar="FLOW", help="path/to/file.py[:attr] or package.module[:attr]")


def add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="DIR", help="the store (default: $FLOWKIT_STORE or ./.flowkit)")


def add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--param", dest="params", action="append", metavar="NAME=VALUE",
                        help="a flow parameter: text for a str parameter, else JSON (a bare word counts as text)")


def add_json(parser: argparse.ArgumentParser, what: str = "print JSON, for scripts") -> None:
    parser.add_argument("--json", action="store_true", help=what)


def flow_and_params(ref: str, assignments: list[str] | None) -> tuple[Any, dict[str, Any]]:
    """The flow a FLOW reference names, and the ``-p`` values read against its schema."""
    from flowkit.authoring.params import parse_assignments
    from flowkit.loading import load_flow

    flow = load_flow(ref)
    return flow, parse_assignments(flow.name, assignments, flow.params)


def read_store(spec: str | None) -> Any:
    """The store ``--store`` names, opened to read: nothing is created or written."""
    from flowkit.store import open_store

    return open_store(spec, create=False)


def store_command(sub: Any, name: str, help: str, handler: Any, *, json: bool = False) -> argparse.ArgumentParser:
    """A command that reads a store: its parser with ``--store`` (and ``--json``) and its handler."""
    parser = sub.add_parser(name, help=help)
    if json:
        add_json(parser)
    add_store(parser)
    parser.set_defaults(handler=handler)
    return parser
