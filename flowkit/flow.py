"""``@flow`` and ``Flow``: the public face of a flow, the one door from authoring to running.

The body runs once, when the graph is first needed, recording step calls into a graph
(``graph.builder``). ``Flow.plan`` and ``Flow.run`` hand that graph to ``execution``; this
module sits above execution so that nothing below it imports the class (they see a ``FlowSpec``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from flowkit.authoring import params as _params
from flowkit.errors import FlowDefinitionError, Unstable
from flowkit.graph.builder import trace
from flowkit.graph.nodes import FlowGraph
from flowkit.keys.code import code_fingerprint
from flowkit.keys.values import forget_pass

if TYPE_CHECKING:
    from flowkit.execution.plan import Plan
    from flowkit.execution.run import Run


class Flow:
    """A decorated flow function: build its graph, plan it, run it."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, schedule: str | None = None,
                 image: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        if not self.name or not isinstance(self.name, str):
            raise FlowDefinitionError(f"@flow: name must be a non-empty string, got {name!r}")
        self.schedule = schedule
        self.image = image
        self.params = _params.schema_of(self.name, fn)
        self._graph: FlowGraph | None = None
        self._graph_code: str | None = None  # the code fingerprint of the body the graph was traced from
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def graph(self) -> FlowGraph:
        """The validated graph, traced from the body; traced again when the code or data the body
        reaches has changed since (a step or a helper redefined in a notebook cell)."""
        try:
            code: str | None = code_fingerprint(self.fn).digest
        except Unstable:
            code = None  # cannot tell what changed: trace again
        if self._graph is None or code is None or code != self._graph_code:
            self._graph, self._graph_code = self._build(), code
            forget_pass()  # the body is user code: it may have changed a value fingerprinted above
        return self._graph

    def _build(self) -> FlowGraph:
        return trace(self.name, self.fn, [spec.name for spec in self.params])

    def resolve_params(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled in, values checked against the schema."""
        return _params.resolve(self.name, self.params, given)

    def plan(self, *, force: bool = False, force_steps: tuple[str, ...] | list[str] = (), store: Any = None,
             **params: Any) -> "Plan":
        """What a run with these parameters would do, without executing or writing anything."""
        from flowkit.execution.plan import make_plan
        from flowkit.store import open_store

        return make_plan(self, self.resolve_params(params), open_store(store, create=False), force=force,
                         force_steps=tuple(force_steps))

    def run(self, *, backend: str = "local", workers: int | None = None, force: bool = False,
            force_steps: tuple[str, ...] | list[str] = (), store: Any = None, **params: Any) -> "Run":
        """Run the flow and return its ``Run``; unchanged steps are cache hits."""
        from flowkit import registry
        from flowkit.execution.run import run_flow

        _params.check_workers(workers)
        resolved = self.resolve_params(params)
        return run_flow(self, resolved, registry.runner(backend, workers), backend=backend, force=force,
                        force_steps=tuple(force_steps), store=store)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise FlowDefinitionError(f"flow {self.name!r} is not called directly", hint=f"use {self.name}.run(...)")

    def __repr__(self) -> str:
        return f"<flowkit flow {self.name}>"


def flow(fn: Callable[..., Any] | None = None, /, *, name: str | None = None, schedule: str | None = None,
         image: str | None = None) -> Any:
    """Declare a flow: ``@flow`` bare or ``@flow(name="digits", schedule="@daily", image=...)``."""
    if fn is None:
        return lambda f: Flow(f, name=name, schedule=schedule, image=image)
    return Flow(fn, name=name, schedule=schedule, image=image)
