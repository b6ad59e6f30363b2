"""flowkit core benchmarks: per-step overhead, cached re-runs, scale, hashing and start-up.

Run with ``python bench/bench_core.py`` (``--quick`` for fewer repeats). Every figure is printed
next to a baseline measured in the same run, the ratio between them, and the goal it is held to.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flowkit as fk
from flowkit.keys.values import fingerprint

CHAIN = 200  # steps in the overhead chain
WIDE_CHAINS, WIDE_DEPTH = 100, 100  # the 10,000-node flow
ARRAY_BYTES = 400 * 10**6
MS = 1e3


@dataclass
class Row:
    """One printed line: a figure, its baseline, and the goal."""

    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline: float | None = None
    goal: float | None = None

    def render(self) -> str:
        ratio = f"x{self.value / self.baseline:,.2f}" if self.baseline else "-"
        base = f"{self.baseline:.4g} {self.unit} ({self.baseline_name})" if self.baseline is not None else "-"
        if self.goal is None:
            verdict = ""
        else:
            verdict = f"<= {self.goal:g} {self.unit}  {'ok' if self.value <= self.goal else 'MISSED'}"
        return f"{self.name:<36} {self.value:>9.4g} {self.unit:<8} {base:<44} {ratio:>10}   {verdict}"


# --- helpers --------------------------------------------------------------------------------------


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


TEMP_ROOT: str | None = None  # --tmp: where stores are made (the filesystem matters, see fs_write_ms)


@contextmanager
def temp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="flowkit-bench-", dir=TEMP_ROOT))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fs_write_ms(files: int = 400) -> float:
    """One small file written the way a store writes records: create a temporary name, write, rename."""
    with temp_dir() as folder:
        start = time.perf_counter()
        for i in range(files):
            tmp = folder / f".{i}.tmp"
            with open(tmp, "xb") as handle:
                handle.write(b"x" * 300)
            os.replace(tmp, folder / f"{i}.json")
        return (time.perf_counter() - start) / files * MS


# --- the chain ------------------------------------------------------------------------------------


@fk.step
def inc(x: int) -> int:
    return x + 1


def chain_flow(length: int = CHAIN) -> fk.Flow:
    """A fresh flow (graph not built yet): inc, inc-2, ... each taking the previous output."""

    def chain(start: int = 0):
        x = start
        for _ in range(length):
            x = inc(x)
        return x

    return fk.flow(chain, name=f"chain{length}")


def bare_chain(length: int = CHAIN) -> int:
    x = 0
    for _ in range(length):
        x = inc.fn(x)
    return x


@dataclass
class ChainTimes:
    cold: float  # seconds per whole run
    cached: float
    cold_warm_store: float = 0.0  # new keys, but the store's folders already exist


def timed_run(flow: fk.Flow, store: Path, expect: str, **params: Any) -> float:
    """Seconds for ``flow.run`` (graph build included, as a user sees it); checks every step's status."""
    start = time.perf_counter()
    run = flow.run(store=store, **params)
    elapsed = time.perf_counter() - start
    assert run.status == "succeeded", run
    assert all(s.status == expect for s in run.steps.values()), f"expected every step {expect}"
    return elapsed


def time_flowkit_chain(repeats: int) -> ChainTimes:
    """Per repeat, on a fresh store: a cold run, a fully cached re-run, then a cold run with new keys."""
    cold, cached, warm = [], [], []
    for repeat in range(repeats):
        with temp_dir() as store:
            cold.append(timed_run(chain_flow(), store, "ran"))
            cached.append(timed_run(chain_flow(), store, "cached"))
            warm.append(timed_run(chain_flow(), store, "ran", start=10_000 * (repeat + 1)))
    return ChainTimes(statistics.median(cold), statistics.median(cached), statistics.median(warm))


def time_joblib_chain(repeats: int) -> ChainTimes | None:
    """The same chain through ``joblib.Memory``: 200 distinct calls, then the same 200 again."""
    try:
        import joblib
    except ImportError:
        return None
    cold, cached = [], []
    for _ in range(repeats):
        with temp_dir() as location:
            cached_inc = joblib.Memory(location, verbose=0).cache(inc.fn)
            for bucket in (cold, cached):
                start = time.perf_counter()
                x = 0
                for _ in range(CHAIN):
                    x = cached_inc(x)
                bucket.append(time.perf_counter() - start)
                assert x == CHAIN
    return ChainTimes(statistics.median(cold), statistics.median(cached))


def chain_rows(repeats: int) -> list[Row]:
    time_flowkit_chain(1)  # warm-up: imports, code fingerprint of inc
    bare = median_time(bare_chain, 50) / CHAIN * MS
    fs = statistics.median(fs_write_ms() for _ in range(repeats))
    ours = time_flowkit_chain(repeats)
    cold = ours.cold / CHAIN * MS - bare
    cached = ours.cached / CHAIN * MS - bare
    rows = [
        Row("bare call of the step (subtracted)", bare * 1e3, "us/step"),
        Row("chain cold, per step (net)", cold, "ms/step", "one atomic small-file write", fs, goal=0.25),
        Row("  same, store folders already made", ours.cold_warm_store / CHAIN * MS - bare, "ms/step",
            "one atomic small-file write", fs),
        Row("chain cached, per step (net)", cached, "ms/step", "one atomic small-file write", fs, goal=0.08),
    ]
    theirs = time_joblib_chain(repeats)
    if theirs is None:
        rows.append(Row("(joblib not importable: skipped)", 0.0, ""))
    else:
        rows += [
            Row("chain cold vs joblib.Memory", cold, "ms/step", "joblib cold", theirs.cold / CHAIN * MS),
            Row("chain cached vs joblib.Memory", cached, "ms/step", "joblib cached", theirs.cached / CHAIN * MS),
        ]
    return rows


