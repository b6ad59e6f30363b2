"""The contracts every backend implements: a ``Runner`` runs a flow, a ``Compiler`` renders it
(from the ``CompileOptions`` the CLI resolved) into ``Artifact``s.

``Runner`` and ``RunReport`` are defined by ``flowkit.execution.run``, the code that calls
them (so execution never imports a backend), and re-exported here beside the compile side, so
that every backend's contract reads in one place. ``tests/test_architecture.py`` checks that
every registered backend satisfies its protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from flowkit.execution.run import RunReport, Runner

if TYPE_CHECKING:
    from flowkit.graph.nodes import FlowSpec

__all__ = ["Artifact", "CompileOptions", "Compiler", "RunReport", "Runner", "code_digests"]


@attrs.frozen
class CompileOptions:
    """Resolved at compile time so generated files run from any working directory."""

    flow_ref: str                        # absolute path/to/file.py:attr, or package.module:attr
    source: str                          # the FLOW the user typed, for the generated header
    workdir: str                         # the project folder (absolute): cwd and sys.path of the steps
    store: str                           # store URI the steps use (file:///abs/path or a mounted path)
    image: str | None = None             # default image for steps without one (argo)
    kind: str = "workflow"               # argo: workflow | workflow-template | cron-workflow
    volume_claim: str | None = None      # argo: PersistentVolumeClaim mounted at the store path
    jobs: int = 4                        # shell: default parallel jobs
    python: str = "python3"              # interpreter in generated commands (argo, shell default)
    code_digests: dict[str, str] = attrs.field(factory=dict)  # node -> code digest, for --expect-code
    bundle: str | None = None            # digest of the code bundle in the store (--bundle)


def code_digests(flow: "FlowSpec") -> dict[str, str]:
    """Each node's code digest at compile time."""
    from flowkit.keys.code import code_fingerprint

    return {name: code_fingerprint(node.step.fn).digest for name, node in flow.graph.nodes.items()}


@attrs.frozen
class Artifact:
    """One generated file: a path relative to the output folder, its text, and whether it runs."""

    path: str
    content: str
    executable: bool = False


@runtime_checkable
class Compiler(Protocol):
    """Renders a flow into files; pure: returns contents, only the CLI writes them."""

    target: str

    def compile(self, flow: "FlowSpec", options: CompileOptions) -> list[Artifact]: ...
