"""The store: atomic content-addressed objects, verified reads, history that survives kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowkit.errors import StoreError
from flowkit.errors import CorruptObject
from flowkit.store import StoredOutput, open_store

SLOW = '''
import time
import flowkit as fk

@fk.step
def first(n: int) -> int:
    return n + 1

@fk.step
def slow(x: int) -> int:
    time.sleep(60)
    return x

@fk.flow
def killable(n: int = 1):
    return slow(first(n))
'''


def test_objects_round_trip_and_leave_no_temporary_files(store: Path) -> None:
    s = open_store(store)
    big = s.put(list(range(5000)), where="test")
    assert open_store(store).load(big.object) == list(range(5000)) and s.has(big)
    small = s.put({"a": [1, 2, 3]}, where="test")
    assert small.inline is not None and not s.object_path(small.object).exists()  # it lives in the records
    assert open_store(store).load(StoredOutput.from_json(small.to_json())) == {"a": [1, 2, 3]}
    assert not [p for p in store.rglob("*") if ".tmp-" in p.name]


def test_a_corrupt_inline_output_is_never_loaded(store: Path) -> None:
    out = open_store(store).put([1, 2, 3], where="test")
    record = out.to_json()
    record["inline"] = StoredOutput(out.object, out.digest, out.size, b"\x80\x05K\x07.").to_json()["inline"]
    with pytest.raises(CorruptObject):
        open_store(store).load(record)


def test_a_corrupt_object_is_never_loaded(store: Path) -> None:
    s = open_store(store)
    out = s.put(list(range(5000)), where="test")  # over INLINE_BYTES: a file of its own
    path = s.object_path(out.object)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptObject):
        open_store(store).load(out.object)  # another process: nothing in memory
    assert not path.exists()  # removed, so the next run makes it again


@pytest.mark.parametrize("backend", ["local", "process"])
def test_a_corrupt_upstream_object_is_made_again(write_module, store: Path, backend: str) -> None:
    mod = write_module('''
import flowkit as fk

@fk.step
def make() -> list:
    return list(range(5000))

@fk.step
def total(xs: list) -> int:
    return sum(xs)

@fk.flow
def corruptible(bump: int = 0):
    return total(make())
''')
    first = mod.corruptible.run(store=store)
    path = open_store(store).object_path(first.steps["make"].output.object)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    # `total` must run (forced) and so load the corrupt input: it re-makes `make` instead
    run = mod.corruptible.run(store=store, force_steps=["total"], backend=backend)
    assert run.status == "succeeded" and run.result == sum(range(5000))
    assert run.steps["make"].status == "ran"


def test_an_unwritable_store_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="not writable"):
        open_store(blocker / "store")


def test_an_output_that_cannot_be_serialized_names_the_step_and_type(write_module, store: Path) -> None:
    mod = write_module('''
import flowkit as fk

@fk.step
def gen():
    return (i for i in range(3))

@fk.flow
def unserializable():
    return gen()
''')
    run = mod.unserializable.run(store=store)
    assert run.status == "failed"
    assert "step 'gen'" in run.steps["gen"].error and "generator" in run.steps["gen"].error


def _flowkit(*args: str, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flowkit", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_loses_no_finished_step_and_leaves_no_partial_file(tmp_path: Path) -> None:
    (tmp_path / "killable.py").write_text(textwrap.dedent(SLOW))
    store = tmp_path / "store"
    proc = _flowkit("run", "killable.py", "--store", str(store), cwd=tmp_path)
    s = open_store(store)
    deadline = time.time() + 30
    while time.time() < deadline and not list(store.glob("keys/*/*.json")):  # `first` finished
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not [p for p in store.rglob("*") if ".tmp-" in p.name]
    fast = (tmp_path / "killable.py").read_text().replace("time.sleep(60)", "pass")
    (tmp_path / "killable.py").write_text(fast)
    done = _flowkit("run", "killable.py", "--store", str(store), "--json", cwd=tmp_path)
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert '"first": {\n      "duration"' in out or '"status": "cached"' in out
    runs = s.index.runs()
    assert [r["status"] for r in runs][0] == "succeeded"
    latest = {n["node"]: n["status"] for n in s.index.nodes(runs[0]["run_id"])}
    assert latest == {"first": "cached", "slow": "ran"}
    killed = runs[1]["run_id"]
    assert runs[1]["status"] == "running"  # the killed run never ended
    assert s.index.rebuild(s.records) == 2  # and its finished step is in its history again
    assert {n["node"]: n["status"] for n in s.index.nodes(killed)} == {"first": "ran"}


def test_reindex_rebuilds_the_same_history(write_module, store: Path) -> None:
    mod = write_module('''
import flowkit as fk

@fk.step
def one(x: int) -> int:
    fk.log_metric("x", x)
    return x

@fk.flow
def indexed(x: int = 1):
    return one(x)
''')
    for x in (1, 2, 1):
        mod.indexed.run(store=store, x=x)
    s = open_store(store)
    before = (s.index.runs(), [s.index.nodes(r["run_id"]) for r in s.index.runs()], s.index.metrics(s.index.runs()[0]["run_id"]))
    (store / "index.sqlite").unlink()
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (store / extra).unlink(missing_ok=True)
    s2 = open_store(store)
    assert s2.index.runs() == []
    assert s2.index.rebuild(s2.records) == 3
    after = (s2.index.runs(), [s2.index.nodes(r["run_id"]) for r in s2.index.runs()], s2.index.metrics(s2.index.runs()[0]["run_id"]))
    assert after == before


def test_gc_removes_the_objects_no_kept_run_refers_to(write_module, store: Path, capsys) -> None:
    import json

    from flowkit.cli import main

    mod = write_module('''
import flowkit as fk

@fk.step
def big(n: int) -> list:
    return [n] * 5000

@fk.flow
def collected(n: int = 1):
    return big(n)
''')
    mod.collected.run(store=store, n=1)
    kept = mod.collected.run(store=store, n=2)
    assert main(["cache", "gc", "--keep", "1", "--store", str(store), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["runs_removed"], report["objects_removed"], report["keys_removed"]) == (1, 1, 1)
    assert report["bytes_freed"] > 10_000
    assert [o.name for o in store.glob("objects/*/*")] == [kept.steps["big"].output.object]
    assert mod.collected.plan(store=store, n=2)["big"].verdict == "cached"
    assert mod.collected.plan(store=store, n=1)["big"].verdict == "run"


def test_the_index_retries_when_another_process_is_creating_it(tmp_path: Path) -> None:
    import sqlite3

    from flowkit.store.index import _prepare

    class Racing:
        """A connection whose first WAL switches fail the way SQLite's do while another process
        creates the file (at once, "database is locked": the busy timeout does not cover it)."""

        def __init__(self, fails: int) -> None:
            self.real = sqlite3.connect(tmp_path / "index.sqlite", isolation_level=None)
            self.fails = fails

        def execute(self, sql: str):
            if "journal_mode" in sql and self.fails:
                self.fails -= 1
                raise sqlite3.OperationalError("database is locked")
            return self.real.execute(sql)

        def executescript(self, sql: str):
            return self.real.executescript(sql)

    racing = Racing(fails=3)
    _prepare(racing, tmp_path / "index.sqlite")  # type: ignore[arg-type]
    assert racing.fails == 0
    assert racing.real.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(StoreError, match="cannot open the history index"):
        _prepare(Racing(fails=10**6), tmp_path / "index.sqlite", patience=0.2)  # type: ignore[arg-type]
