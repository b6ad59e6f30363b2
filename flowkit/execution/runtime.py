"""Running one step: the one function every backend and the ``run-step`` entrypoint go through.

``execute`` computes the step's key from its code, arguments and upstream digests, records a
cache hit, or loads the inputs, calls the function (with retries), stores the output and writes
the key record and the node record at once, so a killed run loses no finished step.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import time
import traceback
from collections import OrderedDict
from typing import Any, Callable, Iterator, Protocol

import attrs

from flowkit.authoring.metrics import Metric, collecting
from flowkit.errors import CorruptObject, FlowDefinitionError, FlowkitError, MissingInput, SerializationError, StepFailure
from flowkit.graph.nodes import Arg, FlowGraph, FlowSpec, Item, Literal, Mapping, Node, ParamRef, Ref, Seq
from flowkit.keys.parts import KeyParts, gather_digest, resolve_path
from flowkit.keys.values import forget_pass
from flowkit.store.objects import StoredOutput
from flowkit.store.records import NodeRecord
from flowkit.store.store import Store
from flowkit.execution.capture import capturing
from flowkit.execution.verdict import Decision, decide


class NodeLog(Protocol):
    """Where an in-process runner's node records go (``store.journal.Journal`` writes them in batches)."""

    def add(self, record: NodeRecord) -> None: ...

    def flush(self) -> None: ...


@attrs.define
class RunContext:
    """What every step of one run shares."""

    flow: FlowSpec
    params: dict[str, Any]
    store: Store
    run_id: str
    force: bool = False
    force_steps: frozenset[str] = frozenset()
    retries: bool = True  # False when the orchestrator does the retrying
    journal: NodeLog | None = None  # None: each record is written at once (run-step)
    # the graph as the run started: traced once, whatever the flow's code does meanwhile
    graph: FlowGraph = attrs.field(default=attrs.Factory(lambda ctx: ctx.flow.graph, takes_self=True))
    # the item nodes of this run's maps, made when their lists became known (``execution.mapping``)
    items: dict[str, Node] = attrs.field(factory=dict)
    expansions: dict[str, list[str]] = attrs.field(factory=dict)  # map node -> its item names, in order
    fresh: set[str] = attrs.field(factory=set)  # item nodes that ran (not cached) in this run

    def node(self, name: str) -> Node:
        """A node of the graph, or an item node of one of this run's maps."""
        node = self.graph.nodes.get(name)
        return node if node is not None else self.items[name]

    def record(self, outcome: "NodeOutcome") -> None:
        """Record a node's outcome in this run's history."""
        if outcome.status == "ran" and outcome.node in self.items:
            self.fresh.add(outcome.node)
        record = outcome.record(self.flow.name, self.run_id)
        if self.journal is None:
            self.store.write_node(record)
        else:
            self.journal.add(record)

    def forced(self, node: str) -> bool:
        """``--force``, ``--force-step NAME``, or an item of a map forced by name."""
        if self.force or node in self.force_steps:
            return True
        item = self.items.get(node)
        return item is not None and item.item_of in self.force_steps

    def evolve_forced(self, node: str) -> "RunContext":
        """The same run with ``node`` forced: to re-make an output found corrupt."""
        return attrs.evolve(self, force_steps=self.force_steps | {node})

    def decide(self, name: str, upstream: dict[str, str]) -> Decision:
        """The verdict of node ``name`` in this run, given its upstream output digests."""
        return decide(self.store, self.node(name), params=self.params, upstream=upstream,
                      flow_image=self.flow.image, forced=self.forced(name))


@attrs.define
class NodeOutcome:
    """What happened to one node in one run; ``record()`` is its immutable store record."""

    node: str
    status: str  # ran | cached | failed | skipped
    key: str | None = None
    parts: KeyParts | None = None
    output: StoredOutput | None = None
    started: float = 0.0
    duration: float = 0.0
    attempts: int = 0
    error: str | None = None
    traceback: str | None = None
    metrics: list[Metric] = attrs.field(factory=list)
    logged_params: dict[str, Any] = attrs.field(factory=dict)
    key_recorded: bool = False  # a key record holds the parts, so this node's record need not repeat them
    inputs: dict[str, str] = attrs.field(factory=dict)  # upstream node -> the output digest it gave (lineage)

    @property
    def cache_key(self) -> str | None:
        return self.key

    @property
    def output_digest(self) -> str | None:
        """The content digest of the output (what downstream keys use), or None."""
        return self.output.digest if self.output else None

    def record(self, flow: str, run_id: str, *, with_parts: bool = False) -> NodeRecord:
        return NodeRecord(
            flow=flow, run_id=run_id, node=self.node, status=self.status, key=self.key,
            parts=self.parts if with_parts or not self.key_recorded else None, output=self.output,
            started=self.started, duration=self.duration, attempts=self.attempts, error=self.error,
            traceback=self.traceback, metrics=self.metrics, logged_params=self.logged_params, inputs=self.inputs,
        )

    @classmethod
    def from_record(cls, record: NodeRecord) -> "NodeOutcome":
        return cls(
            node=record.node, status=record.status, key=record.key, parts=record.parts, output=record.output,
            started=record.started, duration=record.duration, attempts=record.attempts, error=record.error,
            traceback=record.traceback, metrics=record.metrics, logged_params=record.logged_params,
            inputs=record.inputs,
        )


