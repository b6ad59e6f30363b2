"""A notebook on a real Jupyter kernel (nbclient + ipykernel): a helper, a step and a flow defined in
cells, redefined in later cells, run again each time. Notebooks count as much as the command line:
a redefined helper or step re-runs with the new value, an unchanged re-run is all cache hits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is a test dependency: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="nbclient is a test dependency: pip install -e '.[test]'")
pytest.importorskip("ipykernel", reason="ipykernel is a test dependency: pip install -e '.[test]'")

CELLS = [
    "import json, flowkit as fk\nSTORE = {store!r}\n"
    "def show(run):\n"
    "    print(json.dumps({{'result': run.result, 'steps': {{n: o.status for n, o in run.steps.items()}}}}))",
    "def helper(x):\n    return x + 1",
    "@fk.step\ndef compute(x: int) -> int:\n    return helper(x)\n\n"
    "@fk.step\ndef report(value: int) -> str:\n    return f'value={{value}}'\n\n"
    "@fk.flow\ndef nb(x: int = 1):\n    return report(compute(x))",
    "show(nb.run(store=STORE))",
    "def helper(x):\n    return x + 100",
    "show(nb.run(store=STORE))",
    "@fk.step\ndef compute(x: int) -> int:\n    return helper(x) * 2",
    "show(nb.run(store=STORE))",
    "show(nb.run(store=STORE))",
]


def _printed(cell) -> dict:
    text = "".join(out.get("text", "") for out in cell.outputs if out.get("output_type") == "stream")
    return json.loads(text.strip().splitlines()[-1])


def test_redefinitions_in_a_real_kernel_re_run_and_an_unchanged_run_is_cached(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.format(store=store)) for c in CELLS])
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    first, helper_changed, step_changed, unchanged = (_printed(notebook.cells[i]) for i in (3, 5, 7, 8))
    assert first == {"result": "value=2", "steps": {"compute": "ran", "report": "ran"}}
    assert helper_changed == {"result": "value=101", "steps": {"compute": "ran", "report": "ran"}}
    assert step_changed == {"result": "value=202", "steps": {"compute": "ran", "report": "ran"}}
    assert unchanged == {"result": "value=202", "steps": {"compute": "cached", "report": "cached"}}
