"""``flowkit datasets``: the data flows read (``fk.File`` / ``fk.Dir`` parameters) and wrote (steps
returning them), each version by its content digest, with the runs that used it."""

from __future__ import annotations

import argparse
from typing import Any

from flowkit.cli.args import read_store, store_command
from flowkit.cli.output import print_json, table

_SHORT = 12  # digest characters shown, as `show` prints them


def add_parsers(sub: Any) -> None:
    datasets = store_command(sub, "datasets", "the data flows read and wrote, and its versions over the runs", cmd_datasets, json=True)
    datasets.add_argument("--flow", metavar="NAME", help="only this flow's")


def cmd_datasets(args: argparse.Namespace) -> int:
    from flowkit.store.datasets import datasets

    store = read_store(args.store)
    found = datasets(store, args.flow)
    if args.json:
        print_json({"datasets": [d.to_json() for d in found]})
        return 0
    if not found:
        print("no datasets yet: annotate a flow parameter as fk.File or fk.Dir, or return one from a step")
        return 0
    rows = []
    for dataset in found:
        for i, version in enumerate(dataset.versions):
            first = i == 0
            rows.append([dataset.flow if first else "", f"{dataset.name} ({dataset.role})" if first else "",
                         dataset.kind if first else "", version.digest[:_SHORT], str(version.runs),
                         version.first_run, version.last_run, version.path])
    print(table(rows, ["FLOW", "DATASET", "KIND", "VERSION", "RUNS", "FIRST RUN", "LAST RUN", "PATH"]))
    return 0
