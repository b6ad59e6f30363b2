"""``flowkit compile``: resolve the options, let the target's compiler render, write the files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from flowkit.cli.args import add_flow
from flowkit.errors import UsageError

_TARGETS = ("airflow", "argo", "shell")
# The options only some targets read (each compiler lists its own in ``options_used``), by flag.
_TARGET_FLAGS = {"image": "--image", "kind": "--kind", "volume_claim": "--volume-claim", "jobs": "--jobs",
                 "python": "--python"}


def add_parsers(sub: Any) -> None:
    comp = sub.add_parser("compile", help="render the flow for airflow, argo or shell")
    add_flow(comp)
    comp.add_argument("--target", required=True, choices=_TARGETS,
                      help="an Airflow DAG file, an Argo Workflows YAML, or a bash script")
    comp.add_argument("-o", "--output", default=".", metavar="DIR", help="folder for the generated files (default: .)")
    comp.add_argument("--store", metavar="URI", help="the store the steps use (default: this machine's store, absolute)")
    comp.add_argument("--image", metavar="IMAGE", help="argo: default image of steps without one")
    comp.add_argument("--kind", choices=("workflow", "workflow-template", "cron-workflow"),
                      help="argo: the kind of document (default: workflow)")
    comp.add_argument("--volume-claim", metavar="NAME", help="argo: PersistentVolumeClaim mounted at the store path")
    comp.add_argument("--jobs", type=int, metavar="N", help="shell: default parallel steps (default: 4)")
    comp.add_argument("--python", metavar="PATH",
                      help="argo, shell: the steps' interpreter (default: python3 in the image; for shell, this Python)")
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
                 kind: str | None = None, volume_claim: str | None = None, jobs: int | None = None,
                 python: str | None = None, bundle: bool = False) -> list[Any]:
    """The target's artifacts for the flow ``source`` names (nothing written yet).

    An option the target does not read is refused (passing it means the user expects an effect
    it would not have); options left out (None) take the target's defaults."""
    from flowkit import registry
    from flowkit.backends.base import CompileOptions, code_digests
    from flowkit.loading import canonical_ref

    compiler = registry.compiler(target)
    refuse_unused(target, compiler, {"image": image, "kind": kind, "volume_claim": volume_claim, "jobs": jobs,
                                     "python": python})
    check_jobs(jobs)
    flow, ref = canonical_ref(source)
    options = CompileOptions(
        flow_ref=ref, source=source, workdir=os.getcwd(), store=store_uri(store), image=image,
        kind=kind or "workflow", volume_claim=volume_claim, jobs=4 if jobs is None else jobs,
        python=steps_python(target, python), code_digests=code_digests(flow),
    )
    if bundle:
        options = with_bundle(options)
    return compiler.compile(flow, options)


def refuse_unused(target: str, compiler: Any, given: dict[str, Any]) -> None:
    """UsageError for the first given option that ``target`` does not read, naming the targets that do."""
    from flowkit import registry

    for option, value in given.items():
        if value is None or option in compiler.options_used:
            continue
        users = [name for name in registry.COMPILERS if option in registry.compiler(name).options_used]
        flag = _TARGET_FLAGS[option]
        raise UsageError(f"{flag} is not used by the {target} target (only by {', '.join(users) or 'no target'})",
                         hint=f"drop {flag}, or compile with --target {users[0]}" if users else f"drop {flag}")


def check_jobs(jobs: int | None) -> None:
    """A script whose default is 0 steps at once would refuse every run: say so at compile time."""
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise UsageError(f"--jobs must be a whole number of at least 1, got {jobs!r}",
                         hint="it is the script's default number of steps at once; the script's own --jobs overrides it")


def steps_python(target: str, python: str | None) -> str:
    """The interpreter the generated commands run. A shell script runs on this machine (or one
    like it), so by default it records this interpreter, as an absolute path (symlinks kept: a
    virtualenv's python is a symlink), to find a Python that has flowkit without an active venv;
    a container's is ``python3``."""
    if python is None:
        return os.path.abspath(sys.executable) if target == "shell" and sys.executable else "python3"
    if target == "shell" and "/" in python and not os.path.isabs(python):
        return os.path.abspath(python)  # relative to where compile ran, as the user meant it
    return python


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
