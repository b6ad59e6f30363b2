"""Cache keys: the parts of a step's key, the key itself, and why two keys differ.

Each part is kept separately (and stored with the step's record) so that ``plan`` and
``explain`` can say which one changed: scheme, version, code, arguments, environment.
"""

from __future__ import annotations

import json
from typing import Any

from .graph import Arg, Literal, ParamRef, Ref, Seq
from .codehash import CodeFingerprint
from .hashing import SCHEME_VERSION, fingerprint, hash_bytes

_SHOW_LIMIT = 60


def canonical_json(data: Any) -> bytes:
    """The bytes hashed into keys: the standard library's JSON, ASCII only, so keys never depend on
    which JSON library wrote the records."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def show(value: Any) -> str:
    """A short readable form of a value for reasons like ``lr 0.1 -> 0.2``."""
    text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def resolve_path(value: Any, path: tuple[Any, ...]) -> Any:
    """Index a value along ``out[0]["key"]``-style path."""
    for key in path:
        value = value[key]
    return value


def arg_part(arg: Arg, params: dict[str, Any], upstream: dict[str, str]) -> dict[str, Any]:
    """The key part of one argument: its kind, fingerprint and a readable form.

    ``upstream`` maps node names to their output digests. Raises ``hashing.Unstable``.
    """
    if isinstance(arg, Literal):
        return {"kind": "value", "fp": fingerprint(arg.value), "show": show(arg.value)}
    if isinstance(arg, ParamRef):
        value = resolve_path(params[arg.name], arg.path)
        return {"kind": "param", "fp": fingerprint(value), "show": show(value), "source": arg.name}
    if isinstance(arg, Ref):
        fp = upstream[arg.node] if not arg.path else hash_bytes(canonical_json([upstream[arg.node], fingerprint(arg.path)]))
        return {"kind": "input", "fp": fp, "source": arg.node}
    if isinstance(arg, Seq):
        tag, keys, values = arg.kind, [None] * len(arg.items), arg.items
    else:
        tag, keys, values = "dict", [fingerprint(k) for k, _ in arg.items], tuple(v for _, v in arg.items)
    children = [arg_part(value, params, upstream) for value in values]
    kinds = {child["kind"] for child in children}
    kind = "input" if "input" in kinds else "param" if "param" in kinds else "value"
    return {"kind": kind, "fp": hash_bytes(canonical_json([tag, keys, [c["fp"] for c in children]]))}


def key_parts(*, version: str | None, code: CodeFingerprint, args: dict[str, dict[str, Any]],
              image: str | None, env: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Every part of a step's key, JSON-ready."""
    return {
        "scheme": SCHEME_VERSION,
        "version": version,
        "code": {"digest": code.digest, "root": code.root, "parts": dict(code.parts)},
        "args": args,
        "env": {"image": image, "env": dict(env)},
    }


def key_of(parts: dict[str, Any]) -> str:
    """The cache key: a digest over the parts (readable forms left out).

    Fields are joined with NUL, which no digest, name or JSON text contains, so no two different
    part lists give the same text.
    """
    fields = [parts["scheme"], repr(parts["version"]), parts["code"]["digest"]]
    fields += [f"{name}={arg['fp']}" for name, arg in parts["args"].items()]
    if parts["env"]["image"] is not None or parts["env"]["env"]:
        fields.append(canonical_json(parts["env"]).decode())
    return hash_bytes("\0".join(fields).encode())


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why ``new`` is not ``old``, one reason per changed part, in key order."""
    reasons: list[str] = []
    if old.get("scheme") != new["scheme"]:
        reasons.append(f"flowkit key scheme changed: {old.get('scheme')} -> {new['scheme']}")
    if old.get("version") != new["version"]:
        reasons.append(f"version changed: {old.get('version')} -> {new['version']}")
    reasons += _code_differences(old.get("code", {}), new["code"])
    reasons += _arg_differences(old.get("args", {}), new["args"])
    old_env = old.get("env", {})
    if old_env.get("image") != new["env"]["image"]:
        reasons.append("image changed")
    if old_env.get("env") != new["env"]["env"]:
        reasons.append("env changed")
    return reasons


def _code_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    if old.get("digest") == new["digest"]:
        return []
    old_parts, new_parts = old.get("parts", {}), new["parts"]
    changed = sorted(name for name in set(old_parts) | set(new_parts) if old_parts.get(name) != new_parts.get(name))
    root = new["root"]
    names = [f"{name}()" if name == root else f"helper {name}()" for name in changed]
    return [f"code changed: {', '.join(names)}" if names else "code changed"]


def _arg_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    reasons = []
    for name in list(new) + [n for n in old if n not in new]:
        before, after = old.get(name), new.get(name)
        if before is not None and after is not None and before["fp"] == after["fp"]:
            continue
        kind = (after or before or {}).get("kind")
        if kind == "input":
            reasons.append(f"input changed: {name}")
        elif before is None or after is None:
            reasons.append(f"param changed: {name} {'added' if before is None else 'removed'}")
        elif "show" in before and "show" in after and before["show"] != after["show"]:
            reasons.append(f"param changed: {name} {before['show']} -> {after['show']}")
        else:
            reasons.append(f"param changed: {name}")
    return reasons
