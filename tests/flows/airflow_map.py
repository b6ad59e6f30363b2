"""A run-time fan-out for the airflow target: a map over an upstream output with max_parallel,
chained into a second map with a fixed argument, then a gather; and a map that tolerates a
failed item (min_success_ratio), the failure switched on by a marker file."""

import os

import flowkit as fk


@fk.step
def split(n: int) -> list:
    return [i * 10 for i in range(n)]


@fk.step
def square(x: int) -> int:
    return x * x


@fk.step
def inc(x: int, bonus: int) -> int:
    return x + 1 + bonus


@fk.step
def total(xs: list) -> int:
    return sum(xs)


@fk.step
def fragile(x: int, marker: str) -> int:
    if x == 20 and os.path.exists(marker):
        raise ValueError(f"item {x} fails while {marker} exists")
    return x + 1


@fk.flow(name="airflow_map")
def mapped(n: int = 3, bonus: int = 0):
    squares = square.options(max_parallel=2).map(split(n))
    return total(inc.map(squares, bonus=bonus))


@fk.flow(name="airflow_map_tolerant")
def tolerant(n: int = 4, marker: str = ""):
    return total(fragile.options(min_success_ratio=0.75).map(split(n), marker=marker))
