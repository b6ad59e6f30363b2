"""The ``run-step`` command line, built in one place for every backend and compiled target."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowkit.backends.base import CompileOptions


def run_step_argv(flow_ref: str, node: str, store: str, *, item: int | None = None) -> list[str]:
    """``-m flowkit run-step`` for one node (``item``: item N of the ``.map`` node ``node``): what
    goes after the interpreter, before run options."""
    # "--step=NAME": a node may be named like an option ("-x"), which a separate word would not survive
    argv = ["-m", "flowkit", "run-step", f"--flow={flow_ref}", f"--step={node}", "--store", store]
    return argv if item is None else [*argv, f"--item={item}"]


def step_argv(options: "CompileOptions", node: str, *, retries_by_orchestrator: bool = True) -> list[str]:
    """A compiled target's command after the interpreter, except ``--run-id`` and ``-p``, which each
    target fills in its own way.

    ``--expect-code`` pins the step's code digest at compile time, so a worker holding other
    code refuses to run instead of silently running something else.
    """
    argv = run_step_argv(options.flow_ref, node, options.store)
    if retries_by_orchestrator:
        argv.append("--no-retries")
    if options.bundle:
        argv += ["--bundle", options.bundle]
    digest = options.code_digests.get(node)
    if digest:
        argv += ["--expect-code", digest]
    return argv