def value_of(arg: Arg, params: dict[str, Any], load: Callable[[str], Any]) -> Any:
    """The Python value an argument tree stands for at run time."""
    if isinstance(arg, Literal):
        return arg.value
    if isinstance(arg, ParamRef):
        return _part(params[arg.name], arg.path, f"parameter {arg.name!r}")
    if isinstance(arg, Ref):
        return _part(load(arg.node), arg.path, f"the output of step {arg.node!r}")
    if isinstance(arg, Item):
        return _part(load(arg.node), arg.path + (arg.index,), f"the output of step {arg.node!r}")
    if isinstance(arg, Seq):
        items = [value_of(item, params, load) for item in arg.items]
        return items if arg.kind == "list" else tuple(items)
    assert isinstance(arg, Mapping)
    return {key: value_of(item, params, load) for key, item in arg.items}


def _part(value: Any, path: tuple[Any, ...], what: str) -> Any:
    """``value[path[0]][path[1]]...``; a key or index it lacks is the flow's mistake, said plainly."""
    try:
        return resolve_path(value, path)
    except (KeyError, IndexError, TypeError) as exc:
        shown = "".join(f"[{key!r}]" for key in path)
        keys = f" (its keys: {', '.join(map(repr, list(value)[:10]))})" if isinstance(value, dict) else ""
        raise FlowDefinitionError(
            f"{what}{shown} does not exist: {type(exc).__name__}: {exc}; it is a {type(value).__name__}{keys}",
            hint="index the output with a key or position it has, or change the step that makes it",
        ) from None


