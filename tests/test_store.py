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


# -- issue #8 B: lost work and crashes found by fault injection ------------------------------------

GATED = '''
import os
import time
import flowkit as fk

@fk.step
def first(n: int) -> int:
    return n + 1

@fk.step
def big(x: int) -> list:
    return [x] * 5000

@fk.step
def gate(xs: list, path: str) -> int:
    while not os.path.exists(path):
        time.sleep(0.02)
    return sum(xs)

@fk.flow
def gated(n: int = 1, path: str = "open"):
    return gate(big(first(n)), path)
'''


def _default_signals() -> None:
    """In the child before exec: SIGTERM and SIGINT as a task runner sends them (a test started in
    the background may have inherited them ignored)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_run_left_behind():
    """A test that fails while a gated run waits must not leave that run waiting for ever."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _start(tmp_path: Path, store: Path, *args: str) -> subprocess.Popen:
    """``flowkit run gated.py`` in a process of its own (killed after the test if still going)."""
    (tmp_path / "gated.py").write_text(textwrap.dedent(GATED))
    proc = subprocess.Popen([sys.executable, "-m", "flowkit", "run", "gated.py", "--store", str(store), *args],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)
    _STARTED.append(proc)
    return proc


def _wait_until(condition, what: str, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _keys(store: Path) -> list[Path]:
    return [p for p in store.glob("keys/*/*.json")]


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from flowkit.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _runs_json(capsys, store: Path) -> list[dict]:
    import json

    code, out, err = _cli(capsys, "runs", "--store", str(store), "--json")
    assert code == 0, err
    return json.loads(out)


def test_gc_keeps_the_finished_steps_of_a_killed_run(tmp_path: Path, capsys) -> None:
    """Killed before its journal reached the index: gc must go by the key records, which have the steps."""
    store = tmp_path / "store"
    proc = _start(tmp_path, store, "-p", "path=never")
    _wait_until(lambda: len(_keys(store)) == 2, "first and big to finish")
    os.kill(proc.pid, signal.SIGKILL)  # within the journal's first second: the index has no node of it
    proc.wait()
    code, out, err = _cli(capsys, "cache", "gc", "--store", str(store), "--grace", "0", "--json")
    assert code == 0, err
    assert len(_keys(store)) == 2 and len(list(store.glob("objects/*/*"))) == 1
    (tmp_path / "open").write_text("")
    again = _start(tmp_path, store, "--json")
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    import json

    assert {n: s["status"] for n, s in json.loads(out)["steps"].items()} == {"first": "cached", "big": "cached",
                                                                              "gate": "ran"}


def test_gc_without_an_index_removes_nothing_the_records_need(write_module, tmp_path: Path, store: Path,
                                                               capsys) -> None:
    (tmp_path / "open").write_text("")
    mod = write_module(GATED)
    for n in (1, 2):
        assert mod.gated.run(store=store, n=n, path=str(tmp_path / "open")).status == "succeeded"
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (store / name).unlink(missing_ok=True)  # an index that is behind: here, entirely
    code, out, err = _cli(capsys, "cache", "gc", "--store", str(store), "--grace", "0", "--json")
    assert code == 0, err
    import json

    assert json.loads(out) == {"runs_removed": 0, "objects_removed": 0, "keys_removed": 0, "bytes_freed": 0}
    for n in (1, 2):
        assert {r.verdict for r in mod.gated.plan(store=store, n=n, path=str(tmp_path / "open")).rows} == {"cached"}


def test_gc_beside_a_live_run_keeps_every_entry_its_flow_may_hit(tmp_path: Path, capsys) -> None:
    """The live run hit the entries of a run gc drops (--keep 0): its journal has not said so yet,
    and it may hit more of them; they stay while it lives, and it ends with every output loadable."""
    import json

    store = tmp_path / "store"
    (tmp_path / "open").write_text("")
    done = _start(tmp_path, store)
    assert done.wait(timeout=60) == 0
    live = _start(tmp_path, store, "-p", "path=later", "--json")
    _wait_until(lambda: len(list(store.glob("runs/*"))) == 2, "the live run to start")
    code, out, err = _cli(capsys, "cache", "gc", "--keep", "0", "--grace", "0", "--store", str(store), "--json")
    assert code == 0, err
    assert json.loads(out)["runs_removed"] == 1  # the ended run; its entries stay for the live one
    (tmp_path / "later").write_text("")
    out, err = live.communicate(timeout=60)
    assert live.returncode == 0, err
    assert {n: s["status"] for n, s in json.loads(out)["steps"].items()} == {
        "first": "cached", "big": "cached", "gate": "ran"}
    s = open_store(store)
    (run,) = s.index.runs()
    assert [s.load(n["output"]) for n in s.index.nodes(run["run_id"]) if n["node"] == "gate"] == [10000]
    assert len(s.load(next(n["output"] for n in s.index.nodes(run["run_id"]) if n["node"] == "big"))) == 5000


def test_a_reindex_killed_half_way_leaves_the_old_index_and_gc_wipes_nothing(write_module, tmp_path: Path,
                                                                             store: Path, monkeypatch,
                                                                             capsys) -> None:
    import json

    from flowkit.store.records import Records

    (tmp_path / "open").write_text("")
    mod = write_module(GATED)
    for n in (1, 2, 3):
        mod.gated.run(store=store, n=n, path=str(tmp_path / "open"))
    before = open_store(store).index.runs()
    real, calls = Records.node_records, []

    def dies_on_the_third_run(self, run_id):
        calls.append(run_id)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill half-way through would stop it
        return real(self, run_id)

    monkeypatch.setattr(Records, "node_records", dies_on_the_third_run)
    with pytest.raises(KeyboardInterrupt):
        open_store(store).index.rebuild(open_store(store).records)
    monkeypatch.setattr(Records, "node_records", real)
    assert open_store(store).index.runs() == before
    assert not list(store.glob("index.sqlite.rebuild-*"))
    code, out, err = _cli(capsys, "cache", "gc", "--store", str(store), "--grace", "0", "--json")
    assert json.loads(out)["keys_removed"] == 0 and json.loads(out)["objects_removed"] == 0


def test_a_damaged_object_is_written_again_so_its_step_stays_cached(write_module, tmp_path: Path,
                                                                     store: Path) -> None:
    (tmp_path / "open").write_text("")
    mod = write_module(GATED)
    first = mod.gated.run(store=store, path=str(tmp_path / "open"))
    path = open_store(store).object_path(first.steps["big"].output.object)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated: a disk or a copy that lost its end
    again = mod.gated.run(store=store, path=str(tmp_path / "open"))
    assert again.steps["big"].status == "ran" and path.read_bytes() == data
    third = mod.gated.run(store=store, path=str(tmp_path / "open"))
    assert {s.status for s in third.steps.values()} == {"cached"}


def test_run_result_and_output_make_a_corrupt_or_lost_output_again(write_module, tmp_path: Path,
                                                                    store: Path) -> None:
    mod = write_module('''
import flowkit as fk

@fk.step
def numbers(n: int) -> list:
    return list(range(n))

@fk.step
def doubled(xs: list) -> list:
    return [2 * x for x in xs]

@fk.flow
def remade(n: int = 3000):
    return doubled(numbers(n))
''')
    run = mod.remade.run(store=store)
    s = open_store(store)
    for name in ("numbers", "doubled"):
        path = s.object_path(run.steps[name].output.object)
        data = bytearray(path.read_bytes())
        data[-5] ^= 0xFF  # the same size: only the digest can tell
        path.write_bytes(bytes(data))
    run.store.objects._recent = type(run.store.objects._recent)()  # as another process would see it
    assert run.result == [2 * x for x in range(3000)]  # doubled made again, from numbers made again
    assert run.steps["doubled"].status == "ran" and run.steps["numbers"].status == "ran"
    s.object_path(run.steps["numbers"].output.object).unlink()  # gone (a gc of another store, a hand)
    run.store.objects._recent = type(run.store.objects._recent)()
    assert run.output("numbers") == list(range(3000))
    latest = {r.node: r.status for r in open_store(store).node_records(run.id)}
    assert latest == {"numbers": "ran", "doubled": "ran"}
    assert {s.status for s in mod.remade.run(store=store).steps.values()} == {"cached"}


def test_a_lost_output_that_cannot_be_made_again_is_a_clear_error(write_module, tmp_path: Path,
                                                                  store: Path) -> None:
    mod = write_module(f'''
import os
import flowkit as fk

@fk.step
def once() -> list:
    if os.path.exists({str(tmp_path / "ran")!r}):
        raise RuntimeError("the source is gone")
    open({str(tmp_path / "ran")!r}, "w").close()
    return list(range(3000))

@fk.flow
def fragile():
    return once()
''')
    run = mod.fragile.run(store=store)
    open_store(store).object_path(run.steps["once"].output.object).unlink()
    run.store.objects._recent = type(run.store.objects._recent)()
    with pytest.raises(StoreError, match="the output of step 'once' is lost .*the source is gone") as caught:
        run.result
    assert "run the flow again" in str(caught.value)


def test_cache_verify_finds_removes_and_reports_every_kind_of_damage(write_module, tmp_path: Path,
                                                                      store: Path, capsys) -> None:
    import json

    (tmp_path / "open").write_text("")
    mod = write_module(GATED)
    run = mod.gated.run(store=store, path=str(tmp_path / "open"))
    assert _cli(capsys, "cache", "verify", "--store", str(store))[0] == 0
    s = open_store(store)
    obj = s.object_path(run.steps["big"].output.object)
    obj.write_bytes(obj.read_bytes()[:-1] + b"\x00")
    big_key = run.steps["big"].cache_key
    key = store / "keys" / run.steps["first"].cache_key[:2] / f"{run.steps['first'].cache_key}.json"
    key.write_text('{"key": "%s", "flow": 7, "node": [], "status": "ran"}' % run.steps["first"].cache_key)
    run_folder = store / "runs" / run.id
    (run_folder / "end.json").write_text("{torn")
    batch = next(run_folder.glob("batches/*.json"))
    batch.write_text('{"records": "none"}')
    run.store.close_index()
    _damage_index(store)
    code, out, err = _cli(capsys, "cache", "verify", "--store", str(store), "--json")
    assert code == 1, err
    found = json.loads(out)
    assert not found["ok"]
    by_path = {p["path"]: (p["what"], p["action"]) for p in found["problems"]}
    assert by_path == {
        f"objects/{obj.parent.name}/{obj.name}": ("corrupt object", "removed"),
        f"keys/{key.parent.name}/{key.name}": ("bad record", "removed"),
        f"keys/{big_key[:2]}/{big_key}.json": ("missing object", "removed"),  # its object was the corrupt one
        f"runs/{run.id}/end.json": ("bad record", "removed"),
        f"runs/{run.id}/batches/{batch.name}": ("bad record", "removed"),
        "index.sqlite": ("damaged index", "rebuilt"),
    }
    assert not obj.exists() and not key.exists()
    assert _cli(capsys, "cache", "verify", "--store", str(store))[0] == 0  # what was wrong is gone
    again = mod.gated.run(store=store, path=str(tmp_path / "open"))
    assert again.result == 10000 and again.steps["first"].status == "ran" and again.steps["big"].status == "ran"
    (run_folder / "run.json").write_text('{"flow": "gated", "started": "yesterday"}')
    code, out, _ = _cli(capsys, "cache", "verify", "--store", str(store))
    assert code == 1 and f"bad record: runs/{run.id}/run.json: not a valid record" in out


@pytest.mark.parametrize("backend", ["local", "process"])
def test_sigterm_ends_the_run_as_cancelled(tmp_path: Path, backend: str, capsys) -> None:
    store = tmp_path / "store"
    proc = _start(tmp_path, store, "-p", "path=later", "--backend", backend)
    _wait_until(lambda: len(_keys(store)) == 2, "first and big to finish")
    proc.send_signal(signal.SIGTERM)  # how Airflow, Kubernetes and CI stop a task
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "cancelled (stopped by SIGTERM)" in err and "Traceback" not in err
    (run,) = _runs_json(capsys, store)
    assert (run["status"], run["error"]) == ("cancelled", "stopped by SIGTERM")
    # `big` may have finished in its worker a moment before the stop reached the parent: its key
    # record has it, and so does the history once rebuilt from the records
    assert _cli(capsys, "cache", "reindex", "--store", str(store))[0] == 0
    assert [(r["ran"], r["status"]) for r in _runs_json(capsys, store)] == [(2, "cancelled")]
    (tmp_path / "later").write_text("")
    again = _start(tmp_path, store, "-p", "path=later")
    assert again.wait(timeout=60) == 0
    assert _runs_json(capsys, store)[0]["cached"] == 2


def test_a_full_disk_ends_the_run_as_failed_with_the_error(write_module, tmp_path: Path, store: Path,
                                                           monkeypatch, capsys) -> None:
    import errno

    from flowkit.store import fs

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell which file a write goes to")
    (tmp_path / "open").write_text("")
    mod = write_module(GATED)
    real = os.fdopen

    class Full:
        """What a full disk does: every write into objects/ fails with ENOSPC."""

        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def fdopen(fd, *args, **kwargs):
            if "/objects/" in os.readlink(f"/proc/self/fd/{fd}"):
                os.close(fd)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(fd, *args, **kwargs)

    monkeypatch.setattr(fs, "os", Full())
    with pytest.raises(StoreError, match="No space left on device"):
        mod.gated.run(store=store, path=str(tmp_path / "open"))
    monkeypatch.undo()
    (run,) = _runs_json(capsys, store)
    assert run["status"] == "failed" and "No space left on device" in run["error"]
    assert not [p for p in store.rglob("*") if ".tmp-" in p.name]
    assert mod.gated.run(store=store, path=str(tmp_path / "open")).steps["first"].status == "cached"


def test_a_killed_run_shows_as_interrupted_and_gc_keep_treats_it_as_ended(tmp_path: Path, capsys) -> None:
    import json

    store = tmp_path / "store"
    killed = _start(tmp_path, store, "-p", "path=never")
    _wait_until(lambda: len(_keys(store)) == 2, "the first run's steps")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    live = _start(tmp_path, store, "-p", "n=5", "-p", "path=later")
    _wait_until(lambda: len(_keys(store)) == 4, "the second run's steps")
    try:
        runs = _runs_json(capsys, store)
        assert [r["status"] for r in runs] == ["running", "interrupted"]
        code, out, _ = _cli(capsys, "show", runs[1]["run_id"], "--store", str(store))
        assert "interrupted" in out.splitlines()[0]
        code, out, err = _cli(capsys, "cache", "gc", "--keep", "0", "--store", str(store), "--json")
        assert code == 0, err
        assert json.loads(out)["runs_removed"] == 1
        assert [r["status"] for r in _runs_json(capsys, store)] == ["running"]
    finally:
        (tmp_path / "later").write_text("")
        assert live.wait(timeout=60) == 0


def test_a_run_header_names_its_process_and_a_used_again_pid_is_not_it(tmp_path: Path) -> None:
    from flowkit.store import liveness
    from flowkit.store.records import RunHeader
    from flowkit.store.runs import INTERRUPTED, RUNNING, state_of

    s = open_store(tmp_path / "store")
    pid, host, start = liveness.this_process()
    base = dict(flow="f", params={}, nodes=["a"], backend="local", started=time.time())
    cases = {
        "alive": (RunHeader(**base, pid=pid, host=host, pid_start=start), RUNNING),
        "reused": (RunHeader(**base, pid=pid, host=host, pid_start="another-process"), INTERRUPTED),
        "gone": (RunHeader(**base, pid=2**22 + 12345, host=host), INTERRUPTED),
        "remote-fresh": (RunHeader(**base, pid=1, host="elsewhere"), RUNNING),
        "remote-stale": (RunHeader(**{**base, "started": time.time() - 3600}, pid=1, host="elsewhere"), INTERRUPTED),
    }
    for run_id, (header, _) in cases.items():
        s.records.write_header(run_id, header)
        assert s.records.read_header(run_id) == header
    assert {run_id: state_of(s.records, run_id).state for run_id in cases} == {k: v for k, (_, v) in cases.items()}
    (tmp_path / "store" / "runs" / "remote-stale" / "heartbeat").touch()  # it beat a moment ago
    assert state_of(s.records, "remote-stale").state == RUNNING
    old = RunHeader(**base)  # run-step and older records: no process, read and written as before
    assert "pid" not in old.to_json() and RunHeader.from_json(old.to_json()) == old


def test_a_live_run_touches_its_heartbeat(tmp_path: Path, monkeypatch) -> None:
    from flowkit.store import liveness
    from flowkit.store.journal import Journal
    from flowkit.store.records import RunHeader

    monkeypatch.setattr(liveness, "HEARTBEAT_SECONDS", 0.05)
    s = open_store(tmp_path / "store")
    s.records.write_header("r1", RunHeader("f", {}, [], "local", time.time()))
    journal = Journal(s, "r1", seconds=0.02)
    journal.start()
    try:
        _wait_until(lambda: (tmp_path / "store" / "runs" / "r1" / "heartbeat").exists(), "a heartbeat", 10)
    finally:
        journal.close()


def _damage_index(store: Path) -> None:
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (store / extra).unlink(missing_ok=True)
    (store / "index.sqlite").write_bytes(b"file is not a database" * 200)


def test_a_damaged_index_is_rebuilt_from_the_records_by_any_command(tmp_path: Path, capsys) -> None:
    import json

    store = tmp_path / "store"
    (tmp_path / "open").write_text("")
    assert _start(tmp_path, store).wait(timeout=60) == 0
    before = _runs_json(capsys, store)
    for args in (["runs"], ["show", "last"], ["cache", "ls"], ["cache", "du"], ["cache", "gc"], ["cache", "reindex"],
                 ["explain", "last", "gate"]):
        _damage_index(store)
        code, out, err = _cli(capsys, *args, "--store", str(store))
        assert code == 0, (args, err)
    _damage_index(store)
    proc = _start(tmp_path, store, "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert {s["status"] for s in json.loads(out)["steps"].values()} == {"cached"}
    after = _runs_json(capsys, store)
    assert [r["run_id"] for r in after[1:]] == [r["run_id"] for r in before] and len(after) == 2


def test_runs_and_show_work_on_a_read_only_store(tmp_path: Path) -> None:
    import shutil
    import tempfile

    as_user: list[str] = []
    where = tmp_path
    if os.geteuid() == 0:  # root writes anywhere: look as nobody, as a user of someone else's store would
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot look as another user")
        as_user = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        where = Path(tempfile.mkdtemp(prefix="flowkit-ro-"))  # pytest's own tmp folders are root's only
        where.chmod(0o755)
    store = where / "store"
    try:
        (where / "open").write_text("")
        assert _start(where, store).wait(timeout=60) == 0
        for path in [store, *store.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        for args in (["runs"], ["show", "last"], ["cache", "ls"], ["cache", "du"]):
            proc = subprocess.run([*as_user, sys.executable, "-m", "flowkit", *args, "--store", str(store)],
                                  cwd=where, capture_output=True, text=True, timeout=60)
            assert proc.returncode == 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
            if args[0] in ("runs", "show"):
                assert "gated" in proc.stdout and "succeeded" in proc.stdout, proc.stdout
    finally:
        for path in [store, *store.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if where != tmp_path:
            shutil.rmtree(where, ignore_errors=True)


def test_bad_records_are_skipped_with_a_warning_naming_the_file(write_module, tmp_path: Path, store: Path,
                                                                  caplog, capsys) -> None:
    (tmp_path / "open").write_text("")
    mod = write_module(GATED)
    run = mod.gated.run(store=store, path=str(tmp_path / "open"))
    key = run.steps["big"].cache_key
    key_file = store / "keys" / key[:2] / f"{key}.json"
    key_file.write_text('{"key": "%s", "flow": "gated", "node": "big", "status": "ran", "started": "soon", '
                        '"output": {"object": 5, "digest": [], "size": "big"}, "metrics": 3}' % key)
    header = store / "runs" / run.id / "run.json"
    other = store / "runs" / "junk-run"
    other.mkdir()
    (other / "run.json").write_text('{"flow": ["not", "a", "name"], "started": 1, "nodes": "all"}')
    again = mod.gated.run(store=store, path=str(tmp_path / "open"))
    assert again.steps["big"].status == "ran" and again.result == 10000
    assert '"object":5' not in key_file.read_text()  # written anew by the step that ran
    caplog.clear()
    code, out, err = _cli(capsys, "cache", "reindex", "--store", str(store))
    assert code == 0 and "re-indexed 2 runs" in out
    assert any("runs/junk-run/run.json" in r.getMessage() and "not a valid record" in r.getMessage()
               for r in caplog.records)
    assert header.exists()
    for args in (["runs"], ["cache", "ls"], ["cache", "gc"], ["cache", "du"]):
        assert _cli(capsys, *args, "--store", str(store))[0] == 0, args


def test_parameters_and_logged_params_stay_exact_through_the_records(write_module, store: Path, capsys) -> None:
    import math

    mod = write_module('''
import flowkit as fk

@fk.step
def show(big: int, x: float) -> str:
    fk.log_param("seed", big * 3)
    return f"{big} {x}"

@fk.flow
def exact(big: int = 0, x: float = 0.0):
    return show(big, x)
''')
    run = mod.exact.run(store=store, big=2**70 + 1, x=float("nan"))
    assert run.result == f"{2**70 + 1} nan"
    s = open_store(store)
    assert s.index.rebuild(s.records) == 1
    (row,) = s.index.runs()
    assert row["params"]["big"] == 2**70 + 1 and isinstance(row["params"]["big"], int)
    assert math.isnan(row["params"]["x"])
    assert s.index.logged_params(run.id) == [{"node": "show", "name": "seed", "value": 3 * (2**70 + 1)}]
    cached = mod.exact.run(store=store, big=2**70 + 1, x=float("nan"))  # NaN != NaN, yet the same key
    assert cached.steps["show"].logged_params == {"seed": 3 * (2**70 + 1)}


def test_temporary_files_of_killed_writers_are_not_objects_and_gc_removes_the_old_ones(store: Path,
                                                                                       capsys) -> None:
    import json

    s = open_store(store)
    s.put(list(range(5000)), where="test")
    stale = [store / "objects" / "ab" / ".abcd.tmp-999-dead", store / "keys" / "ab" / ".abcd.json.tmp-999-dead",
             store / "runs" / "r" / "batches" / ".1-2.json.tmp-999-dead", store / "index.sqlite.rebuild-999-dead"]
    fresh = store / "objects" / "cd" / ".cdef.tmp-1000-live"
    for path in [*stale, fresh]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 1000)
    for path in stale:
        os.utime(path, (time.time() - 7200, time.time() - 7200))  # two hours old: its writer is gone
    code, out, _ = _cli(capsys, "cache", "du", "--store", str(store), "--json")
    usage = json.loads(out)
    assert (usage["objects_count"], usage["temporary_count"]) == (1, 4) and usage["temporary"] == 4000
    code, out, _ = _cli(capsys, "cache", "gc", "--store", str(store), "--json")
    assert json.loads(out)["temporary_removed"] == 4 and json.loads(out)["bytes_freed"] == 4000
    assert fresh.exists() and not any(path.exists() for path in stale)


def test_gc_keep_must_be_zero_or_more(store: Path, capsys) -> None:
    code, out, err = _cli(capsys, "cache", "gc", "--keep", "-1", "--store", str(store))
    assert code == 2 and err.startswith("error: cache gc: --keep must be 0 or more, got -1")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2
    code, out, err = _cli(capsys, "cache", "gc", "--keep-last", "-1", "--store", str(store))  # SPEC §12's name
    assert code == 2 and "--keep must be 0 or more" in err


def test_verify_beside_a_writer_keeps_an_entry_whose_object_came_after_the_listing(write_module, tmp_path: Path,
                                                                                   store: Path, monkeypatch,
                                                                                   capsys) -> None:
    """A run writes an object, then its key record: verify, which lists the objects first, must not
    take the new record for one whose object is gone."""
    from flowkit.store.objects import Objects

    (tmp_path / "open").write_text("")
    mod = write_module(GATED)
    run = mod.gated.run(store=store, path=str(tmp_path / "open"))
    monkeypatch.setattr(Objects, "ids", lambda self: [])  # as listed a moment before `big` was stored
    assert _cli(capsys, "cache", "verify", "--store", str(store))[0] == 0
    monkeypatch.undo()
    assert {s.status for s in mod.gated.run(store=store, path=str(tmp_path / "open")).steps.values()} == {"cached"}
    assert run.steps["big"].output.inline is None  # the entry this is about has an object file


def test_gc_keeps_code_bundles(tmp_path: Path, capsys) -> None:
    from flowkit.store.bundle import make_bundle

    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "flow.py").write_text("X = 1\n" * 1000)
    s = open_store(tmp_path / "store")
    digest = s.objects.put_bytes(make_bundle(tmp_path / "project"))
    code, out, err = _cli(capsys, "cache", "gc", "--grace", "0", "--store", str(tmp_path / "store"))
    assert code == 0 and s.object_path(digest).exists()


def test_gc_keep_last_keeps_n_runs_per_flow_each_of_which_reloads_every_output(write_module, store: Path,
                                                                                capsys) -> None:
    from flowkit.cli import main

    mod = write_module('''
import flowkit as fk

@fk.step
def make(n: int, offset: int = 0) -> list:
    return [n + offset] * 3000

@fk.step
def shared() -> list:
    return list(range(3000))

@fk.step
def both(xs: list, ys: list) -> int:
    return sum(xs) + sum(ys)

@fk.flow
def first(n: int = 0):
    return both(make(n), shared())

@fk.flow
def second(n: int = 0):
    return both(make(n, 100), shared())
''')
    runs = {flow: [getattr(mod, flow).run(store=store, n=n) for n in range(4)] for flow in ("first", "second")}
    assert main(["cache", "gc", "--keep-last", "2", "--grace", "0", "--store", str(store)]) == 0
    capsys.readouterr()
    s = open_store(store, create=False)
    kept = {run.id for flow_runs in runs.values() for run in flow_runs[-2:]}
    assert {r["run_id"] for r in s.index.runs(limit=100)} == kept
    for run_id in kept:
        for record in s.node_records(run_id):
            assert s.load(record.output) is not None  # every output of a kept run loads, verified
    dropped = {run.steps["make"].output.object for flow_runs in runs.values() for run in flow_runs[:2]}
    on_disk = {p.name for p in store.glob("objects/*/*")}
    assert not dropped & on_disk  # what only the dropped runs made is gone
    assert runs["first"][0].steps["shared"].output.object in on_disk  # shared with kept runs: kept
