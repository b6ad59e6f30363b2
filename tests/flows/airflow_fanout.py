"""A fan-out for the airflow target: one load, three trains (train, train-2, train-3), one pick.

Typed parameters of every JSON kind, and step options the target expresses (retries, retry_delay,
timeout, env), so the golden file shows each of them.
"""

import flowkit as fk


@fk.step
def load(n_rows: int, offset: float) -> list[float]:
    return [i + offset for i in range(n_rows)]


@fk.step(retries=2, retry_delay=5, timeout="10m", env={"FANOUT_MODE": "fast", "A_FIRST": "1"})
def train(rows: list[float], lr: float, tags: list, settings: dict) -> dict:
    return {"lr": lr, "score": round(sum(rows) * lr, 6), "tags": tags, "settings": settings}


@fk.step(timeout=30)
def pick_best(*models: dict) -> dict:
    return max(models, key=lambda m: m["score"])


@fk.flow(name="airflow_fanout", schedule="@daily")
def fanout(n_rows: int = 4, offset: float = 0.5, tags: list = ["a", "b"], settings: dict = {"k": 1},
           verbose: bool = False, anything=None):
    rows = load(n_rows, offset)
    models = [train(rows, lr, tags, settings) for lr in (0.5, 1.0, 2.0)]
    return pick_best(*models)
