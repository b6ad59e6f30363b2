"""Hostile values for the airflow target: quotes, backslashes, shell and Jinja syntax, a newline.

None of it may break the DAG file, reach a shell, or pass through Airflow's template rendering.
"""

import os

import flowkit as fk

HOSTILE = "it's \"quoted\" \\ back\\slash $(touch INJECTED) `touch INJECTED` {{ x }} {% y %}\nnext line"


@fk.step(env={"HOSTILE_ENV": HOSTILE})
def echo(text: str) -> dict:
    return {"text": text, "env": os.environ.get("HOSTILE_ENV")}


@fk.step
def measure(payload: dict) -> dict:
    return {"text": payload["text"], "length": len(payload["text"])}


@fk.flow(name="airflow_hostile")
def hostile(text: str = HOSTILE):
    said = echo.options(name="it's a \"step\" {{ x }}")(text)
    return measure(said)
