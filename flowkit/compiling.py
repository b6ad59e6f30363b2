"""``flowkit compile``: resolve the options, let the target's compiler render, write the files."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from . import registry
from .store import Store, store_path


def store_uri(spec: str | None) -> str:
    """A store reference valid from any folder: URIs as given, paths made absolute ``file://``."""
    if spec and "://" in spec and not spec.startswith("file://"):
        return spec
    return store_path(spec).as_uri()


def compile_options(args: argparse.Namespace) -> tuple[Any, Any]:
    from flowkit.backends.options import CompileOptions, code_digests

    from .loading import canonical_ref

    flow, ref = canonical_ref(args.flow)
    options = CompileOptions(
        flow_ref=ref, source=args.flow, workdir=os.getcwd(), store=store_uri(args.store), image=args.image,
        kind=args.kind, volume_claim=args.volume_claim, jobs=args.jobs, python=args.python,
        code_digests=code_digests(flow),
    )
    if getattr(args, "bundle", False):
        options = with_bundle(options)
    return flow, options


def with_bundle(options: Any) -> Any:
    """Ship the project's Python files in the store; steps import the flow from there."""
    import attrs

    from .bundle import bundle_root, make_bundle

    path, attr = options.flow_ref.rsplit(":", 1)
    if not path.endswith(".py"):
        from .errors import CompileError

        raise CompileError(f"--bundle needs FLOW as a file (path/to/flow.py), got {options.source!r}",
                           hint="a module reference already means the code is installed where steps run")
    flow_file, workdir = Path(path), Path(options.workdir)
    root = bundle_root(flow_file, workdir)
    store = Store(store_path(options.store))
    digest = store.put_bytes(make_bundle(root))
    return attrs.evolve(options, flow_ref=f"{flow_file.relative_to(root).as_posix()}:{attr}",
                        workdir=str(store.root), bundle=digest)


def compile_flow(args: argparse.Namespace) -> list[Any]:
    """The target's artifacts (nothing written yet)."""
    flow, options = compile_options(args)
    return registry.compiler(args.target).compile(flow, options)


def write_artifacts(artifacts: list[Any], out_dir: str) -> list[Path]:
    """Write each artifact atomically under ``out_dir``; scripts get the executable bit."""
    root = Path(out_dir)
    written = []
    for artifact in artifacts:
        path = root / artifact.path
        Store.write_file(path, artifact.content.encode())
        if artifact.content.startswith("#!"):
            path.chmod(0o755)
        written.append(path)
    return written
