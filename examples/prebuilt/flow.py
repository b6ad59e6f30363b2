"""Prebuilt steps in one flow: a Python script (and the helper module it imports) makes the data,
a sweep trains one model per learning rate, a shell command counts the rows.

    flowkit run examples/prebuilt/flow.py          # writes rows.jsonl in the working directory
    flowkit run examples/prebuilt/flow.py          # all cached; edit synth.py and only what it feeds re-runs
"""

import json
from pathlib import Path

import flowkit as fk

HERE = Path(__file__).parent


@fk.step
def train(rows: fk.steps.OutputFile, lr: float) -> dict:
    """Fit y = w * x by a few steps of gradient descent; the loss tells the learning rates apart."""
    data = [json.loads(line) for line in rows.read_text().splitlines()]
    w = 0.0
    for _ in range(20):
        grad = sum(2 * (w * x - y) * x for x, y in data) / len(data)
        w -= lr * grad
    loss = sum((w * x - y) ** 2 for x, y in data) / len(data)
    return {"lr": lr, "w": round(w, 4), "loss": round(loss, 6)}


@fk.step
def report(best: dict, counted: str) -> dict:
    return {"best": best, "rows": int(counted.strip())}


@fk.flow
def prebuilt(n_rows: int = 20, seed: int = 0):
    rows = fk.steps.script(HERE / "make_rows.py", args=["--n", n_rows, "--seed", seed, "--out", "rows.jsonl"],
                           outputs="rows.jsonl")
    results = fk.sweep(train, over={"lr": [0.01, 0.1, 1.0]}, rows=rows)  # train[lr=0.01], train[lr=0.1], ...
    counted = fk.steps.shell('wc -l < "$1"', args=[rows], name="count_rows")
    return report(min_loss(*results), counted)


@fk.step
def min_loss(*results: dict) -> dict:
    return min(results, key=lambda result: result["loss"])
