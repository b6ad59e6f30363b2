"""The cache key's format, owned here: typed key parts, the key digest over them, and why two
keys differ (SPEC §4, §5).

Each part is kept separately (and stored with the step's record) so that ``plan`` and
``explain`` can say which one changed: scheme, version, code, arguments, environment. The JSON
of the parts and the digest are pinned: an old store reads the same, and keys stay the same.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from flowkit.errors import Unstable
from flowkit.graph.nodes import Arg, Item, Literal, ParamRef, Ref, Seq
from flowkit.keys.code import CodeFingerprint
from flowkit.keys.values import SCHEME_VERSION, fingerprint, hash_bytes

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


@attrs.frozen
class ArgPart:
    """One argument's part: ``kind`` value | param | input, its fingerprint, and for reasons a
    readable form (``show``) and where it came from (``source``: a parameter or upstream node)."""

    kind: str
    fp: str
    show: str | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"kind": self.kind, "fp": self.fp}
        if self.show is not None:
            data["show"] = self.show
        if self.source is not None:
            data["source"] = self.source
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ArgPart":
        return cls(str(data.get("kind", "value")), str(data.get("fp", "")), data.get("show"), data.get("source"))


@attrs.frozen
class CodePart:
    """The code part: the closure's digest, the step's own name, and each function's digest."""

    digest: str
    root: str
    parts: dict[str, str]
    values: tuple[str, ...] = ()  # parts that are values the code reads, for reasons (not hashed)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"digest": self.digest, "root": self.root, "parts": dict(self.parts)}
        if self.values:
            data["values"] = list(self.values)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "CodePart":
        return cls(str(data.get("digest", "")), str(data.get("root", "")), dict(data.get("parts") or {}),
                   tuple(data.get("values") or ()))


@attrs.frozen
class EnvPart:
    """The environment a step declares: its image and env variables."""

    image: str | None
    env: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "env": dict(self.env)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EnvPart":
        return cls(data.get("image"), dict(data.get("env") or {}))


@attrs.frozen
class KeyParts:
    """Every part of a step's key; ``key`` is their digest."""

    scheme: str
    version: str | None
    code: CodePart
    args: dict[str, ArgPart]
    env: EnvPart

    def to_json(self) -> dict[str, Any]:
        return {"scheme": self.scheme, "version": self.version, "code": self.code.to_json(),
                "args": {name: arg.to_json() for name, arg in self.args.items()}, "env": self.env.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "KeyParts":
        """Tolerant of records written by older versions: a missing part reads as empty."""
        args = data.get("args") or {}
        return cls(
            scheme=str(data.get("scheme")), version=data.get("version"),
            code=CodePart.from_json(data.get("code") or {}),
            args={str(name): ArgPart.from_json(arg) for name, arg in args.items() if isinstance(arg, dict)},
            env=EnvPart.from_json(data.get("env") or {}),
        )

    @property
    def key(self) -> str:
        """The cache key: a digest over the parts (readable forms left out).

        Fields are joined with NUL, which no digest, name or JSON text contains, so no two
        different part lists give the same text.
        """
        fields = [self.scheme, repr(self.version), self.code.digest]
        fields += [f"{name}={arg.fp}" for name, arg in self.args.items()]
        if self.env.image is not None or self.env.env:
            fields.append(canonical_json(self.env.to_json()).decode())
        return hash_bytes("\0".join(fields).encode())


def arg_part(arg: Arg, params: dict[str, Any], upstream: dict[str, str]) -> ArgPart:
    """The key part of one argument. ``upstream`` maps node names to their output digests.
    Raises ``errors.Unstable``."""
    if isinstance(arg, Literal):
        return ArgPart("value", fingerprint(arg.value), show(arg.value))
    if isinstance(arg, ParamRef):
        value = resolve_path(params[arg.name], arg.path)
        return ArgPart("param", fingerprint(value), show(value), arg.name)
    if isinstance(arg, Ref):
        fp = upstream[arg.node] if not arg.path else hash_bytes(canonical_json([upstream[arg.node], fingerprint(arg.path)]))
        return ArgPart("input", fp, source=arg.node)
    if isinstance(arg, Item):  # by the item's own content, never its position: an insert re-runs one item
        if arg.fp is None:
            raise Unstable(arg.unstable or f"item {arg.index} of the output of {arg.node!r}")
        return ArgPart("input", arg.fp, source=arg.node)
    if isinstance(arg, Seq):
        tag, keys, values = arg.kind, [None] * len(arg.items), arg.items
    else:
        tag, keys, values = "dict", [fingerprint(k) for k, _ in arg.items], tuple(v for _, v in arg.items)
    children = [arg_part(value, params, upstream) for value in values]
    kinds = {child.kind for child in children}
    kind = "input" if "input" in kinds else "param" if "param" in kinds else "value"
    return ArgPart(kind, hash_bytes(canonical_json([tag, keys, [c.fp for c in children]])))


def gather_digest(digests: list[str]) -> str:
    """The output digest of a ``.map``: over its items' output digests in order, so a downstream
    step's key follows every item without hashing the gathered list again."""
    return hash_bytes(canonical_json(["map", digests]))


def key_parts(*, version: str | None, code: CodeFingerprint, args: dict[str, ArgPart],
              image: str | None, env: tuple[tuple[str, str], ...]) -> KeyParts:
    """Every part of a step's key."""
    return KeyParts(SCHEME_VERSION, version, CodePart(code.digest, code.root, dict(code.parts), code.values), args,
                    EnvPart(image, dict(env)))


def differences(old: KeyParts, new: KeyParts) -> list[str]:
    """Why ``new`` is not ``old``, one reason per changed part, in key order."""
    reasons: list[str] = []
    if old.scheme != new.scheme:
        reasons.append(f"flowkit key scheme changed: {old.scheme} -> {new.scheme}")
    if old.version != new.version:
        reasons.append(f"version changed: {old.version} -> {new.version}")
    reasons += _code_differences(old.code, new.code)
    reasons += _arg_differences(old.args, new.args)
    if old.env.image != new.env.image:
        reasons.append("image changed")
    if old.env.env != new.env.env:
        reasons.append("env changed")
    return reasons


def _code_differences(old: CodePart, new: CodePart) -> list[str]:
    if old.digest == new.digest:
        return []
    changed = sorted(name for name in set(old.parts) | set(new.parts) if old.parts.get(name) != new.parts.get(name))
    values = set(old.values) | set(new.values)
    names = [f"{name}()" if name == new.root else f"global {name}" if name in values else f"helper {name}()"
             for name in changed]
    return [f"code changed: {', '.join(names)}" if names else "code changed"]


def _arg_differences(old: dict[str, ArgPart], new: dict[str, ArgPart]) -> list[str]:
    reasons = []
    for name in list(new) + [n for n in old if n not in new]:
        before, after = old.get(name), new.get(name)
        if before is not None and after is not None and before.fp == after.fp:
            continue
        kind = (after or before).kind  # type: ignore[union-attr]
        if kind == "input":
            reasons.append(f"input changed: {name}")
        elif before is None or after is None:
            reasons.append(f"param changed: {name} {'added' if before is None else 'removed'}")
        elif before.show is not None and after.show is not None and before.show != after.show:
            reasons.append(f"param changed: {name} {before.show} -> {after.show}")
        else:  # the same text, other content: a file's bytes, an object's state
            reasons.append(f"param changed: {name} (content {before.fp[:12]} -> {after.fp[:12]})")
    return reasons
