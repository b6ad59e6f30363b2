"""``flowkit datasets``: the data a flow read and wrote, with each version of it over the runs.

A dataset is a flow parameter that is data (``fk.File`` / ``fk.Dir``: its run headers record the
digest of what each run found) or a file or folder a step returned (its output's manifest in
``store.files``). A version is one content digest: the first and the last run that used it,
and how many runs did.

Read from the records and the index, no table of its own: the headers are one small file per
run (a few thousand runs read in a fraction of a second, as ``gc`` reads them), the outputs one
index query, and a manifest is read once per distinct output object (most runs re-use cached
outputs, so there are far fewer of those than node runs).
"""

from __future__ import annotations

from typing import Any

import attrs

from flowkit.store.files import Manifest
from flowkit.store.store import Store


@attrs.frozen
class Use:
    """One run's use of one version of a dataset."""

    digest: str
    path: str
    run_id: str
    when: float
    kind: str
    name: str


@attrs.frozen
class Version:
    """One content of a dataset: where it was last seen, and the runs that used it."""

    digest: str
    path: str
    first_run: str
    last_run: str
    first_used: float
    last_used: float
    runs: int

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Dataset:
    """A data input (``role`` input: the parameter ``source``) or a file a step returned (output:
    the step ``source``, at ``at`` in its value), with its versions, the first used first."""

    flow: str
    name: str
    role: str  # input | output
    kind: str  # file | dir
    source: str
    at: str
    versions: tuple[Version, ...]

    def to_json(self) -> dict[str, Any]:
        return {"flow": self.flow, "name": self.name, "role": self.role, "kind": self.kind, "source": self.source,
                "at": self.at, "versions": [v.to_json() for v in self.versions]}


def datasets(store: Store, flow: str | None = None) -> list[Dataset]:
    """Every dataset of the store (of one flow), inputs first, each by name."""
    uses: dict[tuple[str, str, str, str], list[Use]] = {}
    for run_id in store.records.run_ids():
        header = store.records.read_header(run_id)
        if header is None or not header.data or (flow is not None and header.flow != flow):
            continue
        for name, item in header.data.items():
            uses.setdefault((header.flow, "input", name, ""), []).append(
                Use(item.digest, item.path, run_id, header.started, item.kind, name))
    manifests: dict[str, Manifest | None] = {}
    for row in store.index.outputs(flow):
        object_id = row["object"]
        if not isinstance(object_id, str):
            continue
        if object_id not in manifests:
            manifests[object_id] = store.files.manifest(object_id)
        manifest = manifests[object_id]
        for part in manifest.parts if manifest is not None else ():
            uses.setdefault((row["flow"], "output", row["node"], part.at), []).append(
                Use(part.digest, part.path, row["run_id"], row["started"] or 0.0, part.kind,
                    f"{row['node']}{part.at}:{part.name}"))
    found = [_dataset(key, found) for key, found in uses.items()]
    return sorted(found, key=lambda d: (d.flow, d.role != "input", d.name))


def _dataset(key: tuple[str, str, str, str], uses: list[Use]) -> Dataset:
    flow, role, source, at = key
    uses = sorted(uses, key=lambda u: (u.when, u.run_id))
    by_digest: dict[str, list[Use]] = {}
    for use in uses:
        by_digest.setdefault(use.digest, []).append(use)
    versions = [Version(digest, seen[-1].path, seen[0].run_id, seen[-1].run_id, seen[0].when, seen[-1].when,
                        len({u.run_id for u in seen})) for digest, seen in by_digest.items()]
    latest = uses[-1]
    return Dataset(flow, latest.name, role, latest.kind, source, at, tuple(versions))
