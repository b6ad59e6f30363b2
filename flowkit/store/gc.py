"""Looking at a store and cleaning it: cache entries, sizes, garbage collection, clear, reindex.

``collect`` decides from the records, which are the truth, never from the index (a cache that
may be behind: a killed run's steps, a journal not yet written, a reindex killed half-way). It
keeps whatever a run that may still be alive can need: the run itself, its key records, every
cache entry of its flow or of a step it has (it may hit any of them next; flows share steps),
what it hit in the last second (gc reads its records again after ``SETTLE_SECONDS``), and every
object younger than the grace period (a writer may be between writing an object and the key
record that names it). Runs go first (each in one rename), then key records, then objects and
the kept sources of functions (``store.sources``: kept while a key record that stays names them,
dropped like objects otherwise), so a killed gc leaves only garbage for the next one.

Each operation takes named parameters and returns plain data; the CLI words it.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import attrs

from flowkit.errors import UsageError
from flowkit.store import layout
from flowkit.store.fs import is_temporary
from flowkit.store.records import NodeRecord
from flowkit.store.runs import ENDED, INTERRUPTED, RunState, scan
from flowkit.store.sources import code_digests
from flowkit.store.store import Store

GRACE_SECONDS = 3600.0  # files younger than this that no record names are kept: a writer may be about to
PIN_IDLE_SECONDS = 24 * 3600.0  # a run-step run silent this long no longer keeps its flow's whole cache
SETTLE_SECONDS = 2.0  # twice the journal's period: what a live run hit is in its records by then


@attrs.frozen
class Entry:
    """One cache entry: the step that made it, its key, its output's size."""

    flow: str | None
    step: str | None
    key: str
    size: int
    created: float | None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def entries(store: Store) -> list[Entry]:
    """Every cache entry with an output, by flow, step and age."""
    found = [Entry(r.flow, r.node, r.key or "", r.output.size, r.created)
             for r in store.records.key_records() if r.output is not None]
    return sorted(found, key=lambda e: (e.flow or "", e.step or "", e.created or 0))


def usage(store: Store) -> dict[str, int]:
    """Bytes used by objects, records and the index, the number of objects, and the temporary
    files that writers (running, or killed) left: counted apart, never as objects."""
    fs = store.fs
    sizes: dict[str, int] = {}
    temporary, temporary_count = 0, 0
    for name in (layout.OBJECTS, layout.KEYS, layout.SOURCES, layout.MANIFESTS, layout.FILES, layout.RUNS):
        sizes[name] = 0
        for path in fs.files(name):
            if is_temporary(path):
                temporary += fs.size(path) or 0
                temporary_count += 1
            else:
                sizes[name] += fs.size(path) or 0
    sizes["index"] = sum(fs.size(name) or 0 for name in layout.INDEX_FILES)
    sizes["temporary"] = temporary
    sizes["total"] = sum(sizes.values())
    sizes["objects_count"] = len(store.objects.ids())
    sizes["temporary_count"] = temporary_count
    return sizes


@attrs.frozen
class Collected:
    """What ``gc`` removed."""

    runs_removed: int
    objects_removed: int
    keys_removed: int
    bytes_freed: int
    temporary_removed: int = 0  # files of killed writers, older than the grace period
    sources_removed: int = 0  # kept sources of functions no remaining key record names

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        for name in ("temporary_removed", "sources_removed"):
            if not data[name]:
                del data[name]
        return data


def check_keep(keep: int | None) -> None:
    """``--keep N``: N >= 0 (0 keeps no ended run; runs that may be alive are always kept)."""
    if keep is not None and keep < 0:
        raise UsageError(f"cache gc: --keep must be 0 or more, got {keep}",
                         hint="--keep N keeps the N latest runs of each flow; 0 keeps none that have ended")


def collect(store: Store, keep: int | None = None, *, grace: float = GRACE_SECONDS,
            settle: float = SETTLE_SECONDS) -> Collected:
    """Drop ended runs beyond ``keep`` per flow, then the key records and objects no kept run needs,
    then temporary files older than ``grace`` seconds. While a run may be alive, its cache hits of
    the last second may not be in its records yet: gc waits ``settle`` seconds and reads them again
    before it removes a key record."""
    check_keep(keep)
    if grace < 0:
        raise UsageError(f"cache gc: --grace must be 0 or more seconds, got {grace:g}")
    now = time.time()
    empty_trash(store)
    runs = scan(store.records, now)
    dropped = set(_drop_old_runs(store, runs, keep) if keep is not None else ())
    kept = [run for run in runs if run.run_id not in dropped]
    needs = _Needs.of(store, kept, now)
    keys_removed, doomed, doomed_sources = _collect_keys(store, needs, settle)
    needs.read_again(store)  # a run that started meanwhile may have found an object it now needs
    file_objects, restored = store.files.named(needs.objects)  # the files of kept outputs stay with them
    outputs = set(needs.objects)
    needs.objects |= file_objects
    doomed |= store.files.named(doomed)[0] - needs.objects
    objects_removed, freed = _collect_objects(store, needs, doomed, time.time(), grace,
                                              store.files.named(set(store.files.manifests()))[0])
    freed += store.files.sweep(outputs, restored, time.time(), grace)[1]  # manifests, restored copies
    sources_removed, sources_freed = _collect_sources(store, needs, doomed_sources, time.time(), grace)
    temporary_removed, temporary_freed = sweep_temporary(store, time.time(), grace)
    return Collected(len(dropped), objects_removed, keys_removed, freed + sources_freed + temporary_freed,
                     temporary_removed, sources_removed)


