"""The state of each run, from its records (the truth), never from the index (a cache that may be
behind): what ``gc`` decides with, and what ``runs`` and ``show`` print for a run with no end.

A run with ``end.json`` has ended. A run started by ``flowkit run`` / ``Flow.run`` names its
process in ``run.json``: without an end it is ``running`` while that process lives and
``interrupted`` once it is gone. A run recorded by ``run-step`` (an orchestrator's, no single
process) is ``running`` until every node is recorded or one failed, as the index computes it.
"""

from __future__ import annotations

import time

import attrs

from flowkit.store import layout, liveness
from flowkit.store.records import NodeRecord, Records, RunEnd, RunHeader

ENDED, INTERRUPTED, RUNNING = "ended", "interrupted", "running"
UNKNOWN = "unknown"  # a run folder without a readable run.json: being created, or damaged


@attrs.frozen
class RunState:
    """One run as its records show it."""

    run_id: str
    header: RunHeader | None
    end: RunEnd | None
    state: str  # ended | interrupted | running | unknown

    @property
    def flow(self) -> str | None:
        return self.header.flow if self.header is not None else None

    @property
    def started(self) -> float:
        return self.header.started if self.header is not None else 0.0

    @property
    def may_be_alive(self) -> bool:
        """A process may still write this run's records and read what its steps made."""
        return self.state in (RUNNING, UNKNOWN)


def process_state(records: Records, run_id: str, header: RunHeader, now: float) -> str | None:
    """``running`` or ``interrupted`` for a run whose header names its process; None for one
    recorded by run-step (no single process to ask)."""
    if header.pid is None:
        return None
    alive = liveness.process_alive(header.pid, header.host, header.pid_start)
    if alive is None:  # another host: its heartbeat tells
        beat = records.fs.mtime(layout.run_heartbeat_path(run_id))
        alive = liveness.heartbeat_fresh(max(beat or 0.0, header.started), now)
    return RUNNING if alive else INTERRUPTED


def orchestrated_state(header: RunHeader, nodes: list[NodeRecord]) -> str:
    """A run-step run: ended once every node is recorded or one failed (as the index says)."""
    if any(n.status == "failed" for n in nodes) or len({n.node for n in nodes}) >= len(header.nodes):
        return ENDED
    return RUNNING


def state_of(records: Records, run_id: str, now: float | None = None,
             nodes: list[NodeRecord] | None = None) -> RunState:
    """The state of one run; ``nodes``: its node records, if the caller has read them already."""
    now = time.time() if now is None else now
    header = records.read_header(run_id)
    if header is None:
        return RunState(run_id, None, None, UNKNOWN)
    end = records.read_end(run_id)
    if end is not None:
        return RunState(run_id, header, end, ENDED)
    state = process_state(records, run_id, header, now)
    if state is None:
        state = orchestrated_state(header, records.node_records(run_id) if nodes is None else nodes)
    return RunState(run_id, header, None, state)


def scan(records: Records, now: float | None = None) -> list[RunState]:
    """Every run folder of the store with its state, newest first."""
    now = time.time() if now is None else now
    found = [state_of(records, run_id, now) for run_id in records.run_folders()]
    return sorted(found, key=lambda r: (r.started, r.run_id), reverse=True)


def shown_status(records: Records, run_id: str, indexed: str, now: float | None = None) -> str:
    """The status to print for a run the index calls ``indexed``: ``interrupted`` for a running
    one whose process is gone."""
    if indexed != RUNNING:
        return indexed
    header = records.read_header(run_id)
    if header is None:
        return indexed
    end = records.read_end(run_id)
    if end is not None:
        return end.status  # the index is behind the records (its write failed): they are the truth
    return process_state(records, run_id, header, time.time() if now is None else now) or indexed
