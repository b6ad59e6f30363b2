"""A flow whose store, written by flowkit before the house was reshaped (commit 8cce682), is kept in
tests/golden/store-v1: the new code must read it and find every step cached."""

import flowkit as fk

SCALE = 3


def helper(x: int) -> int:
    return x * SCALE


@fk.step
def numbers(n: int) -> list:
    return [helper(i) for i in range(n)]


@fk.step(version="2", env={"MODE": "fast"})
def big(xs: list) -> list:
    fk.log_metric("count", len(xs))
    return [str(x) * 60 for x in xs]  # over 2 KiB: a file of its own


@fk.step
def pair(first, rest: dict, label: str = "x") -> dict:
    fk.log_param("label", label)
    return {"first": first, "rest": rest, "label": label}


@fk.flow
def old_store(n: int = 40, label: str = "keep"):
    xs = numbers(n)
    words = big(xs)
    return pair(xs[0], {"words": words, "n": n}, label=label)