def _drop_old_runs(store: Store, runs: list[RunState], keep: int) -> list[str]:
    """Runs beyond the ``keep`` latest of their flow that have ended (an interrupted run has)."""
    seen: dict[str, int] = {}
    dropped = []
    for run in runs:  # newest first
        if run.flow is None:
            continue  # no readable run.json: not a run gc can place (`cache verify` reports it)
        seen[run.flow] = seen.get(run.flow, 0) + 1
        if seen[run.flow] > keep and run.state in (ENDED, INTERRUPTED):
            # one rename takes the whole run away (a gc killed while deleting leaves no half run)
            if store.fs.move(layout.run_folder(run.run_id), layout.trash_folder(run.run_id, secrets.token_hex(4))):
                dropped.append(run.run_id)
    store.index.forget(dropped)
    empty_trash(store)
    return dropped


def empty_trash(store: Store) -> None:
    """Delete the runs gc moved aside (this one's, or those of a gc killed before it deleted them)."""
    for name in store.fs.folders(layout.TRASH):
        store.fs.delete_tree(f"{layout.TRASH}/{name}")


@attrs.define
class _Needs:
    """What the kept runs refer to, and what runs that may be alive may still ask for: every entry
    of their flows, and every entry of a step of the same name (flows share steps, and a shared
    step has the same key in each)."""

    runs: set[str]
    keys: set[str] = attrs.field(factory=set)
    objects: set[str] = attrs.field(factory=set)
    sources: set[str] = attrs.field(factory=set)  # code digests the kept records name
    live: set[str] = attrs.field(factory=set)  # runs that may be alive
    pinned_flows: set[str] = attrs.field(factory=set)
    pinned_steps: set[str] = attrs.field(factory=set)
    pin_all: bool = False  # a run whose flow is not known yet may be alive: keep every entry

    @property
    def alive(self) -> bool:
        """Some run may be alive: young objects stay even when their record goes."""
        return bool(self.live) or self.pin_all

    @classmethod
    def of(cls, store: Store, kept: list[RunState], now: float) -> "_Needs":
        needs = cls({run.run_id for run in kept})
        for run in kept:
            nodes = store.records.node_records(run.run_id)
            for record in nodes:
                needs.refer(record)
            if run.may_be_alive:
                if run.header is None:  # being created (or damaged): which flow is not known yet
                    needs.pin_all = needs.pin_all or now - (_folder_time(store, run.run_id) or 0.0) < GRACE_SECONDS
                elif run.header.pid is not None or _recent(run, nodes, now):
                    needs.pin(run.run_id, run.header.flow, run.header.nodes)
        return needs

    def pin(self, run_id: str, flow: str, nodes: list[str]) -> None:
        self.live.add(run_id)
        self.pinned_flows.add(flow)
        self.pinned_steps.update(step_name(node) for node in nodes)

    def refer(self, record: NodeRecord) -> None:
        if record.key:
            self.keys.add(record.key)
        if record.output is not None:
            self.objects.add(record.output.object)
        self.sources |= code_digests(record.parts)

    def keeps(self, record: NodeRecord) -> bool:
        return (self.pin_all or record.run_id in self.runs or record.key in self.keys
                or record.flow in self.pinned_flows or step_name(record.node) in self.pinned_steps
                or (record.output is not None and record.output.object in self.objects))

    def read_again(self, store: Store) -> None:
        """What live runs recorded since, and runs that started since: alive, their flows pinned."""
        for run_id in sorted(self.live):
            for record in store.records.node_records(run_id):
                self.refer(record)
        for run_id in store.records.run_folders():
            if run_id not in self.runs:
                self.runs.add(run_id)
                header = store.records.read_header(run_id)
                if header is None:
                    self.pin_all = True
                else:
                    self.pin(run_id, header.flow, header.nodes)


