"""Digits: a scikit-learn pipeline whose unchanged steps are skipped on the next run.

Run it twice and the second run is all cache hits; change ``normalize`` and only
``prepare`` and what depends on it re-run::

    flowkit run examples/ml/flow.py
    flowkit run examples/ml/flow.py -p test_size=0.3
    flowkit plan examples/ml/flow.py
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import flowkit as fk


def normalize(images: np.ndarray) -> np.ndarray:
    """Pixel values 0..16 scaled to 0..1."""
    return images / 16.0


@fk.step
def load() -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return digits.data, digits.target


@fk.step
def prepare(data: tuple[np.ndarray, np.ndarray], test_size: float, seed: int) -> dict:
    images, labels = data
    x_train, x_test, y_train, y_test = train_test_split(
        normalize(images), labels, test_size=test_size, random_state=seed, stratify=labels
    )
    return {"x_train": x_train, "x_test": x_test, "y_train": y_train, "y_test": y_test}


@fk.step
def train(split: dict, c: float) -> LogisticRegression:
    model = LogisticRegression(C=c, max_iter=2000)
    return model.fit(split["x_train"], split["y_train"])


@fk.step
def evaluate(model: LogisticRegression, split: dict) -> dict:
    accuracy = float(model.score(split["x_test"], split["y_test"]))
    fk.log_metric("accuracy", accuracy)
    return {"C": model.C, "accuracy": accuracy}


@fk.step
def pick_best(*scores: dict) -> dict:
    return max(scores, key=lambda score: score["accuracy"])


@fk.flow(name="digits")
def digits(test_size: float = 0.25, seed: int = 0):
    split = prepare(load(), test_size, seed)
    scores = []
    for c in (0.1, 1.0, 10.0):  # nodes train, train-2, train-3 and evaluate, evaluate-2, evaluate-3
        scores.append(evaluate(train(split, c), split))
    return pick_best(*scores)
