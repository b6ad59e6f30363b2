"""How the prebuilt steps' inputs are fingerprinted (``fk.steps``): a script by its bytes and the
bytes of every user module it imports, a copy's source by its content while the destination holds
it. Both are read when the key is made, never when the flow is built: a helper edited since is seen."""

from __future__ import annotations

from flowkit.authoring import copying
from flowkit.authoring.prebuilt import CopySource, ScriptSource
from flowkit.authoring.script_imports import script_manifest
from flowkit.errors import Unstable
from flowkit.keys.values import Feed, register_fingerprint


@register_fingerprint(ScriptSource, tag="flowkit-script/1")
def _write_script(value: ScriptSource, feed: Feed) -> None:
    try:
        feed.write_value(script_manifest(value.path))
    except OSError as exc:
        raise Unstable(f"script {value.path!r} cannot be read: {exc}") from None


@register_fingerprint(CopySource, tag="flowkit-copy/1")
def _write_copy(value: CopySource, feed: Feed) -> None:
    """Only a destination that holds the source's content makes a key: otherwise the copy runs."""
    try:
        wanted = copying.manifest(value.source, what="source")
    except FileNotFoundError as exc:
        raise Unstable(f"copy source {value.source!r} is missing: {exc}") from None
    if not copying.holds(value.destination, wanted):
        raise Unstable(f"destination {value.destination!r} does not hold the source's content yet")
    feed.write_value(wanted)
