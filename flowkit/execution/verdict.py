"""A node's cache verdict: its key from the ``keys`` side, looked up in the store.

The same function decides for a run and for a plan, so the plan predicts the run. A value or
code that cannot be fingerprinted stably gives no key: the step runs uncached, with the reason.
"""

from __future__ import annotations

from typing import Any

import attrs

from flowkit.authoring.metrics import Metric
from flowkit.errors import Unstable
from flowkit.graph.nodes import Node
from flowkit.keys import parts as key_parts
from flowkit.keys.code import code_fingerprint
from flowkit.keys.parts import KeyParts
from flowkit.store.objects import StoredOutput
from flowkit.store.store import Store


@attrs.define
class Decision:
    """A node's verdict: ``hit`` is set for a cache hit; ``key`` is None when uncacheable."""

    key: str | None
    parts: KeyParts | None
    hit: StoredOutput | None = None
    reason: str | None = None  # why it cannot be cached (disabled, forced, unstable input)
    metrics: list[Metric] = attrs.field(factory=list)  # logged by the run that made the hit
    logged_params: dict[str, Any] = attrs.field(factory=dict)


def node_parts(node: Node, *, params: dict[str, Any], upstream: dict[str, str],
               flow_image: str | None) -> tuple[KeyParts | None, str | None]:
    """The node's key parts given its upstream output digests, or None and why it has none (code or
    an input that cannot be fingerprinted stably). ``plan --since`` builds them the same way."""
    opts = node.step.opts
    try:
        code = code_fingerprint(node.step.fn)
    except Unstable as exc:
        return None, f"unstable code: {exc.reason}"
    try:
        args = {name: key_parts.arg_part(arg, params, upstream) for name, arg in node.args.items()}
    except Unstable as exc:
        return None, f"unstable input: {exc.reason}"
    return key_parts.key_parts(version=opts.version, code=code, args=args, image=opts.image or flow_image,
                               env=opts.env), None


def decide(store: Store, node: Node, *, params: dict[str, Any], upstream: dict[str, str],
           flow_image: str | None, forced: bool) -> Decision:
    """Compute the key of ``node`` given its upstream output digests, and look it up."""
    opts = node.step.opts
    parts, why = node_parts(node, params=params, upstream=upstream, flow_image=flow_image)
    if parts is None:
        return Decision(None, None, reason=why)
    key = parts.key
    if not opts.cache:
        return Decision(key, parts, reason="cache disabled")
    if forced:
        return Decision(key, parts, reason="forced")
    hit = store.records.read_hit(key)
    if hit is not None and store.objects.has(hit.output):
        return Decision(key, parts, hit=hit.output, metrics=hit.metrics, logged_params=hit.logged_params)
    return Decision(key, parts)
