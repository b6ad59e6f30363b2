"""The ``run-step`` command line, built in one place for every backend and compiled target."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .options import CompileOptions


def step_argv(options: "CompileOptions", node: str, *, retries_by_orchestrator: bool = True) -> list[str]:
    """Everything after the interpreter except ``--run-id`` and ``-p``, which each target fills in.

    ``--expect-code`` pins the step's code digest at compile time, so a worker holding other
    code refuses to run instead of silently running something else.
    """
    # "--step=NAME": a node may be named like an option ("-x"), which a separate word would not survive
    argv = ["-m", "flowkit", "run-step", f"--flow={options.flow_ref}", f"--step={node}", "--store", options.store]
    if retries_by_orchestrator:
        argv.append("--no-retries")
    if options.bundle:
        argv += ["--bundle", options.bundle]
    digest = options.code_digests.get(node)
    if digest:
        argv += ["--expect-code", digest]
    return argv
