"""A flow that fails while a marker file exists, for re-submitting a failed Airflow run."""

import os

import flowkit as fk


@fk.step
def prepare(n: int) -> int:
    return n * 10


@fk.step
def side(n: int) -> int:
    return n + 1


@fk.step
def gate(value: int, marker: str) -> int:
    if os.path.exists(marker):
        raise RuntimeError(f"marker {marker} exists")
    return value + 1


@fk.step
def finish(value: int, extra: int) -> int:
    return value + extra


@fk.flow(name="airflow_resume")
def resume(marker: str, n: int = 3):
    return finish(gate(prepare(n), marker), side(n))
