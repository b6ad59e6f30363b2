"""Hostile text for the argo target: quotes, backslashes, $(), backticks, Jinja, a newline.

Argo reads ``{{`` as a template tag everywhere (values included) and has no escape for it, so a
default holding ``{{`` is compiled as the flow's own default (see backends/argo.py); a value
passed at submission may hold ``{{ x }}``, which Argo leaves alone as no variable has that name.
"""

import flowkit as fk

HOSTILE = ("it's \"quoted\" \\ back\\\\slash $(touch INJECTED) `touch INJECTED` {{ x }} {{workflow.name}} {% y %} }} ;"
           " rm -rf x\nline two")


@fk.step
def echo(text: str, n: int) -> dict:
    return {"text": text, "n": n}


@fk.flow(name="argo hostile \"flow\"")
def hostile(text: str = HOSTILE, n: int = 1):
    return echo.options(name="it's a step")(text, n)
