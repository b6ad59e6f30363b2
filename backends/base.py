"""The contracts every backend implements: a ``Runner`` runs a flow, a ``Compiler`` renders it.

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
    from flowkit.backends.compilers.options import CompileOptions
    from flowkit.graph.nodes import FlowSpec

__all__ = ["Artifact", "Compiler", "RunReport", "Runner"]


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

    def compile(self, flow: "FlowSpec", options: "CompileOptions") -> list[Artifact]: ...
