"""The ``argo`` target: an Argo Workflows ``Workflow``, ``WorkflowTemplate`` or ``CronWorkflow``.

One DAG template (``main``) with one task per node, and one container template per node that runs
the §7 ``run-step`` command as an exec array (no shell). Flow parameters become
``spec.arguments.parameters`` and reach the steps only through ``{{workflow.parameters.NAME}}``;
the run id is ``{{workflow.name}}``, so ``argo retry`` and ``argo resubmit`` share the store's cache.

Argo substitutes ``{{...}}`` tags in the spec and, for values put in by an earlier pass, again in
later passes (``SubstituteParams`` runs twice; the spec's arguments are substituted too), and it
has no escape for ``{{``. A parameter default Argo cannot carry is written as ``FLOW_DEFAULT``, and
run-step then takes the flow's own default; any other text of the user's holding ``{{`` (a step
name, env value, image or path) is refused here instead of being emitted for Argo to mangle.

A ``.map`` node ``M`` becomes three tasks: ``M-items`` runs run-step ``--items`` and returns the
item indices as its output parameter ``items`` (read from a file); ``M-item`` fans out over them
with ``withParam``, passing ``{{item}}`` as ``--item``, with ``continueOn`` so that a failed item
still lets ``M`` (the gather) run and apply the map's ``min_success_ratio``. ``max_parallel``
becomes ``parallelism`` of a small DAG template ``M-fan`` that holds the fan-out, since a
template's parallelism counts the pods of one invocation and each item is its own invocation.

The steps run in the image's working directory: the image must hold the project at the path the
flow reference names (``/project/flows.py:flow``), or the flow is compiled in its module form
(``package.module:attr``) and installed in the image.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from flowkit.errors import CompileError
from flowkit.authoring.params import FLOW_DEFAULT, cli_text

from flowkit.backends.compilers._checks import refuse_clashing_map_names, refuse_unsupported
from flowkit.backends._command import step_argv
from flowkit.backends.compilers._render import render
from flowkit.backends.base import Artifact
from flowkit.backends.base import CompileOptions

if TYPE_CHECKING:
    from flowkit.graph.nodes import FlowSpec
    from flowkit.graph.nodes import Node
    from flowkit.authoring.params import ParamSpec

SUPPORTED = {"retries", "retry_delay", "timeout", "image", "resources", "env"}
KINDS = {"workflow": "Workflow", "workflow-template": "WorkflowTemplate", "cron-workflow": "CronWorkflow"}
ENTRYPOINT = "main"                       # the DAG template; a node sanitized to this name gets a hash
STORE_VOLUME = "flowkit-store"
RUN_ID = "{{workflow.name}}"
NAME_LIMIT = 63                           # DNS-1123 label: template and task names
CRON_NAME_LIMIT = 52                      # Argo appends a timestamp to a CronWorkflow's workflows
GENERATE_NAME_LIMIT = NAME_LIMIT - 5      # Argo appends 5 random characters to generateName
CRON_PRESETS = {                          # Airflow-style presets as the 5-field cron Argo parses
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
ITEMS_PATH = "/tmp/flowkit-items.json"   # where ``M-items`` writes the item indices, in its container
MAP_SUFFIXES = ("-items", "-item", "-fan")  # the extra tasks and templates of a map node
CONTINUE_ON = {"failed": True, "error": True}  # a failed item is the gather's to judge
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?LW#-]+$")


def k8s_name(raw: str, limit: int = NAME_LIMIT, *, force_hash: bool = False) -> str:
    """A DNS-1123 label made from ``raw``: kept when already valid, else sanitized plus a short hash.

    The hash is of the original text, so ``train_small`` and ``train-small`` never collide.
    """
    base = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-") or "x"
    if not force_hash and base == raw and len(base) <= limit:
        return base
    suffix = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{base[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def unique_names(raws: list[str], reserved: set[str], limits: dict[str, int] | None = None) -> dict[str, str]:
    """Deterministic, clash-free DNS-1123 names for ``raws`` (none equal to a reserved name);
    ``limits``: a shorter length for some, to leave room for a suffix."""
    limits = limits or {}
    names = {raw: k8s_name(raw, limits.get(raw, NAME_LIMIT)) for raw in raws}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    for raw, name in names.items():
        if counts[name] > 1 or name in reserved:
            names[raw] = k8s_name(raw, limits.get(raw, NAME_LIMIT), force_hash=True)
    if len(set(names.values())) != len(names) or reserved & set(names.values()):
        raise CompileError(f"cannot give the nodes {sorted(raws)} distinct Kubernetes names",
                           hint="rename the steps with .options(name=...)")
    return names


def check_text(flow: str, what: str, text: str) -> str:
    """User text that reaches the document: Argo must not read it as a template, YAML must round-trip it."""
    if "{{" in text:
        raise CompileError(
            f"flow {flow!r}: {what} {text!r} contains '{{{{', which Argo reads as a template tag",
            hint="Argo has no escape for '{{' (it substitutes tags in values too): remove it from the text",
        )
    if any(ord(ch) > 0xFFFF for ch in text):
        raise CompileError(
            f"flow {flow!r}: {what} {text!r} contains a character outside Unicode's basic plane",
            hint="Argo's YAML reader rejects the escapes such characters need: use characters up to U+FFFF",
        )
    return text


def argo_can_carry(text: str) -> bool:
    """Whether Argo passes this text through unchanged: no "{{" (a template tag to Argo), nothing
    outside Unicode's basic plane (its YAML reader rejects the escapes), and no control character
    that Go's strconv.Quote would turn into invalid JSON when Argo substitutes it."""
    return "{{" not in text and all(
        ord(ch) <= 0xFFFF and ord(ch) != 0x7F and (ord(ch) >= 0x20 or ch in "\b\f\n\r\t") for ch in text)


