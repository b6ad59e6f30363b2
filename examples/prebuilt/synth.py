"""The data make_rows.py writes; an edit here re-runs it (flowkit keys a script by its imports too)."""

import random


def points(n: int, seed: int) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    xs = [i / n for i in range(n)]
    return [(round(x, 4), round(3 * x + rng.gauss(0, 0.1), 4)) for x in xs]
