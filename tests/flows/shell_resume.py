"""A flow whose ``flaky`` step fails while the file ``marker`` exists: for resuming a failed run."""

from pathlib import Path

import flowkit as fk


@fk.step
def first(marker: str) -> str:
    return "first"


@fk.step
def flaky(text: str, marker: str) -> str:
    if Path(marker).exists():
        raise RuntimeError(f"failing on purpose while {marker} exists")
    return text + "+flaky"


@fk.step
def steady(text: str) -> str:
    return text + "+steady"


@fk.step
def last(a: str, b: str) -> str:
    return f"{a}|{b}"


@fk.flow(name="shell_resume")
def resume(marker: str):
    head = first(marker)
    return last(flaky(head, marker), steady(head))