# --- 10,000 nodes ---------------------------------------------------------------------------------


def wide_flow() -> fk.Flow:
    """WIDE_CHAINS independent chains of WIDE_DEPTH steps, each chain starting from its own literal."""

    def wide():
        for chain in range(WIDE_CHAINS):
            x = chain
            for _ in range(WIDE_DEPTH):
                x = inc(x)

    return fk.flow(wide, name="wide")


def scale_rows() -> list[Row]:
    nodes = WIDE_CHAINS * WIDE_DEPTH
    flow = wide_flow()
    start = time.perf_counter()
    assert len(flow.graph) == nodes
    build = time.perf_counter() - start
    with temp_dir() as store:
        start = time.perf_counter()
        plan = flow.plan(store=store)
        planned = time.perf_counter() - start
        assert len(plan.rows) == nodes
        flow.run(store=store)
        start = time.perf_counter()
        cached_plan = flow.plan(store=store)
        planned_cached = time.perf_counter() - start
        assert cached_plan.counts()["cached"] == nodes
    bare = median_time(lambda: [inc.fn(i) for i in range(nodes)], 5)
    return [
        Row(f"{nodes:,} nodes: build (flow.graph)", build, "s", f"{nodes:,} bare calls", bare),
        Row(f"{nodes:,} nodes: plan (fresh store)", planned, "s", f"{nodes:,} bare calls", bare),
        Row(f"{nodes:,} nodes: build + plan", build + planned, "s", f"{nodes:,} bare calls", bare, goal=2.0),
        Row(f"{nodes:,} nodes: plan, all cached", planned_cached, "s", f"{nodes:,} bare calls", bare),
        Row(f"{nodes:,} nodes: build + cached plan", build + planned_cached, "s", f"{nodes:,} bare calls", bare,
            goal=2.0),
    ]


# --- hashing --------------------------------------------------------------------------------------


@fk.step
def consume(array: Any) -> int:
    return len(array)


def rekey_flow(array: Any) -> fk.Flow:
    """One step with the array as a literal input: planning it computes the array's key part."""

    def rekey():
        return consume(array)

    return fk.flow(rekey, name="rekey")


def hashing_rows(repeats: int) -> list[Row]:
    try:
        import numpy as np
    except ImportError:
        return [Row("(numpy not importable: hashing skipped)", 0.0, "")]
    import blake3

    array = np.arange(ARRAY_BYTES // 8, dtype=np.float64)
    raw = median_time(lambda: blake3.blake3(memoryview(array).cast("B"), max_threads=blake3.blake3.AUTO).digest(),
                      repeats)
    ours = median_time(lambda: fingerprint(array), repeats)
    flow = rekey_flow(array)
    flow.graph  # noqa: B018 - built outside the timing
    with temp_dir() as store:
        flow.plan(store=store)  # warm-up: code fingerprint of the step
        plan = median_time(lambda: flow.plan(store=store), repeats)
    gbps = ARRAY_BYTES / raw / 1e9
    return [
        Row("400 MB fingerprint()", ours * MS, "ms", f"raw blake3 AUTO, {gbps:.1f} GB/s", raw * MS),
        Row("400 MB re-key (plan, array input)", plan * MS, "ms", "raw blake3 AUTO", raw * MS, goal=60),
    ]


# --- start-up -------------------------------------------------------------------------------------


def command_time(argv: list[str], repeats: int) -> float:
    """Median wall time of a fresh process, in seconds."""
    def once() -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    once()  # warm the OS file cache
    return median_time(once, repeats)


def flowkit_command() -> list[str]:
    script = Path(sys.executable).with_name("flowkit")
    found = str(script) if script.exists() else shutil.which("flowkit")
    return [found] if found else [sys.executable, "-m", "flowkit"]


def startup_rows(repeats: int) -> list[Row]:
    python = command_time([sys.executable, "-c", "pass"], repeats)
    imported = command_time([sys.executable, "-c", "import flowkit"], repeats)
    helped = command_time([*flowkit_command(), "--help"], repeats)
    return [
        Row("import flowkit (process wall)", imported, "s", "python -c pass", python, goal=0.1),
        Row("  net of interpreter start", imported - python, "s"),
        Row("flowkit --help (process wall)", helped, "s", "python -c pass", python, goal=0.15),
        Row("  net of interpreter start", helped - python, "s"),
    ]


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke test")
    parser.add_argument("--tmp", metavar="DIR", default=".",
                        help="where temporary stores go (default: this folder, where a user's .flowkit/ would be)")
    args = parser.parse_args()
    global TEMP_ROOT
    TEMP_ROOT = args.tmp
    if TEMP_ROOT:
        os.makedirs(TEMP_ROOT, exist_ok=True)
    repeats = 3 if args.quick else 7
    print(f"flowkit {fk.__version__}, Python {sys.version.split()[0]}, {sys.platform}, {os.cpu_count()} cores; "
          f"stores in {os.path.abspath(TEMP_ROOT or tempfile.gettempdir())}; medians of {repeats}\n")
    print(f"{'figure':<36} {'value':>9} {'unit':<8} {'baseline (same run)':<44} {'ratio':>10}   goal")
    sections: list[Callable[[], list[Row]]] = [
        lambda: chain_rows(repeats),
        scale_rows,
        lambda: hashing_rows(repeats),
        lambda: startup_rows(5 if args.quick else 10),
    ]
    for section in sections:
        for row in section():
            print(row.render(), flush=True)


if __name__ == "__main__":
    main()
