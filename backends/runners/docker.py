"""The ``docker`` backend: each step that must run is a container running ``run-step`` (SPEC §7).

A ``.map`` expands here, in the host, as on every backend (``scheduler``); each of its items that
must run is a container running ``run-step --item N``, and the gather reads their records here.

The container gets the step's image (or the flow's, or ``$FLOWKIT_IMAGE``), its CPU, memory and
GPU limits, its env, and the project and the store mounted at the same paths as on the host, so
the flow reference and the store URI mean the same thing inside. It records its own outcome in
the store; this process waits, streams its logs with the step's name, reads the outcome, and
removes the container, on Ctrl-C too.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from flowkit.authoring.params import cli_text
from flowkit.errors import BackendError, CorruptObject, MissingInput
from flowkit.execution.mapping import item_index
from flowkit.execution.run import RunReport
from flowkit.execution.runtime import NodeOutcome, RunContext
from flowkit.execution.verdict import Decision
from flowkit.store.objects import StoredOutput

from flowkit.backends._command import run_step_argv
from flowkit.backends.runners.scheduler import run_nodes

_LOG_LOCK = threading.Lock()


def docker_client() -> Any:
    """A connected Docker client, or a FlowkitError saying how to reach a daemon."""
    try:
        import docker
    except ImportError:  # pragma: no cover - docker is a core dependency
        raise BackendError("the docker backend needs the 'docker' package", hint="pip install docker") from None
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - the SDK raises many types for an absent daemon
        where = os.environ.get("DOCKER_HOST", "the default socket /var/run/docker.sock")
        raise BackendError(f"cannot reach a Docker daemon at {where}: {exc}",
                           hint="start dockerd, or point DOCKER_HOST at its socket: export DOCKER_HOST=unix:///path/docker.sock") from None
    return client


def flow_reference(ctx: RunContext) -> str:
    """``/abs/file.py:attr`` for the running flow, which the container imports."""
    module = sys.modules.get(ctx.flow.fn.__module__)
    path = getattr(module, "__file__", None)
    attr = next((name for name, value in vars(module).items() if value is ctx.flow), None) if module else None
    if not path or attr is None:
        raise BackendError(f"flow {ctx.flow.name!r}: the docker backend runs flows defined at the top level of a file",
                           hint="move the @flow function to module level in a .py file")
    return f"{Path(path).resolve()}:{attr}"


def param_args(ctx: RunContext) -> list[str]:
    """``-p NAME=VALUE`` for run-step: str parameters as text, the rest as JSON."""
    types = {spec.name: spec.type for spec in ctx.flow.params}
    args: list[str] = []
    for name, value in sorted(ctx.params.items()):
        args += ["-p", f"{name}={cli_text(types[name], value)}"]
    return args


class DockerJob:
    """One container; ``sentinel`` turns readable when it has exited."""

    def __init__(self, client: Any, ctx: RunContext, name: str, spec: dict[str, Any],
                 outputs: dict[str, StoredOutput]) -> None:
        self.name = name
        self._ctx = ctx
        self._inputs = {up: outputs[up] for up in ctx.node(name).inputs()}
        self._read, self._write = os.pipe()
        self.sentinel = self._read
        self.exit_code: int | None = None
        self._tail: list[str] = []
        try:
            self.container = client.containers.run(detach=True, **spec)
        except Exception as exc:  # noqa: BLE001 - the SDK's errors: no such image, bad option, refused
            self.container = None
            self._tail = [f"cannot start a container of image {spec['image']!r}: {_short(exc)}"]
            os.write(self._write, b"x")
            return
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        try:
            for line in self.container.logs(stream=True, follow=True):
                text = line.decode(errors="replace").rstrip("\n")
                self._tail = (self._tail + [text])[-20:]
                with _LOG_LOCK:
                    print(f"[{self.name}] {text}", file=sys.stderr, flush=True)
            self.exit_code = int(self.container.wait().get("StatusCode", 1))
        except Exception as exc:  # noqa: BLE001 - a vanished container ends the job as failed
            self._tail.append(f"lost the container: {exc}")
            self.exit_code = -1
        finally:
            os.write(self._write, b"x")

    def result(self) -> NodeOutcome:
        os.close(self._read)
        os.close(self._write)
        self._remove()
        if self.container is None:
            return NodeOutcome(self.name, "failed", error=self._tail[0])
        record = self._ctx.store.read_node(self._ctx.run_id, self.name)
        if record is not None and self.exit_code in (0, 1):
            return NodeOutcome.from_record(record)
        if self.exit_code == 3:  # run-step's "missing upstream output": find which, to make it again
            self._check_inputs()
        detail = "\n".join(self._tail[-5:])
        return NodeOutcome(self.name, "failed", error=f"container exited with code {self.exit_code}: {detail}")

    def _check_inputs(self) -> None:
        """MissingInput naming the first upstream output that no longer loads."""
        for up, output in self._inputs.items():
            try:
                self._ctx.store.objects.load(output)
            except CorruptObject as exc:
                raise MissingInput(up, str(exc)) from None

    def kill(self) -> None:
        self._remove()

    def _remove(self) -> None:
        if self.container is None:
            return
        try:
            self.container.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


class DockerLauncher:
    records = True  # run-step records the outcome in the store itself
    reads_records = True  # and reads this run's upstream records from it

    def __init__(self, ctx: RunContext) -> None:
        self.client = docker_client()
        self.flow_ref = flow_reference(ctx)
        self.mounts = _mounts([Path(self.flow_ref.rsplit(":", 1)[0]).parent, Path.cwd(), ctx.store.root])

    def start(self, ctx: RunContext, name: str, outputs: dict[str, StoredOutput], decision: Decision) -> DockerJob:
        spec = self.container_spec(ctx, name)
        if ctx.forced(name):
            spec["command"].append("--force")
        return DockerJob(self.client, ctx, name, spec, outputs)

    def container_spec(self, ctx: RunContext, name: str) -> dict[str, Any]:
        """Everything ``containers.run`` needs for one step."""
        from docker.types import DeviceRequest

        node = ctx.node(name)  # an item of a .map, too
        opts = node.step.opts
        image = opts.image or ctx.flow.image or os.environ.get("FLOWKIT_IMAGE")
        if not image:
            raise BackendError(f"flow {ctx.flow.name!r}, step {name!r}: no image to run it in",
                               hint="set image= on the step or the flow, or export FLOWKIT_IMAGE")
        step, item = (name, None) if node.item_of is None else (node.item_of, item_index(name, node.item_of))
        command = ["python", *run_step_argv(self.flow_ref, step, str(ctx.store.root), item=item),
                   "--run-id", ctx.run_id, *param_args(ctx)]
        spec: dict[str, Any] = {
            "image": image, "command": command, "working_dir": os.getcwd(), "volumes": self.mounts,
            "environment": {**dict(opts.env), "PYTHONUNBUFFERED": "1"},
            "user": f"{os.getuid()}:{os.getgid()}", "labels": {"flowkit.run": ctx.run_id, "flowkit.step": name},
        }
        if os.environ.get("FLOWKIT_DOCKER_NETWORK"):
            spec["network_mode"] = os.environ["FLOWKIT_DOCKER_NETWORK"]
        if opts.resources.cpu:
            spec["nano_cpus"] = int(opts.resources.cpu * 1e9)
        if opts.resources.memory:
            spec["mem_limit"] = opts.resources.memory_bytes()
        if opts.resources.gpu:
            spec["device_requests"] = [DeviceRequest(count=opts.resources.gpu, capabilities=[["gpu"]])]
        return spec


def _short(exc: Exception) -> str:
    """The daemon's own words, without the SDK's request line."""
    return str(getattr(exc, "explanation", None) or exc)


def _mounts(paths: list[Path]) -> dict[str, dict[str, str]]:
    """Each folder at the same path inside; the store read-write, the rest too (steps may write files)."""
    resolved = sorted({str(p.resolve()) for p in paths})
    outer = [p for p in resolved if not any(p != q and p.startswith(q + os.sep) for q in resolved)]
    return {path: {"bind": path, "mode": "rw"} for path in outer}


class DockerRunner:
    """Up to ``workers`` containers at once (default: the number of cores)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1

    def run(self, ctx: RunContext) -> RunReport:
        return run_nodes(ctx, DockerLauncher(ctx), self.workers)
