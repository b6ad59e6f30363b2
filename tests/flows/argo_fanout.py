"""A fan-out flow for the argo target: every step option, names that sanitize alike, a schedule.

``scale_small`` and ``scale-small`` must get distinct Kubernetes names; ``total`` fails while the
file named by FLOWKIT_ARGO_FAIL_MARKER exists (the resume test), which is not part of its cache key.
"""

import os
from pathlib import Path

import flowkit as fk


@fk.step
def source(n: int) -> list[int]:
    return list(range(1, n + 1))


@fk.step(retries=2, retry_delay=5, timeout="10m", resources=fk.Resources(cpu=0.5, memory="256Mi"),
         env={"MODE": "fast", "QUOTE": "it's \"x\""})
def scale(xs: list[int], k: int) -> list[int]:
    return [x * k for x in xs]


@fk.step
def tag(label: str, flags: dict) -> str:
    return f"{label}:{','.join(sorted(k for k, on in flags.items() if on))}"


@fk.step(image="python:3.12-slim", resources=fk.Resources(cpu=2, gpu=1), timeout=90.5, retries=1)
def total(*parts: list[int], bonus: list) -> int:
    marker = os.environ.get("FLOWKIT_ARGO_FAIL_MARKER")
    if marker and Path(marker).exists():
        raise RuntimeError("total fails while the marker file exists")
    return sum(sum(part) for part in parts) + sum(bonus)


@fk.flow(name="argo_fanout", schedule="@daily", image="python:3.11-slim")
def fanout(n: int = 3, label: str = "run", flags: dict = {"b": True, "a": True}, bonus: list = [1, 2]):
    xs = source(n)
    parts = [scale(xs, k) for k in (1, 2)]                       # nodes scale, scale-2
    parts.append(scale.options(name="scale_small")(xs, 3))
    parts.append(scale.options(name="scale-small")(xs, 4))
    return {"tag": tag(label, flags), "total": total(*parts, bonus=bonus)}
