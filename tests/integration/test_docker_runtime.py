"""The docker runtime with real containers on the project's engine and the real local stack.

Workers in containers (host network) poll the session's PostgreSQL queue; jobs are
sent straight to a version's queue and watched in the job store.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tornado_core.adapters.runtimes.docker.runtime import DockerRuntime
from tornado_core.bootstrap import build_services
from tornado_core.errors import RuntimeFailure
from tornado_core.naming import queue_spec
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.runtime import Deployment, InstanceState
from tornado_core.producer.submission import Submitter
from tornado_core.services import Services
from tornado_core.settings import Settings

HEALTHY_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def settings(stack_env: dict[str, str]) -> Settings:
    """The stack's settings with a queue prefix of this module's own."""
    return Settings.load({**stack_env, "TORNADO_QUEUE_PREFIX": f"dk{uuid.uuid4().hex[:6]}"})


@pytest.fixture(scope="module")
def services(settings: Settings) -> Iterator[Services]:
    built, close = build_services(settings)
    yield built
    close()


@pytest.fixture(scope="module")
def runtime(settings: Settings, docker_client: Any, worker_image: str) -> Iterator[DockerRuntime]:
    """A docker runtime whose workers poll every second (quick drains and health)."""
    instance = DockerRuntime(settings, client=docker_client, health_interval=1.0, poll_wait=1.0)
    yield instance
    for container in docker_client.containers.list(all=True, filters={"label": "io.tornado.managed=true"}):
        container.remove(force=True)


def deployment(image: str, task: str, version: str, **overrides: Any) -> Deployment:
    return Deployment(
        task=task, version=version, image=image, replicas=overrides.pop("replicas", 1), **overrides
    )


def submit(services: Services, task: str, version: str, payload: dict[str, Any]) -> str:
    """Queue one job pinned to ``version``; returns its id."""
    settings = services.settings
    submitter = Submitter.for_services(services)
    prepared = submitter.prepare(task=task, tenant="docker-tests", payload=payload, version=version)
    services.queue.ensure_queue(queue_spec(settings.queue_prefix, services.registry.get(task, version)))
    assert services.queue.send_batch(prepared.queue, [OutgoingMessage(prepared.body)]) == [None]
    services.jobs.record_queued([prepared.as_new_job()])
    return prepared.envelope.job_id


def wait_status(services: Services, job_id: str, *wanted: JobStatus, timeout: float = 60.0) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        record = services.jobs.get(job_id)
        status = record.status if record is not None else JobStatus.QUEUED
        if status in wanted:
            return status
        assert time.monotonic() < deadline, f"job {job_id} is {status}, not {wanted}"
        time.sleep(0.1)


def test_deploys_replicas_idempotently_and_their_jobs_succeed(
    runtime: DockerRuntime, services: Services, worker_image: str, demo_version: str
) -> None:
    wanted = deployment(worker_image, "demo.echo", demo_version, replicas=2, grace_period=10)
    first = runtime.ensure(wanted)
    healthy = runtime.wait_healthy("demo.echo", demo_version, replicas=2, timeout=HEALTHY_TIMEOUT)
    assert {i.state for i in healthy} == {InstanceState.HEALTHY}
    again = runtime.ensure(wanted)  # nothing new: found by labels
    assert sorted(i.instance_id for i in again) == sorted(i.instance_id for i in first)
    assert len(again) == 2

    ids = [submit(services, "demo.echo", demo_version, {"message": f"m{n}"}) for n in range(20)]
    for job_id in ids:
        assert wait_status(services, job_id, JobStatus.SUCCEEDED, JobStatus.DEAD) is JobStatus.SUCCEEDED

    three = deployment(worker_image, "demo.echo", demo_version, replicas=3, grace_period=10)
    with ThreadPoolExecutor(2) as pool:  # two deploys racing (a re-run after a crash): no duplicates
        list(pool.map(runtime.ensure, [three, three]))
    assert len(runtime.instances("demo.echo", demo_version)) == 3

    runtime.ensure(deployment(worker_image, "demo.echo", demo_version, replicas=1, grace_period=10))
    assert len(runtime.instances("demo.echo", demo_version)) == 1
    assert set(runtime.stop_instances("demo.echo", demo_version, grace_period=10).values()) == {0}
    assert runtime.instances("demo.echo", demo_version) == []


def test_stop_mid_job_lets_the_job_finish_and_the_worker_exit_zero(
    runtime: DockerRuntime, services: Services, worker_image: str, demo_version: str
) -> None:
    runtime.ensure(deployment(worker_image, "demo.sleep", demo_version, grace_period=20))
    runtime.wait_healthy("demo.sleep", demo_version, replicas=1, timeout=HEALTHY_TIMEOUT)
    job_id = submit(services, "demo.sleep", demo_version, {"seconds": 3, "steps": 6})
    wait_status(services, job_id, JobStatus.RUNNING)
    codes = runtime.stop_instances("demo.sleep", demo_version, grace_period=20)
    assert list(codes.values()) == [0]  # drained and exited by itself: a kill at the deadline gives 137
    assert wait_status(services, job_id, JobStatus.SUCCEEDED, timeout=5) is JobStatus.SUCCEEDED
    assert runtime.instances("demo.sleep", demo_version) == []


def _worker_pid(container: Any) -> int:
    top = container.top(ps_args="-eo pid,args")
    rows = [dict(zip(top["Titles"], row, strict=True)) for row in top["Processes"]]
    return next(int(row["PID"]) for row in rows if "tornado worker" in row["COMMAND"])


def _restarts(container: Any) -> int:
    container.reload()
    return int(container.attrs["RestartCount"])


def test_a_crashed_worker_is_restarted_and_serves_again(
    runtime: DockerRuntime, services: Services, docker_client: Any, worker_image: str, demo_version: str
) -> None:
    [instance] = runtime.ensure(deployment(worker_image, "demo.echo", demo_version, grace_period=5))
    runtime.wait_healthy("demo.echo", demo_version, replicas=1, timeout=HEALTHY_TIMEOUT)
    container = docker_client.containers.get(instance.instance_id)
    os.kill(_worker_pid(container), signal.SIGKILL)  # the worker inside dies, tini exits, Docker restarts

    deadline = time.monotonic() + 30
    while _restarts(container) < 1:
        assert time.monotonic() < deadline, "the container was not restarted"
        time.sleep(0.2)
    runtime.wait_healthy("demo.echo", demo_version, replicas=1, timeout=HEALTHY_TIMEOUT)
    job_id = submit(services, "demo.echo", demo_version, {"message": "after the crash"})
    assert wait_status(services, job_id, JobStatus.SUCCEEDED) is JobStatus.SUCCEEDED
    assert [i.instance_id for i in runtime.instances("demo.echo", demo_version)] == [instance.instance_id]
    runtime.stop("demo.echo", demo_version, grace_period=5)


def test_a_version_the_image_lacks_never_gets_healthy_and_says_why(
    runtime: DockerRuntime, worker_image: str
) -> None:
    runtime.ensure(deployment(worker_image, "demo.echo", "0.0.0-missing", grace_period=1))
    with pytest.raises(RuntimeFailure, match=r"fewer than 1 healthy(.|\n)*0\.0\.0-missing"):
        runtime.wait_healthy("demo.echo", "0.0.0-missing", replicas=1, timeout=4)
    runtime.stop("demo.echo", "0.0.0-missing", grace_period=1)
    assert runtime.instances("demo.echo", "0.0.0-missing") == []


def test_a_missing_image_is_a_clear_error(runtime: DockerRuntime) -> None:
    with pytest.raises(RuntimeFailure, match="image not found"):
        runtime.ensure(deployment("tornado-test/nothing:here", "demo.echo", "9.9.9"))


def test_describe_reads_a_version_contract_from_its_image(
    runtime: DockerRuntime, worker_image: str, demo_version: str
) -> None:
    found = runtime.describe(deployment(worker_image, "demo.echo", demo_version))
    assert found is not None and found.task == "demo.echo" and found.version == demo_version
    assert found.payload_schema["required"] == ["message"]
    assert runtime.describe(deployment(worker_image, "demo.echo", "0.0.0-missing")) is None
