"""``flowkit compile``: resolve the options, let the target's compiler render, write the files."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from flowkit.cli.args import add_flow

_TARGETS = ("airflow", "argo", "shell")


def add_parsers(sub: Any) -> None:
    comp = sub.add_parser("compile", help="render the flow for airflow, argo or shell")
    add_flow(comp)
    comp.add_argument("--target", required=True, choices=_TARGETS,
                      help="an Airflow DAG file, an Argo Workflows YAML, or a bash script")
    comp.add_argument("-o", "--output", default=".", metavar="DIR", help="folder for the generated files (default: .)")
    comp.add_argument("--store", metavar="URI", help="the store the steps use (default: this machine's store, absolute)")
    comp.add_argument("--image", metavar="IMAGE", help="default image of steps without one (argo)")
    comp.add_argument("--kind", default="workflow", choices=("workflow", "workflow-template", "cron-workflow"),
                      help="argo: the kind of document")
    comp.add_argument("--volume-claim", metavar="NAME", help="argo: PersistentVolumeClaim mounted at the store path")
    comp.add_argument("--jobs", type=int, default=4, metavar="N", help="shell: default parallel steps")
    comp.add_argument("--python", default="python3", metavar="PATH", help="interpreter in generated commands")
    comp.add_argument("--bundle", action="store_true",
                      help="ship the project's Python files in the store; steps run exactly this code")
    comp.set_defaults(handler=cmd_compile)


def cmd_compile(args: argparse.Namespace) -> int:
    artifacts = compile_flow(args.flow, args.target, store=args.store, image=args.image, kind=args.kind,
                             volume_claim=args.volume_claim, jobs=args.jobs, python=args.python, bundle=args.bundle)
    for path in write_artifacts(artifacts, args.output):
        print(f"wrote {path}")
    return 0


def store_uri(spec: str | None) -> str:
    """A store reference valid from any folder: URIs as given, paths made absolute ``file://``."""
    from flowkit.store import store_path

    if spec and "://" in spec and not spec.startswith("file://"):
        return spec
    return store_path(spec).as_uri()


def compile_flow(source: str, target: str, *, store: str | None = None, image: str | None = None,
                 kind: str = "workflow", volume_claim: str | None = None, jobs: int = 4, python: str = "python3",
                 bundle: bool = False) -> list[Any]:
    """The target's artifacts for the flow ``source`` names (nothing written yet)."""
    from flowkit import registry
    from flowkit.backends.base import CompileOptions, code_digests
    from flowkit.loading import canonical_ref

    flow, ref = canonical_ref(source)
    options = CompileOptions(
        flow_ref=ref, source=source, workdir=os.getcwd(), store=store_uri(store), image=image,
        kind=kind, volume_claim=volume_claim, jobs=jobs, python=python, code_digests=code_digests(flow),
    )
    if bundle:
        options = with_bundle(options)
    return registry.compiler(target).compile(flow, options)


def with_bundle(options: Any) -> Any:
    """Ship the project's Python files in the store; steps import the flow from there."""
    import attrs

    from flowkit.errors import CompileError
    from flowkit.store import Store, store_path
    from flowkit.store.bundle import bundle_root, make_bundle

    path, attr = options.flow_ref.rsplit(":", 1)
    if not path.endswith(".py"):
        raise CompileError(f"--bundle needs FLOW as a file (path/to/flow.py), got {options.source!r}",
                           hint="a module reference already means the code is installed where steps run")
    flow_file, workdir = Path(path), Path(options.workdir)
    root = bundle_root(flow_file, workdir)
    store = Store(store_path(options.store))
    digest = store.objects.put_bytes(make_bundle(root))
    return attrs.evolve(options, flow_ref=f"{flow_file.relative_to(root).as_posix()}:{attr}",
                        workdir=str(store.root), bundle=digest)


def write_artifacts(artifacts: list[Any], out_dir: str) -> list[Path]:
    """Write each artifact atomically under ``out_dir``; executable ones get the executable bit."""
    from flowkit.store.fs import atomic_write

    written = []
    for artifact in artifacts:
        path = Path(out_dir) / artifact.path
        atomic_write(str(path), artifact.content.encode())
        if artifact.executable:
            path.chmod(0o755)
        written.append(path)
    return written
