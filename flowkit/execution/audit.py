"""``flowkit cache audit``: is a cache hit as good as a re-run? Re-run a sample of cached steps and
compare output digests.

A hit is only as good as the step's determinism. Each sampled step runs twice, here, from the inputs
its cache entry was made from, into a scratch store (the real one is only read). Two re-runs that
disagree mean the step is not deterministic (an unseeded random source, the clock); two that agree
with each other but not with the cached output mean it reads something that is not in its key (an
undeclared file, the environment, a library that changed).
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import attrs

from flowkit.authoring.metrics import collecting
from flowkit.errors import CorruptObject
from flowkit.execution.runtime import call_args, invoke, loader, step_env, value_of
from flowkit.execution.verdict import decide
from flowkit.graph.nodes import FlowSpec
from flowkit.keys.parts import show
from flowkit.store.objects import StoredOutput
from flowkit.store.store import Store


@attrs.frozen
class Finding:
    """One audited step: ``verdict`` is ``same``, ``not deterministic``, ``reads inputs not in its
    key`` or ``failed`` (the re-run raised); ``detail`` says what differed."""

    step: str
    key: str
    verdict: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Audit:
    flow: str
    cached: int  # how many steps of the plan were cache hits
    findings: tuple[Finding, ...]

    @property
    def suspicious(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict != "same"]

    def to_json(self) -> dict[str, Any]:
        return {"flow": self.flow, "cached": self.cached, "audited": len(self.findings),
                "suspicious": len(self.suspicious), "steps": [f.to_json() for f in self.findings]}


def cached_steps(flow: FlowSpec, params: dict[str, Any], store: Store) -> dict[str, tuple[str, StoredOutput]]:
    """The nodes a run with ``params`` would serve from the cache: key and output, in run order."""
    graph = flow.graph
    outputs: dict[str, StoredOutput] = {}
    found: dict[str, tuple[str, StoredOutput]] = {}
    for name in graph.order():
        if any(up not in outputs for up in graph.upstream(name)):
            continue
        node = graph.nodes[name]
        decision = decide(store, node, params=params, upstream={up: outputs[up].digest for up in node.inputs()},
                          flow_image=flow.image, forced=False)
        if decision.hit is not None and decision.key is not None:
            outputs[name] = decision.hit
            found[name] = (decision.key, decision.hit)
    return found


def audit(flow: FlowSpec, params: dict[str, Any], store: Store, *, sample: int | None = None,
          seed: int = 0) -> Audit:
    """Re-run ``sample`` of the flow's cached steps (all when None; chosen by ``seed``) twice each."""
    cached = cached_steps(flow, params, store)
    names = list(cached)
    if sample is not None and sample < len(names):
        chosen = set(random.Random(seed).sample(names, sample))
        names = [name for name in names if name in chosen]
    outputs = {name: output for name, (_, output) in cached.items()}
    with tempfile.TemporaryDirectory(prefix="flowkit-audit-") as scratch:
        scratch_store = Store(Path(scratch))
        findings = tuple(_audit_step(flow, params, store, scratch_store, name, *cached[name], outputs)
                         for name in names)
    return Audit(flow.name, len(cached), findings)


def _audit_step(flow: FlowSpec, params: dict[str, Any], store: Store, scratch: Store, name: str, key: str,
                recorded: StoredOutput, outputs: dict[str, StoredOutput]) -> Finding:
    node = flow.graph.nodes[name]
    load = loader(store, outputs)
    try:
        reruns = []
        for _ in range(2):  # fresh inputs each time: a step may change what it is given
            values = {arg_name: value_of(arg, params, load) for arg_name, arg in node.args.items()}
            args, kwargs = call_args(node, values)
            with collecting(name), step_env(node.step.opts.env):
                value = invoke(node, args, kwargs)
            reruns.append((value, scratch.objects.put(value, where=f"flow {flow.name!r}, step {name!r}").digest))
            load = loader(store, outputs)
    except Exception as exc:  # noqa: BLE001 - the user's step may raise anything
        return Finding(name, key, "failed", f"the re-run raised {type(exc).__name__}: {exc}")
    (first, first_digest), (second, second_digest) = reruns
    if first_digest != second_digest:
        return Finding(name, key, "not deterministic",
                       f"two re-runs gave different outputs: {show(first)} and {show(second)}")
    if first_digest != recorded.digest:
        return Finding(name, key, "reads inputs not in its key", f"cached {_shown(store, recorded)}, re-run {show(first)}")
    return Finding(name, key, "same")


def _shown(store: Store, output: StoredOutput) -> str:
    try:
        return show(store.objects.load(output))
    except CorruptObject:
        return f"output {output.digest[:12]} (its object is gone)"
