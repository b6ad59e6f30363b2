"""A store written before the house was reshaped (tests/golden/store-v1, by commit 8cce682) reads
the same: every record round-trips to the same JSON bytes, every key is the same digest, and a
run of the same flow is all cache hits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flowkit.loading import load_flow
from flowkit.store import open_store
from flowkit.store.gc import reindex
from flowkit.store.records import NodeRecord, RunEnd, RunHeader, dumps_json, loads_json

REPO = Path(__file__).resolve().parents[1]
OLD = REPO / "tests" / "golden" / "store-v1"
FLOW = str(REPO / "tests" / "flows" / "old_store.py")


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(OLD, store)
    return store


def _json_files(folder: str) -> list[Path]:
    return sorted((OLD / folder).rglob("*.json"))


def test_every_old_record_round_trips_to_the_same_bytes() -> None:
    for path in _json_files("keys") + _json_files("runs"):
        data = path.read_bytes()
        parsed = loads_json(data)
        assert parsed is not None, path
        if path.name == "run.json":
            typed = RunHeader.from_json(parsed).to_json()
        elif path.name == "end.json":
            typed = RunEnd.from_json(parsed).to_json()
        elif path.parent.name == "batches":
            typed = {"records": [NodeRecord.from_json(r).to_json() for r in parsed["records"]]}
        else:
            typed = NodeRecord.from_json(parsed).to_json()
        assert dumps_json(typed) == data, path


def test_an_old_store_is_all_cache_hits_with_the_same_keys(old_store: Path) -> None:
    flow = load_flow(FLOW)
    old_keys = {p.stem for p in (OLD / "keys").rglob("*.json")}
    assert {row.verdict for row in flow.plan(store=old_store, label="kept").rows} == {"cached"}
    run = flow.run(store=old_store, label="kept")
    assert {s.status for s in run.steps.values()} == {"cached"}
    assert {s.cache_key for s in run.steps.values()} == old_keys
    assert run.result["label"] == "kept" and run.result["rest"]["n"] == 40
    assert [m.to_json() for m in run.steps["big"].metrics] == [{"name": "count", "step": None, "value": 40.0}]


def test_an_old_store_reindexes_and_explains(old_store: Path) -> None:
    store = open_store(old_store)
    assert reindex(store) == 2  # the flow run and the run-step run
    runs = {r["run_id"]: r for r in store.index.runs()}
    assert runs["rs-1"]["cached"] == 1 and {r["status"] for r in runs.values()} >= {"succeeded"}
    old_run = next(run_id for run_id in runs if run_id != "rs-1")
    assert {n["node"]: n["status"] for n in store.index.nodes(old_run)} == dict.fromkeys(["numbers", "big", "pair"], "ran")
    record = store.read_node("rs-1", "numbers")
    assert record is not None and store.parts_of(record) is not None and record.parts is None  # parts in the key record
