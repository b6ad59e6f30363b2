"""What every compiler receives: the flow, where it lives, where the store is, and target settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from flowkit.graph.nodes import FlowSpec


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
