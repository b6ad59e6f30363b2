"""flowkit backend benchmarks: parallel speed-up of ``process`` and per-step overhead of each backend.

Run with ``python bench/bench_backends.py`` from the repository root. The docker row needs
``DOCKER_HOST`` and an image tagged ``flowkit:latest`` with Python and flowkit; it is skipped otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import flowkit as fk

FAN = 8        # CPU-bound steps in the fan-out
SPIN = 6_000_000  # loop iterations per CPU-bound step (about half a second)
CHAIN = 20     # trivial steps in the overhead chain


@fk.step
def spin(seed: int, n: int) -> int:
    total = seed
    for i in range(n):
        total = (total * 31 + i) % 1_000_003
    return total


@fk.step
def gather(*values: int) -> int:
    return sum(values)


@fk.flow
def fan(n: int = SPIN):
    return gather(*[spin(seed, n) for seed in range(FAN)])


@fk.step
def inc(x: int) -> int:
    return x + 1


@fk.flow
def chain(start: int = 0):
    x = start
    for _ in range(CHAIN):
        x = inc(x)
    return x


docker_chain = fk.flow(chain.fn, name="docker_chain", image="flowkit:latest")


def timed(flow: fk.Flow, backend: str, workers: int | None = None, **params: int) -> float:
    """Seconds of one cold run on a fresh store in this folder."""
    store = Path(tempfile.mkdtemp(prefix="flowkit-bench-", dir="."))
    try:
        start = time.perf_counter()
        run = flow.run(store=store, backend=backend, workers=workers, **params)
        elapsed = time.perf_counter() - start
        assert run.status == "succeeded", {n: o.error for n, o in run.steps.items() if o.error}
        assert all(o.status == "ran" for o in run.steps.values())
        return elapsed
    finally:
        shutil.rmtree(store, ignore_errors=True)


def median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{cores} cores, medians of {args.repeats}\n")

    local = median(lambda: timed(fan, "local"), args.repeats)
    process = median(lambda: timed(fan, "process", workers=cores), args.repeats)
    print(f"fan-out of {FAN} CPU-bound steps: local {local:.2f} s, process ({cores} workers) {process:.2f} s"
          f"  -> speed-up x{local / process:.2f}  (goal >= 1.8 on 2 cores)")

    bare = median(lambda: timed(chain, "local", start=int(time.time_ns() % 10**9)), args.repeats)
    per_process = median(lambda: timed(chain, "process", workers=1, start=int(time.time_ns() % 10**9)), args.repeats)
    print(f"chain of {CHAIN} trivial steps, cold: local {bare / CHAIN * 1e3:.2f} ms/step, "
          f"process {per_process / CHAIN * 1e3:.2f} ms/step  -> process adds {(per_process - bare) / CHAIN * 1e3:.2f} ms/step"
          f" (x{per_process / bare:.1f})")

    if os.environ.get("DOCKER_HOST"):
        docker = median(lambda: timed(docker_chain, "docker", workers=1, start=int(time.time_ns() % 10**9)),
                        args.repeats)
        print(f"chain of {CHAIN} trivial steps, cold: docker {docker / CHAIN * 1e3:.0f} ms/step"
              f"  -> docker adds {(docker - bare) / CHAIN * 1e3:.0f} ms/step over local (a container per step)")
    else:
        print("docker: skipped (set DOCKER_HOST; the image is flowkit:latest)")

if __name__ == "__main__":
    main()