def step_name(node: str) -> str:
    """The step a node runs: ``train-2`` and ``train`` are calls of one step."""
    base, dash, number = node.rpartition("-")
    return base if dash and number.isdigit() and base else node


def _folder_time(store: Store, run_id: str) -> float | None:
    return store.fs.mtime(layout.run_folder(run_id))


def _recent(run: RunState, nodes: list[NodeRecord], now: float) -> bool:
    """A run-step run still at work: a node recorded (or the run begun) within PIN_IDLE_SECONDS."""
    last = max([run.started, *(n.started + n.duration for n in nodes)])
    return now - last < PIN_IDLE_SECONDS


def _collect_keys(store: Store, needs: _Needs, settle: float) -> tuple[int, set[str], set[str]]:
    """Remove key records no kept run needs; the objects and the sources they named (to remove
    unless young)."""
    unneeded: list[tuple[str, NodeRecord | None]] = []
    for path, record in store.records.key_files():
        if record is None or not needs.keeps(record):
            unneeded.append((path, record))
        elif record.output is not None:
            needs.objects.add(record.output.object)
    if unneeded and needs.alive:
        time.sleep(settle)  # a live run's journal is at most a second behind: let it write
    needs.read_again(store)
    removed, doomed, doomed_sources = 0, set(), set()
    for path, record in unneeded:
        if record is not None:
            again = store.records.read_key(record.key or "")
            if again is not None and (again.run_id, again.created) != (record.run_id, record.created):
                record = again  # written anew meanwhile, by a run gc may not have seen
            if needs.keeps(record):
                if record.output is not None:
                    needs.objects.add(record.output.object)
                continue
            if record.output is not None:
                doomed.add(record.output.object)
            doomed_sources |= code_digests(record.parts)
        store.fs.delete(path)
        removed += 1
    return removed, doomed, doomed_sources


def _collect_objects(store: Store, needs: _Needs, doomed: set[str], now: float, grace: float,
                     file_objects: frozenset[str] | set[str] = frozenset()) -> tuple[int, int]:
    """Remove objects nothing kept names. One no record names at all stays while it is young (its
    writer may be about to record it), as does one whose record just went while a run may be alive.
    ``file_objects``: the files outputs held (``store.files``), never taken for bundles (a zip)."""
    removed, freed = 0, 0
    for object_id in store.objects.ids():
        if object_id in needs.objects:
            continue
        path = layout.object_path(object_id)
        mtime = store.fs.mtime(path)
        if mtime is None:
            continue
        young = now - mtime < grace
        if young and (object_id not in doomed or needs.alive):
            continue
        if object_id not in file_objects and store.objects.is_bundle(object_id):
            continue  # a code bundle: no record names it, and compiled files need it
        freed += store.fs.size(path) or 0
        store.fs.delete(path)
        removed += 1
    return removed, freed


def _collect_sources(store: Store, needs: _Needs, doomed: set[str], now: float, grace: float) -> tuple[int, int]:
    """Remove the kept sources no remaining key record (nor a kept run's record) names, by the
    rule objects follow: one no record names stays while young, as does one whose record just went
    while a run may be alive. The key records are read again here, so a source is not removed from
    under a key record written while gc ran."""
    named = needs.sources | {digest for record in store.records.key_records() for digest in code_digests(record.parts)}
    removed, freed = 0, 0
    for digest in store.sources.digests():
        if digest in named:
            continue
        path = layout.source_path(digest)
        mtime = store.fs.mtime(path)
        if mtime is None:
            continue
        if now - mtime < grace and (digest not in doomed or needs.alive):
            continue
        freed += store.fs.size(path) or 0
        store.fs.delete(path)
        removed += 1
    return removed, freed


def sweep_temporary(store: Store, now: float, grace: float) -> tuple[int, int]:
    """Remove what killed writers left: temporary files and half-built indexes older than ``grace``."""
    removed, freed = 0, 0
    paths = [path for name in (layout.OBJECTS, layout.KEYS, layout.SOURCES, layout.MANIFESTS, layout.RUNS)
             for path in store.fs.files(name) if is_temporary(path)]
    paths += [name for name in store.fs.names("") if name.startswith(layout.INDEX_ASIDE)]
    for path in paths:
        mtime = store.fs.mtime(path)
        if mtime is None or now - mtime < grace:
            continue
        freed += store.fs.size(path) or 0
        store.fs.delete(path)
        removed += 1
    return removed, freed


def clear(store: Store) -> None:
    """Remove every object, record and the index."""
    store.close_index()
    for name in layout.TOP_LEVEL:
        store.fs.delete_tree(name)
        store.fs.delete(name)


def reindex(store: Store) -> int:
    """Rebuild the index from the records; the number of runs."""
    return store.index.rebuild(store.records)
