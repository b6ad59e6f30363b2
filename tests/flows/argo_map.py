"""A run-time fan-out for the argo target: a map over an upstream output with max_parallel (and
retries, for its items), chained into a map with a fixed argument, and a map over a list
parameter that tolerates one failed item (min_success_ratio), switched on by a marker file."""

import os

import flowkit as fk


@fk.step
def split(n: int) -> list:
    return [i * 10 for i in range(n)]


@fk.step(retries=1, timeout=60)
def square(x: int) -> int:
    return x * x


@fk.step
def inc(x: int, bonus: int) -> int:
    return x + 1 + bonus


@fk.step
def fragile(x: int, marker: str) -> int:
    if x == 2 and os.path.exists(marker):
        raise ValueError(f"item {x} fails while {marker} exists")
    return x * 100


@fk.step
def report(incs: list, kept: list) -> dict:
    return {"incs": incs, "kept": kept, "total": sum(incs) + sum(kept)}


@fk.flow(name="argo_map")
def mapped(n: int = 3, bonus: int = 0, xs: list = [1, 2, 3, 4], marker: str = ""):
    squares = square.options(max_parallel=2).map(split(n))
    incs = inc.map(squares, bonus=bonus)
    kept = fragile.options(min_success_ratio=0.75).map(xs, marker=marker)
    return report(incs, kept)
