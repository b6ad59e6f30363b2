"""Fault injection on a real store (issue #8 B): kills at random points, gc beside live runs, gc and
reindex killed, every kind of store file damaged. Seeded (``FLOWKIT_FAULT_SEED`` picks another
seed) and bounded to about a minute; ``bench/bench_faults.py`` is the long version.

Three things are checked every time:
- no finished step lost: the next run re-uses every step whose key record is in the store;
- no wrong value: every output of the next run equals what the plain functions give;
- no crash: every command exits 0 or with a one-line error (no traceback).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from flowkit.cli import main
from flowkit.loading import load_flow
from flowkit.store import open_store

SEED = int(os.environ.get("FLOWKIT_FAULT_SEED", "8"))

FLOW = (Path(__file__).parent / "flows" / "faulty.py").read_text()  # shared with bench/bench_faults.py


def expected(salt: int, extra: int = 0) -> dict[str, Any]:
    """What the flow must give: ``expected`` of tests/flows/faulty.py, run from its text (NAME is a placeholder)."""
    namespace: dict[str, Any] = {"NAME": "expected"}
    exec(compile(FLOW, "faulty.py", "exec"), namespace)
    return namespace["expected"](salt, extra)


class Faults:
    """One store, the flow files that run on it, and the checks."""

    def __init__(self, root: Path, capsys: Any, flows: int = 1) -> None:
        self.root, self.capsys = root, capsys
        self.store = root / "store"
        self.files = []
        for i in range(flows):
            path = root / f"faults_{secrets.token_hex(4)}.py"  # a module name no other test imported
            path.write_text(textwrap.dedent(FLOW.replace("NAME", repr(f"faulty{i}"))))
            self.files.append(path)

    def start(self, *args: str, flow: int = 0, pause: float = 0.02, backend: str = "local") -> subprocess.Popen:
        """``flowkit run`` of one flow in a process of its own."""
        return subprocess.Popen([sys.executable, "-m", "flowkit", "run", str(self.files[flow]), "--store",
                                 str(self.store), "--backend", backend, *args], cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "FAULT_PAUSE": str(pause)}, preexec_fn=_default_signals)

    def command(self, *args: str) -> tuple[int, str]:
        """A flowkit command in this process: exit 0, or a clear error of one or two lines."""
        code = main([*args, "--store", str(self.store)])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err, (args, err)
        if code not in (0, 1) or (code == 1 and args[:2] != ("cache", "verify")):
            lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
            assert lines and lines[0].startswith("error: ") and len(lines) <= 2, (args, code, err)
        return code, out

    def keys(self) -> set[str]:
        """The cache keys in the store, as `cache ls` lists them."""
        code, out = self.command("cache", "ls", "--json")
        assert code == 0
        return {entry["key"] for entry in json.loads(out)}

    def complete(self, salt: int, flow: int = 0, backend: str = "local", excused: frozenset[str] = frozenset(),
                 extra: int = 0) -> dict[str, str]:
        """Run to the end; check that every step whose key record was there is re-used (but those whose
        record or object a test damaged: ``excused``) and that every output is right. Returns each
        node's status."""
        before = self.keys() - excused
        run = load_flow(str(self.files[flow])).run(store=self.store, backend=backend, salt=salt, extra=extra)
        assert run.status == "succeeded", {n: o.error for n, o in run.steps.items()}
        lost = [n for n, o in run.steps.items() if o.cache_key in before and o.status != "cached"]
        assert not lost, f"finished steps run again: {lost}"
        right = expected(salt, extra)
        wrong = [n for n in run.steps if run.output(n) != right[n]]  # one found corrupt is made again
        assert not wrong, f"wrong outputs: {wrong}"
        assert run.result == right["combine"]
        return {n: o.status for n, o in run.steps.items()}