@contextlib.contextmanager
def step_env(env: tuple[tuple[str, str], ...]) -> Iterator[None]:
    """The step's ``env`` set while it runs, as its container or compiled task has it; then restored.
    (One step at a time runs in a process: the local runner's, or a forked worker.)"""
    if not env:
        yield
        return
    saved = {name: os.environ.get(name) for name, _ in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def loader(store: Store, outputs: dict[str, StoredOutput]) -> Callable[[str], Any]:
    """Load upstream outputs by node name, each once, turning corruption into MissingInput."""
    loaded: dict[str, Any] = {}

    def load(node: str) -> Any:
        if node not in loaded:
            try:
                loaded[node] = store.files.load_output(outputs[node])  # fk.File / fk.Dir parts restored
            except CorruptObject as exc:
                raise MissingInput(node, str(exc)) from None
        return loaded[node]

    return load


def call_args(node: Node, values: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments rebuilt from the bound values."""
    bound = inspect.BoundArguments(node.step.signature, OrderedDict(values))
    return bound.args, bound.kwargs


def invoke(node: Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call the step function: here, or in a child process that a timeout can kill."""
    timeout = node.step.opts.timeout
    if timeout is None:
        forget_pass()  # the step may change in place a value this pass has fingerprinted
        return node.step.fn(*args, **kwargs)
    from flowkit.execution.forking import call_with_timeout

    return call_with_timeout(node.step.fn, args, kwargs, timeout=timeout, name=node.name)


def user_traceback(exc: BaseException) -> str:
    """The traceback from the user's code on, without flowkit's own frames."""
    if isinstance(exc, StepFailure):
        return exc.traceback_text
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # flowkit/


def execute(ctx: RunContext, name: str, outputs: dict[str, StoredOutput],
            decision: Decision | None = None) -> NodeOutcome:
    """Run or reuse one node; records the outcome in the store before returning it.

    ``outputs`` holds the outputs of (at least) this node's upstream nodes. Raises MissingInput
    when an upstream object is missing or corrupt, so the caller can make it again.
    """
    node = ctx.node(name)
    started = time.time()
    if node.map is not None:
        outcome = _gather(ctx, node, outputs, started)
        ctx.record(outcome)
        return outcome
    upstream = {up: outputs[up].digest for up in node.inputs()}
    if decision is None:
        decision = ctx.decide(name, upstream)
    if decision.hit is not None:
        outcome = NodeOutcome(name, "cached", decision.key, decision.parts, decision.hit, started,
                              time.time() - started, metrics=decision.metrics, logged_params=decision.logged_params,
                              key_recorded=True, inputs=upstream)
    else:
        outcome = _run(ctx, node, outputs, decision, started, upstream)
    ctx.record(outcome)
    return outcome


def _gather(ctx: RunContext, node: Node, outputs: dict[str, StoredOutput], started: float) -> NodeOutcome:
    """A map node once its items finished: the list of their outputs in input order (those that
    succeeded, while enough did: ``min_success_ratio``), its digest over theirs."""
    assert node.map is not None
    names = ctx.expansions.get(node.name)
    if names is None:
        raise FlowDefinitionError(
            f"flow {ctx.flow.name!r}, step {node.name!r}: .map makes its items when a run reaches it, "
            "and this way of running a single step cannot make them",
            hint="run the flow with --backend local or --backend process",
        )
    done = [item for item in names if item in outputs]
    inputs = {item: outputs[item].digest for item in done}
    outcome = NodeOutcome(node.name, "failed", started=started, inputs=inputs)
    ratio = node.map.min_success_ratio
    needed = math.ceil(ratio * len(names) - 1e-9)
    if len(done) < needed:
        failed = [item for item in names if item not in outputs]
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        outcome.error = (f"step {node.name!r}: {len(failed)} of {len(names)} items failed ({shown}); "
                         f"min_success_ratio {ratio:g} needs {needed} to succeed")
        outcome.duration = time.time() - started
        return outcome
    load = loader(ctx.store, outputs)
    values = [load(item) for item in done]
    stored = ctx.store.files.put_output(values, where=f"flow {ctx.flow.name!r}, step {node.name!r}")
    outcome.output = attrs.evolve(stored, digest=gather_digest([inputs[item] for item in done]))
    outcome.status = "ran" if len(done) < len(names) or any(item in ctx.fresh for item in done) else "cached"
    outcome.duration = time.time() - started
    return outcome


def _run(ctx: RunContext, node: Node, outputs: dict[str, StoredOutput], decision: Decision,
         started: float, upstream: dict[str, str]) -> NodeOutcome:
    load = loader(ctx.store, outputs)
    outcome = NodeOutcome(node.name, "failed", decision.key, decision.parts, started=started, inputs=upstream)
    try:
        values = {key: value_of(arg, ctx.params, load) for key, arg in node.args.items()}
    except FlowDefinitionError as exc:  # an input indexed by a key its upstream output lacks
        outcome.error = f"step {node.name!r}: {exc}"
        outcome.duration = time.time() - started
        return outcome
    args, kwargs = call_args(node, values)
    opts = node.step.opts
    retries = opts.retries if ctx.retries else 0
    with collecting(node.name) as log, capturing(ctx.store.logs.live(ctx.run_id, node.name)) as live:
        for attempt in range(1, retries + 2):
            outcome.attempts = attempt
            if attempt > 1:
                live.write(f"--- attempt {attempt} of {retries + 1} ---\n".encode())
            try:
                with step_env(opts.env):
                    value = invoke(node, args, kwargs)
                break
            except FlowkitError:
                raise
            except BaseException as exc:  # noqa: BLE001 - the user's code may raise anything
                if isinstance(exc, KeyboardInterrupt):
                    raise
                outcome.error = exc.error if isinstance(exc, StepFailure) else f"{type(exc).__name__}: {exc}"
                outcome.traceback = user_traceback(exc)
                live.write(((outcome.traceback or outcome.error).rstrip("\n") + "\n").encode("utf-8", "replace"))
                if attempt <= retries and opts.retry_delay:
                    time.sleep(opts.retry_delay)
        else:
            outcome.metrics, outcome.logged_params = log.metrics, log.params
            outcome.duration = time.time() - started
            return outcome
    outcome.metrics, outcome.logged_params = log.metrics, log.params
    try:
        outcome.output = ctx.store.files.put_output(value, where=f"flow {ctx.flow.name!r}, step {node.name!r}")
    except SerializationError as exc:
        outcome.error, outcome.traceback = str(exc), None
        outcome.duration = time.time() - started
        return outcome
    outcome.status, outcome.error, outcome.traceback = "ran", None, None
    outcome.duration = time.time() - started
    if decision.key is not None and node.step.opts.cache:
        ctx.store.sources.record(decision.parts, node.step.fn)  # before the key naming them; new code only
        # the node record of this run, too: `cache reindex` restores it if the run is killed before
        # its journal is written
        ctx.store.records.write_key(attrs.evolve(outcome.record(ctx.flow.name, ctx.run_id, with_parts=True),
                                         created=time.time()))
        outcome.key_recorded = True
    return outcome
