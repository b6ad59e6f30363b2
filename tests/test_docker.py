"""The docker backend against a real Docker Engine (CI starts a private dockerd and builds the image)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowkit.errors import FlowkitError
from flowkit.loading import load_flow
from flowkit.store import open_store

from conftest import require_env

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def docker_image(monkeypatch: pytest.MonkeyPatch) -> str:
    """The test image, tagged as the examples expect; containers get no network (CI's dockerd has no bridge)."""
    require_env("DOCKER_HOST", "a running Docker Engine")
    image = require_env("FLOWKIT_TEST_IMAGE", "an image with Python and flowkit")
    import docker

    docker.from_env().images.get(image).tag("flowkit", "latest")
    monkeypatch.setenv("FLOWKIT_DOCKER_NETWORK", "none")
    return "flowkit:latest"


def _flow_file(tmp_path: Path, source: str, name: str) -> object:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return load_flow(str(path))


def _containers(run_id: str) -> list:
    import docker

    return docker.from_env().containers.list(all=True, filters={"label": f"flowkit.run={run_id}"})


def test_the_docker_example_runs_in_containers_and_shares_the_cache(docker_image: str, store: Path) -> None:
    flow = load_flow(str(REPO / "examples" / "docker" / "flow.py"))
    run = flow.run(store=store, backend="docker", workers=2)
    assert run.status == "succeeded", {n: o.error for n, o in run.steps.items()}
    assert run.result["in_container"] is True and run.result["greeting"] == "hello from a container"
    assert run.result["total"] == sum(i * i for i in range(10))
    assert not _containers(run.id)  # removed afterwards
    again = flow.run(store=store, backend="docker")
    assert {o.status for o in again.steps.values()} == {"cached"}
    local = flow.run(store=store)  # the same cache from this process
    assert {o.status for o in local.steps.values()} == {"cached"} and local.result == run.result


def test_resources_become_container_limits(docker_image: str, store: Path, tmp_path: Path) -> None:
    flow = _flow_file(tmp_path, '''
        import flowkit as fk

        def read(*paths):
            for path in paths:
                try:
                    return open(path).read().strip()
                except OSError:
                    pass
            return None

        @fk.step(resources=fk.Resources(cpu=0.5, memory="256Mi"))
        def limits() -> dict:
            return {"memory": read("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
                    "cpu": read("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")}

        @fk.flow(image="flowkit:latest")
        def limited():
            return limits()
    ''', "limited")
    run = flow.run(store=store, backend="docker")
    assert run.status == "succeeded", run.steps["limits"].error
    assert run.result["memory"] == str(256 * 2**20)
    assert run.result["cpu"].split()[0] == "50000"  # half of the 100000 us period


def test_failures_and_timeouts_in_containers(docker_image: str, store: Path, tmp_path: Path) -> None:
    flow = _flow_file(tmp_path, '''
        import time
        import flowkit as fk

        @fk.step
        def boom() -> int:
            raise ValueError("broken in a container")

        @fk.step(timeout=1)
        def stuck() -> int:
            time.sleep(60)
            return 1

        @fk.flow(image="flowkit:latest")
        def faulty():
            return boom(), stuck()
    ''', "faulty")
    run = flow.run(store=store, backend="docker", workers=2)
    assert run.status == "failed"
    assert run.steps["boom"].error == "ValueError: broken in a container"
    assert 'raise ValueError("broken in a container")' in run.steps["boom"].traceback
    assert run.steps["stuck"].error.startswith("timed out after 1s")
    assert not _containers(run.id)


def test_without_a_daemon_the_error_says_how_to_point_at_one(store: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    flow = load_flow(str(REPO / "examples" / "docker" / "flow.py"))
    with pytest.raises(FlowkitError) as info:
        flow.run(store=store, backend="docker")
    assert "cannot reach a Docker daemon at unix://" in str(info.value)
    assert "DOCKER_HOST" in info.value.hint


def test_a_corrupt_upstream_object_is_made_again_in_its_container(docker_image: str, store: Path,
                                                                    tmp_path: Path) -> None:
    flow = _flow_file(tmp_path, '''
        import flowkit as fk

        @fk.step
        def make() -> list:
            return list(range(5000))

        @fk.step
        def total(xs: list) -> int:
            return sum(xs)

        @fk.flow(image="flowkit:latest")
        def remade():
            return total(make())
    ''', "remade")
    first = flow.run(store=store, backend="docker")
    path = store / "objects" / first.steps["make"].output.object[:2] / first.steps["make"].output.object
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    run = flow.run(store=store, backend="docker", force_steps=["total"])
    assert run.status == "succeeded" and run.result == sum(range(5000))
    assert (run.steps["make"].status, run.steps["total"].status) == ("ran", "ran")


def test_a_missing_image_fails_that_step_with_the_reason(docker_image: str, store: Path, tmp_path: Path) -> None:
    flow = _flow_file(tmp_path, '''
        import flowkit as fk

        @fk.step(image="flowkit-test-no-such-image:0")
        def lost() -> int:
            return 1

        @fk.step
        def fine() -> int:
            return 2

        @fk.flow(image="flowkit:latest")
        def partly():
            return lost(), fine()
    ''', "partly")
    run = flow.run(store=store, backend="docker", workers=2)
    assert run.status == "failed"
    assert run.steps["fine"].status == "ran"
    assert run.steps["lost"].error.startswith("cannot start a container of image 'flowkit-test-no-such-image:0'")


def test_what_a_step_printed_in_its_container_is_read_back_with_flowkit_logs(docker_image: str, store: Path,
                                                                            tmp_path: Path) -> None:
    flow = _flow_file(tmp_path, '''
        import sys
        import flowkit as fk

        @fk.step
        def talk() -> int:
            print("hello from a container")
            print("and its stderr", file=sys.stderr)
            return 1

        @fk.flow(image="flowkit:latest")
        def talking():
            return talk()
    ''', "talking")
    run = flow.run(store=store, backend="docker")
    assert run.status == "succeeded", {n: o.error for n, o in run.steps.items()}
    log = open_store(store, create=False).logs.read(run.id, "talk")
    assert log is not None and log.complete and log.text == "hello from a container\nand its stderr\n"


MAPPED = '''
    import os
    import flowkit as fk

    @fk.step
    def split(n: int) -> list:
        return [i * 10 for i in range(n)]

    @fk.step
    def square(x: int) -> int:
        return x * x

    @fk.step
    def probe(x: int) -> dict:
        return {"value": x + 1, "in_container": os.path.exists("/.dockerenv")}

    @fk.step
    def total(xs: list) -> int:
        return sum(x["value"] if isinstance(x, dict) else x for x in xs)

    @fk.step
    def fragile(x: int, flag: str = "") -> int:
        if x == 2 and os.path.exists(flag):
            raise ValueError(f"item {x} is bad")
        return x * 100

    @fk.flow(image="flowkit:latest")
    def chained(n: int = 3):
        return total(probe.map(square.map(split(n))))

    @fk.flow(image="flowkit:latest")
    def over_param(xs: list = [1, 2, 4]):
        return total(square.options(max_parallel=2).map(xs))

    @fk.flow(image="flowkit:latest")
    def strict(xs: list = [1, 2, 3], flag: str = ""):
        return total(fragile.map(xs, flag=flag))

    @fk.flow(image="flowkit:latest")
    def tolerant(xs: list = [1, 2, 3], flag: str = ""):
        return total(fragile.options(min_success_ratio=0.6).map(xs, flag=flag))
'''


def _ran(run, prefix: str) -> list[str]:
    return [name for name, o in run.steps.items() if name.startswith(prefix + "[") and o.status == "ran"]


def test_a_map_runs_each_item_in_a_container_keyed_by_its_content(docker_image: str, store: Path,
                                                                  tmp_path: Path) -> None:
    path = tmp_path / "mapped.py"
    path.write_text(textwrap.dedent(MAPPED))
    chained = load_flow(f"{path}:chained")
    run = chained.run(n=3, store=store, backend="docker", workers=2)
    assert run.status == "succeeded", {n: o.error for n, o in run.steps.items()}
    assert run.result == sum((i * 10) ** 2 + 1 for i in range(3))
    assert _ran(run, "square") == ["square[0]", "square[1]", "square[2]"] and run.steps["probe"].status == "ran"
    assert all(run.output(f"probe[{i}]")["in_container"] for i in range(3))  # each item in its own container
    assert not _containers(run.id)
    local = chained.run(n=3, store=store)  # the same cache from this process
    assert {o.status for o in local.steps.values()} == {"cached"} and local.result == run.result

    over_param = load_flow(f"{path}:over_param")
    first = over_param.run(xs=[1, 2, 4], store=store, backend="docker", workers=2)
    assert first.status == "succeeded" and first.result == 1 + 4 + 16
    inserted = over_param.run(xs=[1, 2, 3, 4], store=store, backend="docker", workers=2)
    assert inserted.result == 1 + 4 + 9 + 16
    assert _ran(inserted, "square") == ["square[2]"]  # only the new item got a container


def test_a_failing_item_in_a_container_fails_the_map_unless_tolerated(docker_image: str, store: Path,
                                                                      tmp_path: Path) -> None:
    path = tmp_path / "mapped.py"
    path.write_text(textwrap.dedent(MAPPED))
    flag = tmp_path / "broken"
    flag.write_text("")
    strict = load_flow(f"{path}:strict")
    failed = strict.run(flag=str(flag), store=store, backend="docker", workers=2)
    assert failed.status == "failed"
    assert failed.steps["fragile[1]"].error == "ValueError: item 2 is bad"
    assert "fragile[1]" in failed.steps["fragile"].error and failed.steps["total"].status == "skipped"
    tolerant = load_flow(f"{path}:tolerant").run(flag=str(flag), store=store, backend="docker")
    assert tolerant.status == "succeeded" and tolerant.output("fragile") == [100, 300]
    assert tolerant.steps["fragile[1]"].status == "failed"
    flag.unlink()
    resumed = strict.run(flag=str(flag), store=store, backend="docker", workers=2)
    assert resumed.status == "succeeded" and resumed.result == 600
    assert _ran(resumed, "fragile") == ["fragile[1]"]  # the others are cached
    assert not _containers(resumed.id)


def test_an_item_that_must_run_is_a_container_running_run_step_with_its_index(store: Path, tmp_path: Path) -> None:
    """Without a daemon: the host expands the map, and an item's container command names the map
    step and the item's index, which run-step expands the same way in the container."""
    from flowkit.backends.runners.docker import DockerLauncher
    from flowkit.execution import mapping
    from flowkit.execution.runtime import RunContext

    path = tmp_path / "mapped.py"
    path.write_text(textwrap.dedent(MAPPED))
    flow = load_flow(f"{path}:over_param")
    ctx = RunContext(flow, flow.resolve_params({}), open_store(store), "r1")
    mapping.expand(ctx, flow.graph.nodes["square"], {})
    launcher = DockerLauncher.__new__(DockerLauncher)  # no client: only the spec is built
    launcher.flow_ref, launcher.mounts = f"{path}:over_param", {}
    command = launcher.container_spec(ctx, "square[2]")["command"]
    assert command[:8] == ["python", "-m", "flowkit", "run-step", f"--flow={path}:over_param", "--step=square",
                           "--store", str(ctx.store.root)]
    assert command[8:] == ["--item=2", "--run-id", "r1", "-p", "xs=[1, 2, 4]"]