def _default_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _kill_at(proc: subprocess.Popen, delay: float, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` after ``delay`` seconds; True when the process was still there to be killed."""
    deadline = time.time() + delay
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    alive = proc.poll() is None
    if alive:
        proc.send_signal(sig)
    proc.communicate(timeout=60)
    return alive


@pytest.mark.parametrize("backend", ["local", "process"])
def test_kills_at_random_points_lose_no_finished_step(tmp_path: Path, capsys, backend: str) -> None:
    """SIGKILL (and now and then SIGTERM) at a random moment of a run: nothing corrupt is left, the
    run shows as interrupted (or cancelled), and the next run re-uses every finished step."""
    rng = random.Random(f"{SEED}-kill-{backend}")
    faults = Faults(tmp_path, capsys)
    kills = 0
    for trial in range(9):
        salt = 10 * trial + rng.randrange(10)  # new keys; `shared` and what follows it are cached from the first
        sig = signal.SIGTERM if trial % 3 == 2 else signal.SIGKILL
        before = {r["run_id"] for r in json.loads(faults.command("runs", "--json")[1])}
        run = faults.start("-p", f"salt={salt}", backend=backend, pause=0.1)
        kills += _kill_at(run, rng.uniform(0.2, 0.9), sig)
        # -SIGTERM: it came while flowkit was starting or exiting, before or after the run it records
        assert run.returncode in (0, -signal.SIGKILL, -signal.SIGTERM, 143), run.returncode
        assert faults.command("cache", "verify")[0] == 0  # a kill leaves nothing corrupt, only temporaries
        code, out = faults.command("runs", "--json")
        killed = [r for r in json.loads(out) if r["run_id"] not in before]  # none: killed before it began
        ended = {-signal.SIGKILL: "interrupted", -signal.SIGTERM: "interrupted", 143: "cancelled",
                 0: "succeeded"}[run.returncode]
        assert code == 0 and all(r["status"] in (ended, "succeeded") for r in killed), (killed, run.returncode)
        faults.complete(salt, backend=backend)
    assert kills >= 4  # the seed's delays reach runs that are going


def test_gc_beside_live_runs_loses_nothing(tmp_path: Path, capsys) -> None:
    """Runs of two flows go while gc runs again and again with --keep 1 and a short grace (so that the
    records decide, not the age of files). Flows share steps: one live run hits the entries a third
    flow's run made, which --keep 1 drops, and works on; the other makes new ones. What the live
    runs use and make must survive."""
    faults = Faults(tmp_path, capsys, flows=3)
    for flow in range(3):
        faults.complete(0, flow=flow)  # flow 0 runs every step; flows 1 and 2 hit its entries
    faults.complete(9, flow=0)  # flow 0's run above is now beyond --keep 1, with the entries it made
    cases = {1: ("0", "1", "local"), 2: ("5", "0", "process")}  # flow: salt, extra, backend
    live = [faults.start("-p", f"salt={salt}", "-p", f"extra={extra}", flow=flow, pause=0.4, backend=backend)
            for flow, (salt, extra, backend) in cases.items()]
    collections = 0
    while any(proc.poll() is None for proc in live):
        gc = subprocess.run([sys.executable, "-m", "flowkit", "cache", "gc", "--keep", "1", "--grace", "1",
                             "--store", str(faults.store)], capture_output=True, text=True, timeout=60)
        assert gc.returncode == 0 and "Traceback" not in gc.stderr, gc.stderr
        collections += 1
    for proc in live:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert collections >= 2
    runs = json.loads(faults.command("runs", "--json")[1])
    latest = {run["flow"]: run for run in reversed(runs)}
    s = open_store(faults.store)
    for flow, (salt, extra, _) in cases.items():
        right = expected(int(salt), int(extra))
        nodes = s.index.nodes(latest[f"faulty{flow}"]["run_id"])
        assert {n["node"]: s.load(n["output"]) for n in nodes} == right  # every output is there, right
        assert set(faults.complete(int(salt), flow=flow, extra=int(extra)).values()) == {"cached"}


def test_killed_gc_and_reindex_lose_nothing(tmp_path: Path, capsys) -> None:
    """gc and reindex SIGKILLed at random points of a long history: a killed reindex leaves the old
    index or the whole new one, a gc after it removes nothing, nothing is corrupt, no kept step is lost."""
    rng = random.Random(f"{SEED}-gc")
    faults = Faults(tmp_path, capsys)
    for salt in (1, 2, 3):
        faults.complete(salt)
    _kill_at(faults.start("-p", "salt=4", pause=0.1), 0.6)  # and one killed run among them
    history = faults.store / "runs"
    originals = tmp_path / "originals"
    shutil.copytree(history, originals)

    def listed() -> list[str]:
        return [r["run_id"] for r in json.loads(faults.command("runs", "--json", "--limit", "100000")[1])]

    kills = 0
    for trial in range(10):
        for i, run in enumerate(sorted(originals.iterdir()) * 100):  # a long history: gc and reindex take a while
            if not (history / f"0-copy-{i}-{run.name}").exists():
                shutil.copytree(run, history / f"0-copy-{i}-{run.name}")
        command = rng.choice([["reindex"], ["reindex"], ["gc"], ["gc", "--keep", "2"]])
        before = listed()
        proc = subprocess.Popen([sys.executable, "-m", "flowkit", "cache", *command, "--store", str(faults.store)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _kill_at(proc, rng.uniform(0.12, 0.4))
        killed = proc.returncode == -signal.SIGKILL
        kills += killed
        if command == ["reindex"] and killed:  # the old index, or the whole new one: never a part
            everything = {run.name for run in history.iterdir() if (run / "run.json").exists()}
            assert set(listed()) in (set(before), everything)
        if command == ["gc", "--keep", "2"]:
            assert faults.command("cache", "gc", "--keep", "2")[0] == 0  # what a killed one left undone
        code, out = faults.command("cache", "gc", "--json")  # keeps every run: must remove no entry
        assert code == 0 and json.loads(out)["keys_removed"] == 0 and json.loads(out)["objects_removed"] == 0
        assert faults.command("cache", "verify")[0] == 0
    assert kills >= 3
    faults.command("cache", "reindex")
    for salt in (1, 2, 3, 4):
        faults.complete(salt)


# -- every kind of store file damaged ----------------------------------------------------------------


@pytest.fixture(scope="module")
def damaged_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store with a local run (batch records) and a run-step run (node records) of one flow."""
    root = tmp_path_factory.mktemp("template")
    faults = Faults(root, capsys=None)
    load_flow(str(faults.files[0])).run(store=faults.store, salt=1)
    flow = load_flow(str(faults.files[0]))
    for name in flow.graph.order():
        code = main(["run-step", "--flow", str(faults.files[0]), "--step", name, "--run-id", "rs-1",
                     "--store", str(faults.store), "-p", "salt=2"])
        assert code == 0
    import sqlite3

    with sqlite3.connect(faults.store / "index.sqlite") as conn:  # all in the file, for copies without WAL
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return root, faults.files[0].name


def _damage(path: Path, rng: random.Random, how: str | None = None) -> str:
    """Damage one file the way disks, copies and hands do; which way, by the seed unless ``how``."""
    data = path.read_bytes()
    how = how or rng.choice(["truncate", "flip", "garbage", "wrong types"] if path.suffix == ".json" else
                            ["truncate", "flip", "garbage"])
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flip":
        spot = rng.randrange(len(data))
        path.write_bytes(data[:spot] + bytes([data[spot] ^ 0x5A]) + data[spot + 1:])
    elif how == "garbage":
        path.write_bytes(rng.randbytes(max(len(data), 64)))
    else:  # valid JSON, every other field of the wrong type
        record = json.loads(data)
        for field in sorted(record)[rng.randrange(2):: 2]:
            record[field] = "text" if isinstance(record[field], list) else [record[field]]
        path.write_text(json.dumps(record))
    return how


KINDS = {
    "object": lambda store: sorted(store.glob("objects/*/*")),
    "key record": lambda store: sorted(store.glob("keys/*/*.json")),
    "node record": lambda store: sorted(store.glob("runs/rs-1/nodes/*.json")),
    "batch record": lambda store: sorted(store.glob("runs/*/batches/*.json")),
    "run.json": lambda store: sorted(store.glob("runs/*/run.json")),
    "end.json": lambda store: sorted(store.glob("runs/*/end.json")),
    "index.sqlite": lambda store: [store / "index.sqlite"],
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_damaged_store_file_never_crashes_a_command_nor_gives_a_wrong_value(
        damaged_template: tuple[Path, str], tmp_path: Path, capsys, kind: str) -> None:
    rng = random.Random(f"{SEED}-{kind}")
    template, name = damaged_template
    shutil.copytree(template, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("index.sqlite-*"))
    faults = Faults(tmp_path, capsys)
    faults.files = [tmp_path / name]
    store = faults.store
    outputs = {e["key"]: e for e in json.loads(faults.command("cache", "ls", "--json")[1])}
    objects = {json.loads(p.read_text())["output"]["object"]: json.loads(p.read_text())["key"]
               for p in store.glob("keys/*/*.json")}
    candidates = KINDS[kind](store)
    victims = rng.sample(candidates, k=min(2, len(candidates)))
    first_way = {"object": "flip", "index.sqlite": "garbage"}.get(kind, "wrong types")  # the worst of each
    hows = [_damage(path, rng, first_way if i == 0 else None) for i, path in enumerate(victims)]
    excused = frozenset({p.stem for p in victims if kind == "key record"} |
                        {objects[p.name] for p in victims if kind == "object" and p.name in objects})
    intact = set(outputs) - excused
    # first what sees the damage as it is: history, plan, a run, a run-step
    for args in (["runs"], ["runs", "--json"], ["show", "last"], ["show", "rs-1"], ["explain", "rs-1", "total"],
                 ["cache", "ls"], ["cache", "du"], ["plan", str(faults.files[0]), "-p", "salt=1"]):
        faults.command(*args)
    faults.complete(1, excused=excused)
    faults.command("run-step", "--flow", str(faults.files[0]), "--step", "combine", "--run-id", "rs-1", "-p", "salt=2")
    # then what repairs: reindex, verify (removes what is corrupt), gc
    for args in (["cache", "reindex"], ["cache", "verify"], ["cache", "gc"], ["cache", "verify"], ["runs"]):
        code, out = faults.command(*args)
        assert args != ["cache", "verify"] or code == 0 or "fixed as shown" in out, (hows, out)
    assert faults.command("cache", "verify")[0] == 0, hows
    faults.complete(2, excused=excused)
    assert set(faults.complete(1).values()) == {"cached"}
    assert intact <= faults.keys(), hows  # nothing sound was removed
