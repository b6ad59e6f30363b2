"""A fan-out for the shell target: two independent branches and every step option it supports.

With ``log_dir`` set, each branch writes when it started and ended, and waits (at most
``wait_seconds``) until the other branch has started, so two branches that run at the same time
always have overlapping intervals, however slowly their interpreters start.
"""

import os
import time
from pathlib import Path

import flowkit as fk


def meet(log_dir: str, me: str, other: str, wait_seconds: float) -> None:
    if not log_dir:
        return
    folder = Path(log_dir)
    (folder / f"{me}.start").write_text(repr(time.time()))
    deadline = time.time() + wait_seconds
    while not (folder / f"{other}.start").exists() and time.time() < deadline:
        time.sleep(0.01)
    (folder / f"{me}.end").write_text(repr(time.time()))


@fk.step
def source(label: str, n_items: int) -> list:
    return [f"{label}-{i}" for i in range(n_items)]


@fk.step(retries=2, retry_delay=0.5, env={"FANOUT_SIDE": "left", "FANOUT_NOTE": "it's $HOME"})
def left(items: list, log_dir: str, wait_seconds: float) -> list:
    meet(log_dir, "left", "right", wait_seconds)
    return [item.upper() for item in items] + [os.environ["FANOUT_SIDE"], os.environ["FANOUT_NOTE"]]


@fk.step(timeout="5m")
def right(items: list, log_dir: str, wait_seconds: float) -> list:
    meet(log_dir, "right", "left", wait_seconds)
    return list(reversed(items))


@fk.step
def join(left_items: list, right_items: list, tags: dict) -> dict:
    return {"left": left_items, "right": right_items, "tags": tags}


@fk.flow(name="shell_fanout", schedule="@daily")
def fanout(label: str, n_items: int = 3, log_dir: str = "", wait_seconds: float = 0.0,
           tags: dict = {"team": "data", "tier": 1}):  # noqa: B006 - a JSON default, never mutated
    items = source(label, n_items)
    return join(left(items, log_dir, wait_seconds), right(items, log_dir, wait_seconds), tags)
