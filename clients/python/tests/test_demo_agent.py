"""The demo stack's Python agent (compose/demo.yaml ``retriever-agent``:
clients/python/examples/agent.py on Debian's python3 and python3-redis, the
image scripts/build-python-agent-image.sh builds) under the real muster on
the real Docker engine: ``muster up retriever-agent`` returns once muster's
``agent`` probe sees its ready signal, its Docker healthcheck (``python3 -m
muster_signal check``) turns healthy, and ``docker stop`` makes it mark
itself not ready with its reason.

Why it exists: the example agent is what users copy; this proves the file as
shipped (its ACL users from config/redis.conf, its environment, its probes)
works, not only the client library. Its compose project has a name of its
own, and everything Docker holds under it is removed afterwards, also when
the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import REPO, compose_default, free_port, wait_until

IMAGE = "muster-test/python-agent:1"


def docker(*args: str, timeout: float = 60) -> str:
    out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    return out.stdout.strip()


def remove_project(project: str) -> None:
    label = f"label=com.docker.compose.project={project}"
    for ls, rm in (
        (["ps", "-aq", "--filter", label], ["rm", "-f", "-v"]),
        (["network", "ls", "-q", "--filter", label], ["network", "rm"]),
        (["volume", "ls", "-q", "--filter", label], ["volume", "rm", "-f"]),
    ):
        ids = docker(*ls).split()
        if ids:
            docker(*rm, *ids)


@pytest.fixture(scope="module")
def agent_image() -> str:
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True).returncode
    ):
        pytest.fail("no Docker engine: run scripts/setup.sh")
    for image in ("muster-test/redis:1", "muster-test/nats:1"):
        if not docker("image", "ls", "-q", image):
            pytest.fail(f"{image} missing: run scripts/build-test-images.sh")
    build = subprocess.run(
        ["bash", "scripts/build-python-agent-image.sh", IMAGE],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, f"building {IMAGE} failed:\n{build.stdout}\n{build.stderr}"
    return IMAGE


@pytest.fixture
def project() -> Iterator[str]:
    name = f"mtpy{os.getpid()}demo"
    remove_project(name)
    yield name
    remove_project(name)


def test_demo_python_agent_under_muster(agent_image: str, project: str, muster_bin: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="muster-pytest-demo-"))
    redis_port = free_port()
    muster_pw = compose_default("demo.yaml", "MUSTER_REDIS_PASSWORD")
    url = f"redis://muster:{muster_pw}@127.0.0.1:{redis_port}"
    env = {
        **os.environ,
        "DEMO_REDIS_PORT": str(redis_port),
        "DEMO_NATS_PORT": str(free_port()),
        "PYTHON_AGENT_IMAGE": agent_image,
        "MUSTER_REDIS_URL": url,
        "MUSTER_NAMESPACE": "muster",
        "MUSTER_PROBE_ADDRESS": "host",  # muster runs on the host: published ports
        "MUSTER_STATE_FILE": str(work / "state.json"),
    }
    muster = [str(muster_bin), "-f", str(REPO / "compose" / "demo.yaml"), "-p", project]
    try:
        up = subprocess.run(
            [*muster, "--json", "up", "--wait-timeout", "4m", "retriever-agent"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert up.returncode == 0, f"muster up failed:\n{up.stdout}\n{up.stderr}"

        # muster's view (up's last JSON line): ready by the agent probe, i.e.
        # on the agent's own signal, as its dependencies by theirs.
        summary = json.loads(up.stdout.strip().splitlines()[-1])
        states = {s["service"]: s for s in summary["services"]}
        assert set(states) == {"redis", "nats", "retriever-agent"}, states
        assert all(s["state"] == "ready" for s in states.values()), states
        assert states["retriever-agent"]["reason"].startswith("ready {"), states
        assert "startup_time" in states["retriever-agent"]["reason"]  # the agent's meta

        # What the agent wrote: the seed-style meta, from inside its container.
        r = redis.Redis.from_url(url, socket_timeout=5)
        value = json.loads(r.get("muster:ready:retriever-agent") or b"{}")
        assert value["status"] == "ready", value
        assert set(value["meta"]) == {"port", "health_port", "startup_time"}
        assert value["meta"]["startup_time"] >= 4  # --startup 4 in demo.yaml

        # Docker's view: the image's healthcheck is the Python `check`.
        container = docker(
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--filter",
            "label=com.docker.compose.service=retriever-agent",
        )
        assert container, "no retriever-agent container"

        def health() -> str:
            return docker("inspect", "--format", "{{.State.Health.Status}}", container)

        wait_until(lambda: health() == "healthy", 60, step=0.5)

        # SIGTERM: the agent says why it is going, muster check reads it.
        stopped = time.monotonic()
        docker("stop", container, timeout=60)
        assert time.monotonic() - stopped < 5  # it exited on SIGTERM, not on the 5 s SIGKILL
        check = subprocess.run(
            [str(muster_bin), "check", "--agent", "retriever-agent"],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert check.returncode == 1 and "graceful shutdown" in check.stderr, check.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