def cron_schedule(flow: "FlowSpec") -> str:
    """The flow's schedule as a 5-field cron expression, or a CompileError saying how to fix it."""
    schedule = (flow.schedule or "").strip()
    if not schedule:
        raise CompileError(
            f"flow {flow.name!r} has no schedule, which a CronWorkflow needs",
            hint="give the flow one (@fk.flow(schedule=\"0 3 * * *\") or \"@daily\"), "
                 "or compile with --kind workflow or --kind workflow-template",
        )
    schedule = CRON_PRESETS.get(schedule, schedule)
    fields = schedule.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise CompileError(
            f"flow {flow.name!r}: schedule {flow.schedule!r} is not a cron expression Argo accepts",
            hint="use five fields (minute hour day-of-month month day-of-week) or one of "
                 + ", ".join(sorted(CRON_PRESETS)),
        )
    return " ".join(fields)


def store_mount_path(options: CompileOptions) -> str:
    """``file:///shared/store`` -> ``/shared/store``: where the volume claim is mounted."""
    parsed = urlparse(options.store)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
        raise CompileError(
            f"--volume-claim {options.volume_claim!r} needs a file:// store, got {options.store!r}",
            hint="pass --store file:///path/in/the/volume (or a plain absolute path), or drop --volume-claim",
        )
    return unquote(parsed.path).rstrip("/") or "/"


def quantity_cpu(cpu: float) -> str:
    """CPUs as a Kubernetes quantity: whole numbers as is, fractions in millicores."""
    if cpu == int(cpu):
        return str(int(cpu))
    return f"{max(1, round(cpu * 1000))}m"


def seconds_text(seconds: float) -> str:
    """A Go duration in seconds (``30s``, ``1.5s``) for ``retryStrategy.backoff.duration``."""
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:g}s"


def _dag_task(name: str, after: list[str], template: str | None = None, **more: Any) -> dict[str, Any]:
    """One DAG task; ``more``: ``arguments`` ({name: value}), ``with_param``, ``continue_on``."""
    return {"name": name, "template": template or name, "dependencies": after, "arguments": {}, "with_param": None,
            "continue_on": None, **more}


def _map_parts(node: "Node", step: dict[str, Any], after: list[str], steps: list[dict[str, Any]],
               tasks: list[dict[str, Any]], dags: list[dict[str, Any]]) -> None:
    """A map node's templates and DAG tasks: list the items, fan out over them, gather."""
    assert node.map is not None
    name = step["name"]
    items, item, fan = (name + suffix for suffix in MAP_SUFFIXES)
    quiet = {"retry": None, "deadline": None}   # listing and gathering: the step's retries and timeout are its items'
    steps.append({**step, **quiet, "name": items, "args": [*step["args"], "--items", "--items-to", ITEMS_PATH],
                  "outputs": [{"name": "items", "path": ITEMS_PATH}]})
    steps.append({**step, "name": item, "args": [*step["args"], "--item", "{{inputs.parameters.item}}"],
                  "inputs": ["item"]})
    steps.append({**step, **quiet})
    listed = f"{{{{tasks.{items}.outputs.parameters.items}}}}"
    tasks.append(_dag_task(items, after))
    fan_out = {"arguments": {"item": "{{item}}"}, "continue_on": CONTINUE_ON}
    if node.map.max_parallel is None:
        tasks.append(_dag_task(item, [items], with_param=listed, **fan_out))
    else:
        dags.append({"name": fan, "parallelism": node.map.max_parallel, "inputs": ["items"],
                     "tasks": [_dag_task("item", [], item, with_param="{{inputs.parameters.items}}", **fan_out)]})
        tasks.append(_dag_task(item, [items], fan, arguments={"items": listed}, continue_on=CONTINUE_ON))
    tasks.append(_dag_task(name, [item]))


