"""Steps in containers: each step runs in its image with its own CPU and memory limits.

    docker tag <an image with python and flowkit> flowkit:latest   # or change IMAGE below
    flowkit run examples/docker/flow.py --backend docker

The store and this folder are mounted into each container at the same paths, so a later
`flowkit run examples/docker/flow.py` (local) finds every step cached.
"""

import os
import platform

import flowkit as fk

IMAGE = "flowkit:latest"  # part of each step's cache key: keep it a literal, not read from the environment


@fk.step
def where() -> dict:
    return {"python": platform.python_version(), "in_container": os.path.exists("/.dockerenv")}


@fk.step(resources=fk.Resources(cpu=1, memory="256Mi"))
def squares(n: int) -> list:
    return [i * i for i in range(n)]


@fk.step(env={"GREETING": "hello from a container"})
def summary(info: dict, values: list) -> dict:
    return {**info, "total": sum(values), "greeting": os.environ["GREETING"]}


@fk.flow(name="containers", image=IMAGE)
def containers(n: int = 10):
    return summary(where(), squares(n))
