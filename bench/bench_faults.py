"""flowkit fault injection, the long run by hand: kill runs at random points, gc and reindex beside them.

Run with ``python bench/bench_faults.py`` (``--kills 200`` by default; ``--seed``, ``--tmp``). It uses
only public tools: the ``flowkit`` command and ``Flow.run`` / ``Run.output`` in processes of their
own, on one store that lives through every trial, as a real one does. Each trial starts a run of
one of three flows that share steps (local or process backend), sometimes a run of another flow
beside it, sometimes ``cache gc --keep N`` again and again or a ``cache reindex``; it kills the
run at a random moment (SIGKILL, now and then SIGTERM), and sometimes the gc or reindex too. Then:

- ``flowkit cache verify`` must find nothing corrupt (a kill may leave only temporary files);
- the next run of the killed flow must re-use every step whose key record is in the store
  (``flowkit cache ls``), and give the right value for every step (``Run.output``): else the
  steps count as lost, the values as wrong;
- the run beside it, once ended, must re-run as all cache hits with right values;
- no command may end with a traceback.

It prints its counts: trials, kills, steps lost, wrong results, crashes. The goal: 0 lost, 0 wrong,
0 crashes over at least 200 kills.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

FLOW = (Path(__file__).resolve().parents[1] / "tests" / "flows" / "faulty.py").read_text()  # as the test runs it

CHECK = '''
import importlib.util, json, sys

path, store, backend, salt, extra = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
spec = importlib.util.spec_from_file_location(path.rsplit("/", 1)[1][:-3], path)
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
run = module.faulty.run(store=store, backend=backend, salt=salt, extra=extra)
right = module.expected(salt, extra)
print(json.dumps({"status": run.status,
                  "steps": {n: [o.status, o.cache_key] for n, o in run.steps.items()},
                  "wrong": [n for n in run.steps if run.status != "succeeded" or run.output(n) != right[n]]}))
'''


class Bench:
    """One store, three flow files, and the counts."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root, self.rng = root, rng
        self.store = root / "store"
        self.flows = []
        for i in range(3):
            path = root / f"faulty{i}.py"
            path.write_text(textwrap.dedent(FLOW.replace("NAME", repr(f"faulty{i}"))))
            self.flows.append(path)
        (root / "check.py").write_text(CHECK)
        self.counts = dict.fromkeys(["trials", "kills", "kills of runs", "kills of gc", "kills of reindex",
                                     "gc beside runs", "steps checked", "steps lost", "wrong results",
                                     "corrupt after a kill", "crashes"], 0)
        self.problems: list[str] = []

    # -- processes -------------------------------------------------------------------------------

    def start(self, *args: str, pause: float = 0.0) -> subprocess.Popen:
        env = {**os.environ, "FAULT_PAUSE": str(pause)}
        return subprocess.Popen([sys.executable, "-m", "flowkit", *args, "--store", str(self.store)], cwd=self.root,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=_default_signals)

    def command(self, *args: str) -> tuple[int, str]:
        proc = subprocess.run([sys.executable, "-m", "flowkit", *args, "--store", str(self.store)], cwd=self.root,
                              capture_output=True, text=True, timeout=300)
        self.crashed(args, proc.stderr)
        return proc.returncode, proc.stdout

    def crashed(self, what: Any, err: str) -> None:
        if "Traceback" in (err or ""):
            self.counts["crashes"] += 1
            self.problems.append(f"crash in {what}: {err.strip().splitlines()[-1]}")

    def kill(self, proc: subprocess.Popen, delay: float, sig: int, what: str) -> None:
        deadline = time.time() + delay
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=120)
            if proc.returncode in (-sig, 128 + sig):
                self.counts["kills"] += 1
                self.counts[f"kills of {what}"] += 1
        else:
            _, err = proc.communicate(timeout=120)
        self.crashed(what, err)

    # -- checks ----------------------------------------------------------------------------------

    def keys(self) -> set[str]:
        code, out = self.command("cache", "ls", "--json")
        return {entry["key"] for entry in json.loads(out)} if code == 0 else set()

    def check(self, flow: int, salt: int, extra: int, backend: str, all_cached: bool = False) -> None:
        """The next run re-uses every recorded step and gives the right values."""
        before = self.keys()
        proc = subprocess.run([sys.executable, str(self.root / "check.py"), str(self.flows[flow]), str(self.store),
                               backend, str(salt), str(extra)], cwd=self.root, capture_output=True, text=True,
                              timeout=300)
        self.crashed("check run", proc.stderr)
        if proc.returncode != 0:
            self.counts["wrong results"] += 1
            self.problems.append(f"check run failed: {proc.stderr.strip()[-300:]}")
            return
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        steps = report["steps"]
        self.counts["steps checked"] += len(steps)
        lost = [n for n, (status, key) in steps.items() if status != "cached" and (all_cached or key in before)]
        if lost:
            self.counts["steps lost"] += len(lost)
            self.problems.append(f"trial {self.counts['trials']}: steps run again: {lost}")
        if report["status"] != "succeeded" or report["wrong"]:
            self.counts["wrong results"] += 1
            self.problems.append(f"trial {self.counts['trials']}: {report['status']}, wrong: {report['wrong']}")

    # -- one trial -------------------------------------------------------------------------------

    def trial(self) -> None:
        rng = self.rng
        self.counts["trials"] += 1
        flow, backend = rng.randrange(3), rng.choice(["local", "process"])
        salt = rng.randrange(4) if rng.random() < 0.2 else rng.randrange(10**6)  # mostly new keys, some hits
        extra, pause = rng.choice([0, 0, 1]), rng.choice([0.05, 0.1, 0.2])
        main = self.start("run", str(self.flows[flow]), "--backend", backend, "-p", f"salt={salt}", "-p",
                          f"extra={extra}", pause=pause)
        started = time.time()
        beside = None
        if rng.random() < 0.3:  # a run of another flow, which must come through untouched
            other = (flow + rng.randrange(1, 3)) % 3
            beside = (other, rng.randrange(10**6), rng.choice([0, 1]), rng.choice(["local", "process"]))
            beside_proc = self.start("run", str(self.flows[other]), "--backend", beside[3], "-p", f"salt={beside[1]}",
                                     "-p", f"extra={beside[2]}", pause=0.05)
        kill_main = started + rng.uniform(0.3, 1.6)
        helper_kind = rng.choice([None, None, "gc", "reindex"])
        helper_at = started + rng.uniform(0.0, 1.2)
        helper_kill = helper_kind is not None and rng.random() < 0.6
        helper = None
        sig = signal.SIGTERM if rng.random() < 0.2 else signal.SIGKILL
        while True:  # the trial's timeline: the helper starts, the run and the helper are killed
            now = time.time()
            if helper_kind and helper is None and now >= helper_at:
                args = ["gc", "--keep", str(rng.randrange(1, 4)), "--grace", "1"] if helper_kind == "gc" else ["reindex"]
                helper = self.start("cache", *args)
                self.counts["gc beside runs"] += helper_kind == "gc"
                helper_due = now + rng.uniform(0.1, 0.35)
            if main is not None and now >= kill_main:
                self.kill(main, 0, sig, "runs")
                main = None
            if helper is not None and helper_kill and now >= helper_due:
                self.kill(helper, 0, signal.SIGKILL, helper_kind)
                helper_kill = False
            if main is None and (not helper_kind or helper is not None) and not helper_kill:
                break
            time.sleep(0.005)
        if helper is not None and helper.returncode is None:
            _, err = helper.communicate(timeout=300)
            self.crashed(helper_kind, err)
        if beside is not None:
            while beside_proc.poll() is None:  # gc again and again while it goes
                self.command("cache", "gc", "--keep", "1", "--grace", "1")
            _, err = beside_proc.communicate(timeout=300)
            self.crashed("run beside", err)
        code, out = self.command("cache", "verify")
        if code != 0:
            self.counts["corrupt after a kill"] += 1
            self.problems.append(f"trial {self.counts['trials']}: verify found: {out.strip()[-300:]}")
        self.check(flow, salt, extra, backend)
        if beside is not None:
            self.check(beside[0], beside[1], beside[2], beside[3], all_cached=True)
        if self.counts["trials"] % 25 == 0:
            self.command("cache", "gc", "--keep", "3")  # a store in use is cleaned now and then


