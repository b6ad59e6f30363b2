"""The ``airflow`` target: one DAG file per flow, loadable by Airflow 3 and by Airflow 2.x.

Each task calls one small function in the generated file that runs ``python -m flowkit run-step``
as a subprocess (no shell), with Airflow's run id and the DAG run's parameters. User values
(parameter defaults, node names, the FLOW string) only ever appear as Python literals through
``pyrepr``, and never in an operator's templated fields, so Airflow's Jinja rendering never
sees them.

A ``.map`` node ``M`` becomes three tasks: ``M__items`` lists the item indices (its return value
goes to XCom), ``M__item`` is mapped over them with ``expand()`` (one task instance per item,
``max_active_tis_per_dagrun`` from ``max_parallel``), and ``M`` gathers them with trigger rule
``all_done``, so the map's ``min_success_ratio`` decides, not Airflow. The mapped task's
``op_kwargs`` (templated) hold only the item index, an int from XCom: still no user text.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from flowkit.errors import CompileError

from flowkit.backends.compilers._checks import no_container_hints, refuse_clashing_map_names, refuse_unsupported
from flowkit.backends._command import step_argv
from flowkit.backends.compilers._render import render
from flowkit.backends.base import Artifact

if TYPE_CHECKING:
    from flowkit.graph.nodes import FlowSpec
    from flowkit.authoring.params import ParamSpec

    from flowkit.backends.base import CompileOptions

SUPPORTED = {"retries", "retry_delay", "timeout", "env"}
HINTS = no_container_hints('the airflow target', "the Airflow worker's Python")
# Airflow's Param types (JSON schema) for flowkit's parameter types; "any" stays untyped.
PARAM_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean", "list": "array",
               "dict": "object"}
_NOT_TASK_ID = re.compile(r"[^A-Za-z0-9_.-]+")
_NOT_FILE_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_ID = 200  # Airflow allows 250; room for a "-N" suffix and a map's "__items"
ITEMS_SUFFIX, ITEM_SUFFIX = "__items", "__item"


def task_ids(names: list[str]) -> dict[str, str]:
    """Node name -> Airflow task_id: valid names kept, others sanitized, clashes numbered.

    Valid names are claimed first, so a node whose name is already a valid task_id never moves.
    """
    ids: dict[str, str] = {name: name for name in names if _valid_id(name)}
    taken = set(ids.values())
    for name in names:
        if name in ids:
            continue
        base = _NOT_TASK_ID.sub("_", name)[:_MAX_ID].strip(".") or "step"
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        ids[name] = candidate
        taken.add(candidate)
    return {name: ids[name] for name in names}


def _valid_id(name: str) -> bool:
    return bool(name) and len(name) <= _MAX_ID and not _NOT_TASK_ID.search(name) and name.strip(".") == name


def dag_file_name(flow_name: str) -> str:
    """``<flow name sanitized>.py``: a plain module name, since Airflow imports the file."""
    return (_NOT_FILE_NAME.sub("_", flow_name)[:_MAX_ID] or "flow") + ".py"


def _param(spec: "ParamSpec") -> dict[str, Any]:
    """What the template needs for one DAG param; defaults as JSON values (a tuple default is a list)."""
    out: dict[str, Any] = {"name": spec.name, "type": PARAM_TYPES.get(spec.type), "required": spec.required,
                           "text": spec.type == "str"}
    if not spec.required:
        out["default"] = json.loads(json.dumps(spec.default))
    return out


def _refuse_scheduled_required_params(flow: "FlowSpec") -> None:
    """Airflow rejects a scheduled DAG with a param that has no default: say so at compile time."""
    required = [spec.name for spec in flow.params if spec.required]
    if flow.schedule is not None and required:
        raise CompileError(
            f"flow {flow.name!r}: parameter {required[0]!r} has no default, but the flow has schedule "
            f"{flow.schedule!r}; Airflow cannot start a scheduled run without it",
            hint=f"give {required[0]!r} a default, or remove the schedule",
        )


def _task(task_id: str, node: str, argv: list[str], kind: str) -> dict[str, Any]:
    """One task: ``kind`` is "step", or for a map "items" (list them), "item" (mapped), "gather"."""
    return {"id": task_id, "node": node, "argv": argv, "kind": kind}


def _map_tasks(name: str, task_id: str, options: "CompileOptions", tasks: list[dict[str, Any]],
               edges: list[tuple[str, str]]) -> str:
    """Append a map's three tasks and their two edges; return the task its upstream edges point to."""
    argv = step_argv(options, name)
    items, item = task_id + ITEMS_SUFFIX, task_id + ITEM_SUFFIX
    tasks += [_task(items, name, [*argv, "--items"], "items"), {**_task(item, name, argv, "item"), "over": items},
              _task(task_id, name, argv, "gather")]
    edges += [(items, item), (item, task_id)]
    return items


class AirflowCompiler:
    """Renders ``templates/airflow/dag.py.j2``; pure: returns one Artifact."""

    target = "airflow"
    # Of the options only some targets read: none (a task runs on the Airflow worker's own Python).
    options_used: frozenset[str] = frozenset()

    def compile(self, flow: "FlowSpec", options: "CompileOptions") -> list[Artifact]:
        refuse_unsupported(flow, self.target, SUPPORTED, HINTS, maps=True)
        _refuse_scheduled_required_params(flow)
        graph = flow.graph
        order = graph.order()
        ids = task_ids(order)
        maps = graph.maps()
        refuse_clashing_map_names(flow, ids, maps, (ITEMS_SUFFIX, ITEM_SUFFIX), "airflow task")
        tasks: list[dict[str, Any]] = []
        edges: list[tuple[str, str]] = []
        for name in order:
            if name in maps:
                head = _map_tasks(name, ids[name], options, tasks, edges)
            else:
                head = ids[name]
                tasks.append(_task(head, name, step_argv(options, name), "step"))
            edges += [(ids[up], head) for up in graph.upstream(name)]
        for task in tasks:
            opts = graph.nodes[task["node"]].step.opts
            own = task["kind"] in ("step", "item")  # listing and gathering: no retries, no timeout of the step's
            task.update(env=dict(sorted(opts.env)), retries=opts.retries if own else 0,
                        retry_delay=opts.retry_delay if own else 0.0, timeout=opts.timeout if own else None,
                        max_parallel=opts.max_parallel)
        content = render(
            "airflow/dag.py.j2",
            source=options.source,
            dag_id=_NOT_TASK_ID.sub("_", flow.name)[:_MAX_ID] or "flow",
            flow_name=flow.name,
            schedule=flow.schedule,
            workdir=options.workdir,
            params=[_param(spec) for spec in flow.params],
            tasks=tasks,
            edges=edges,
            maps=bool(maps),
        )
        return [Artifact(dag_file_name(flow.name), content)]
