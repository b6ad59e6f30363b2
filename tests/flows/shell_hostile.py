"""Values that try to break out of generated shell code: each must reach its step unchanged."""

import os

import flowkit as fk

HOSTILE = "it's \"q\" \\ $(touch INJECTED) `touch INJECTED` ${HOME} {{ x }} {% y %}\nline 2 \\"


@fk.step
def echo(text: str) -> str:
    return text


@fk.step(env={"HOSTILE_ENV": HOSTILE})
def from_env() -> str:
    return os.environ["HOSTILE_ENV"]


@fk.step
def keep(data: dict) -> dict:
    return data


@fk.flow(name="hostile 'flow' $(touch INJECTED)")
def hostile(text: str = HOSTILE, data: dict = {"k": HOSTILE}):  # noqa: B006 - a JSON default, never mutated
    return {"text": echo.options(name="it's a \"step\"")(text), "env": from_env(), "data": keep(data)}
