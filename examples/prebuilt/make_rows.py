"""Write noisy points of y = 3x, one JSON list per line: ``make_rows.py --n 20 --seed 0 --out rows.jsonl``."""

import argparse
import json

from synth import points

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, required=True)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", required=True)
options = parser.parse_args()

with open(options.out, "w") as out:
    for x, y in points(options.n, options.seed):
        out.write(json.dumps([x, y]) + "\n")
print(f"wrote {options.n} rows to {options.out}")
