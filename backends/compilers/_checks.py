"""Refuse, before any output, the step options a target cannot express (never drop them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowkit.errors import CompileError
from flowkit.authoring.step import Resources, StepOptions

if TYPE_CHECKING:
    from flowkit.graph.nodes import FlowSpec

_DEFAULTS = StepOptions()


def used_options(opts: StepOptions, flow_image: str | None = None) -> set[str]:
    """The options a step sets away from their defaults (the flow's image counts as the step's)."""
    used = {name for name in ("retries", "retry_delay", "timeout", "env") if getattr(opts, name) != getattr(_DEFAULTS, name)}
    if opts.image or flow_image:
        used.add("image")
    if opts.resources != Resources():
        used.add("resources")
    return used


def refuse_unsupported(flow: "FlowSpec", target: str, supported: set[str], hints: dict[str, str] | None = None,
                       *, maps: bool = False) -> None:
    """CompileError naming the first step and option the target cannot express; ``maps``: the
    target has a native run-time fan-out for ``.map`` (else the first map step is refused)."""
    if not maps:
        refuse_map(flow, target)
    for name in flow.graph.order():
        opts = flow.graph.nodes[name].step.opts
        unsupported = sorted(used_options(opts, flow.image) - supported)
        if unsupported:
            option = unsupported[0]
            raise CompileError(
                f"flow {flow.name!r}, step {name!r}: option {option!r} cannot be expressed in the {target} target",
                hint=(hints or {}).get(option, f"remove {option!r} from the step, or compile to a target that supports it"),
            )


def refuse_map(flow: "FlowSpec", target: str) -> None:
    """CompileError naming the first ``.map`` step: the target has no run-time fan-out yet."""
    maps = flow.graph.maps()
    if maps:
        raise CompileError(
            f"flow {flow.name!r}, step {maps[0]!r}: .map (run-time fan-out) is not supported by the {target} target yet",
            hint="run the flow with --backend local or --backend process, or fan out over a fixed list with a loop",
        )


def no_container_hints(subject: str, python: str) -> dict[str, str]:
    """Hints for a target whose steps run on a machine's own Python: no image, no resource limits."""
    elsewhere = "compile to the argo target, or run with the docker backend"
    return {
        "image": f"{subject} runs every step on {python}: {elsewhere}, to use an image",
        "resources": f"{subject} cannot reserve cpu, memory or gpu: {elsewhere}",
    }


def refuse_clashing_map_names(flow: "FlowSpec", names: dict[str, str], maps: list[str], suffixes: tuple[str, ...],
                              what: str) -> None:
    """A map's extra task names (its name plus each suffix) must not be another node's name: name both
    steps if they are. ``names``: node -> its name in the target; ``what``: how the target calls it."""
    owner = {name: node for node, name in names.items()}
    for node in maps:
        for suffix in suffixes:
            other = owner.get(names[node] + suffix)
            if other is not None:
                raise CompileError(
                    f"flow {flow.name!r}, step {node!r}: the {what} {names[node] + suffix!r} of its .map "
                    f"is also the name of step {other!r}",
                    hint="rename one of them with .options(name=...)",
                )
