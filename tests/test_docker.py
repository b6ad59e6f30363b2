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
