"""``step.map`` benchmarks: per-item overhead of a run-time fan-out, cold and cached, and planning.

Run with ``python bench/bench_map.py`` (``--items N``, ``--tmp DIR``). Each figure is printed
beside a baseline measured in the same run (the same calls made in a plain loop), with the goal
of the fan-out issue.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from typing import Any, Callable

import flowkit as fk


@fk.step
def numbers(n: int) -> list:
    return list(range(n))


@fk.step
def inc(x: int) -> int:
    return x + 1


@fk.step
def total(xs: list) -> int:
    return sum(xs)


@fk.flow
def fanned(n: int = 10_000):
    return total(inc.map(numbers(n)))


def median(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tmp", metavar="DIR", help="where temporary stores go (default: the system's)")
    args = parser.parse_args()
    if args.tmp:
        os.makedirs(args.tmp, exist_ok=True)
    n = args.items
    bare = median(lambda: [inc.fn(i) for i in range(n)], args.repeats)

    def cold() -> None:
        store = tempfile.mkdtemp(prefix="flowkit-map-", dir=args.tmp)
        try:
            assert fanned.run(store=store, n=n).status == "succeeded"
        finally:
            shutil.rmtree(store, ignore_errors=True)

    cold_s = median(cold, args.repeats)
    store = tempfile.mkdtemp(prefix="flowkit-map-", dir=args.tmp)
    try:
        fanned.run(store=store, n=n)
        cached_s = median(lambda: fanned.run(store=store, n=n), args.repeats)
        plan_n = min(n, 1000)
        fanned.run(store=store, n=plan_n)
        plan_s = median(lambda: fanned.plan(store=store, n=plan_n), args.repeats)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    rows = [
        (f"cold map of {n}, per item (net)", (cold_s - bare) / n * 1e3, "ms", 0.1),
        (f"cached map of {n}, per item (net)", (cached_s - bare) / n * 1e3, "ms", 0.05),
        (f"plan of a map of {plan_n} items", plan_s, "s", 0.2),
    ]
    print(f"baseline: {n} bare calls of the step take {bare * 1e3:.2f} ms ({bare / n * 1e6:.3f} us a call)")
    for name, value, unit, goal in rows:
        print(f"{name:<36} {value:>9.4g} {unit:<3} goal <= {goal:g} {unit}  {'ok' if value <= goal else 'MISSED'}")


if __name__ == "__main__":
    main()