def _default_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200, help="stop once this many processes were killed (200)")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--tmp", metavar="DIR", default=None, help="where the store goes (default: the system's)")
    args = parser.parse_args()
    if args.tmp:
        os.makedirs(args.tmp, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="flowkit-faults-", dir=args.tmp))
    bench = Bench(root, random.Random(args.seed))
    started = time.time()
    try:
        while bench.counts["kills"] < args.kills:
            bench.trial()
            if bench.counts["trials"] % 10 == 0:
                print(f"  {bench.counts['trials']} trials, {bench.counts['kills']} kills, "
                      f"{bench.counts['steps lost']} lost, {bench.counts['wrong results']} wrong", flush=True)
    finally:
        print(f"\nflowkit fault bench, seed {args.seed}, {time.time() - started:.0f}s, store {bench.store}")
        for name, count in bench.counts.items():
            print(f"  {name:<22} {count}")
        for problem in bench.problems[:20]:
            print(f"  ! {problem}")
        verdict = "ok" if not (bench.counts["steps lost"] or bench.counts["wrong results"] or bench.counts["crashes"]
                               or bench.counts["corrupt after a kill"]) else "MISSED"
        print(f"goal: 0 lost, 0 wrong, 0 crashes over >= 200 kills: {verdict}")
        if verdict == "ok":
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if verdict == "ok" else 1)


if __name__ == "__main__":
    main()