class ArgoCompiler:
    """Renders one YAML document: ``templates/argo/workflow.yaml.j2``."""

    target = "argo"
    # Of the options only some targets read, the ones this one does (the CLI refuses the others).
    options_used: frozenset[str] = frozenset({"image", "kind", "volume_claim", "python"})

    def compile(self, flow: "FlowSpec", options: CompileOptions) -> list[Artifact]:
        if options.kind not in KINDS:
            raise CompileError(f"flow {flow.name!r}: unknown Argo kind {options.kind!r}",
                               hint=f"choose one of: {', '.join(KINDS)}")
        refuse_unsupported(flow, self.target, SUPPORTED, maps=True)
        graph = flow.graph
        order = graph.order()
        maps = graph.maps()
        longest = max(map(len, MAP_SUFFIXES))
        names = unique_names(order, {ENTRYPOINT}, {node: NAME_LIMIT - longest for node in maps})
        refuse_clashing_map_names(flow, names, maps, MAP_SUFFIXES, "Argo template")
        check_text(flow.name, "the flow name", flow.name)
        for what, text in (("the flow reference", options.flow_ref), ("the store URI", options.store),
                           ("the interpreter", options.python)):
            check_text(flow.name, what, text)

        params = [self._param(flow, spec, options) for spec in flow.params]
        mount = store_mount_path(options) if options.volume_claim else None
        if options.volume_claim:
            check_text(flow.name, "the volume claim", options.volume_claim)
        steps: list[dict[str, Any]] = []
        tasks: list[dict[str, Any]] = []
        dags: list[dict[str, Any]] = []
        for node in order:
            step = self._step(flow, graph.nodes[node], names, params, options, mount)
            after = [names[up] for up in graph.upstream(node)]
            if node in maps:
                _map_parts(graph.nodes[node], step, after, steps, tasks, dags)
            else:
                steps.append(step)
                tasks.append(_dag_task(step["name"], after))

        kind = KINDS[options.kind]
        if kind == "CronWorkflow":
            name = k8s_name(flow.name, CRON_NAME_LIMIT)
        elif kind == "WorkflowTemplate":
            name = k8s_name(flow.name)
        else:
            name = k8s_name(flow.name, GENERATE_NAME_LIMIT - 1)
        content = render(
            "argo/workflow.yaml.j2",
            source=options.source, flow_ref=options.flow_ref, kind=kind, name=name,
            generate_name=f"{name}-" if kind == "Workflow" else None, flow_name=flow.name,
            label=name, schedule=cron_schedule(flow) if kind == "CronWorkflow" else None,
            entrypoint=ENTRYPOINT, params=params, tasks=tasks, steps=steps, dags=dags,
            volume_claim=options.volume_claim, volume_name=STORE_VOLUME, mount_path=mount,
        )
        return [Artifact(f"{name}.yaml", content)]

    @staticmethod
    def _param(flow: "FlowSpec", spec: "ParamSpec", options: CompileOptions) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": spec.name, "description": f"{spec.type}; " + (
            "text as it is" if spec.type == "str" else "a JSON value")}
        if spec.required:
            if options.kind == "cron-workflow":
                raise CompileError(
                    f"flow {flow.name!r}: parameter {spec.name!r} has no default, and a CronWorkflow cannot pass it",
                    hint=f"give {spec.name!r} a default in the flow signature, or compile another --kind",
                )
            entry["value"] = None
        elif argo_can_carry(text := cli_text(spec.type, spec.default)):
            entry["value"] = text
        else:  # run-step then takes the default from the flow itself
            entry["value"] = FLOW_DEFAULT
            entry["description"] += "; left as is, the flow's own default (Argo cannot carry its text)"
        return entry

    @staticmethod
    def _step(flow: "FlowSpec", node: "Node", names: dict[str, str], params: list[dict[str, Any]],
              options: CompileOptions, mount: str | None) -> dict[str, Any]:
        opts = node.step.opts
        where = f"step {node.name!r}"
        check_text(flow.name, "the step name", node.name)
        image = opts.image or flow.image or options.image
        if not image:
            raise CompileError(
                f"flow {flow.name!r}, step {node.name!r}: no image to run it in",
                hint="pass --image IMAGE (an image holding the project and flowkit), "
                     "or set image= on the step or the flow",
            )
        check_text(flow.name, f"the image of {where}", image)
        args = [*step_argv(options, node.name), "--run-id", RUN_ID]
        for param in params:
            args += ["-p", f"{param['name']}={{{{workflow.parameters.{param['name']}}}}}"]
        resources: dict[str, str] = {}
        res = opts.resources
        if res.cpu is not None:
            if res.cpu <= 0:
                raise CompileError(f"flow {flow.name!r}, {where}: option 'resources' asks for cpu={res.cpu!r}",
                                   hint="ask for a positive number of CPUs, or leave cpu unset")
            resources["cpu"] = quantity_cpu(res.cpu)
        if res.memory is not None:
            resources["memory"] = res.memory
        if res.gpu:
            resources["nvidia.com/gpu"] = str(res.gpu)
        env = [{"name": check_text(flow.name, f"an env name of {where}", k),
                "value": check_text(flow.name, f"the env value {k!r} of {where}", v)} for k, v in opts.env]
        retry = None
        if opts.retries:
            retry = {"limit": opts.retries, "backoff": seconds_text(opts.retry_delay) if opts.retry_delay else None}
        return {
            "name": names[node.name], "node": node.name, "image": image, "command": [options.python], "args": args,
            "env": env, "resources": resources, "retry": retry,
            "deadline": math.ceil(opts.timeout) if opts.timeout else None, "inputs": [], "outputs": [],
        }
