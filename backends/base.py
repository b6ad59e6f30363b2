"""The two small interfaces every backend implements: running a flow, or compiling it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from flowkit.flow import Flow
    from flowkit.runtime import NodeOutcome, RunContext


@attrs.define
class RunReport:
    """What a runner returns: one outcome per node it reached, in the order they finished."""

    outcomes: dict[str, "NodeOutcome"]
    cancelled: bool = False


class Runner(Protocol):
    """Executes a run's nodes; every node goes through ``flowkit.runtime.execute``."""

    def run(self, ctx: "RunContext") -> RunReport: ...


@attrs.frozen
class Artifact:
    """One generated file: a path relative to the output folder, and its text."""

    path: str
    content: str


class Compiler(Protocol):
    """Renders a flow into files; pure: returns contents, only the CLI writes them."""

    def compile(self, flow: "Flow", options: dict[str, Any]) -> list[Artifact]: ...
