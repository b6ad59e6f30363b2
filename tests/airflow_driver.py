"""Run compiled DAGs in a real Airflow (3.x or 2.x) without a scheduler; run with the Airflow venv's python.

    python airflow_driver.py PLAN.json RESULT.json

PLAN is ``{"dags_folder": DIR, "runs": [{"dag_id": ID, "conf": {...}, "remove_before": PATH | null}]}``.
The environment (AIRFLOW_HOME, AIRFLOW__CORE__DAGS_FOLDER = DIR, a migrated database) is the
caller's. RESULT gets ``{"airflow", "import_errors", "dag_ids", "runs": [{"dag_id", "run_id",
"state", "tasks"}]}``, ``tasks`` being the run's task instances as ``[task_id, map_index, state]``
(map_index -1 for an unmapped task); the runs' step outputs are in the flowkit store the DAGs name.
"""

from __future__ import annotations

import json
import os
import sys


def dag_bag(folder: str):
    try:  # Airflow 3: examples are off through AIRFLOW__CORE__LOAD_EXAMPLES=False
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.x
        from airflow.models import DagBag

        return DagBag(folder, include_examples=False)
    return DagBag(folder)


def main(plan_path: str, result_path: str) -> int:
    import airflow

    with open(plan_path) as f:
        plan = json.load(f)
    bag = dag_bag(plan["dags_folder"])
    result = {
        "airflow": airflow.__version__,
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dag_ids": sorted(bag.dag_ids),
        "runs": [],
    }
    if not result["import_errors"]:
        for item in plan["runs"]:
            if item.get("remove_before"):
                os.remove(item["remove_before"])
            # A fresh parse per run, as a worker would do: dag.test() in one process lets a run's
            # conf leak into the DAG's Param objects, and so into the next run's defaults.
            dag = dag_bag(bag.dags[item["dag_id"]].fileloc).dags[item["dag_id"]]
            dagrun = dag.test(run_conf=item.get("conf") or None)
            tasks = sorted([ti.task_id, ti.map_index, str(ti.state)] for ti in dagrun.get_task_instances())
            result["runs"].append({"dag_id": item["dag_id"], "run_id": dagrun.run_id, "state": str(dagrun.state),
                                   "tasks": tasks})
    with open(result_path, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
