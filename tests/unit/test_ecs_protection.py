"""ECS task scale-in protection and the ECS runtime's settings (no ECS needed)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import tornado_tasks.demo.handlers as demo

from tests.ecs_agent import Calls, ecs_agent
from tornado_core.adapters.runtimes.ecs.protection import TaskProtection, protection_from_env
from tornado_core.adapters.runtimes.ecs.runtime import EcsConfig
from tornado_core.naming import queue_spec
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.producer.submission import Submitter
from tornado_core.registry import TaskRegistry
from tornado_core.toolchain.testing import memory_services
from tornado_core.worker.loop import Worker, WorkerOptions


def test_config_from_environment() -> None:
    config = EcsConfig.from_env(
        {
            "TORNADO_ECS_CLUSTER": "prod",
            "TORNADO_ECS_LAUNCH_TYPE": "ec2",
            "TORNADO_ECS_SUBNETS": "subnet-a, subnet-b",
            "TORNADO_ECS_ASSIGN_PUBLIC_IP": "true",
            "TORNADO_ECS_SECRETS": "TORNADO_DATABASE_URL=arn:aws:ssm:x:1:parameter/db",
        }
    )
    assert (config.cluster, config.launch_type, config.subnets) == ("prod", "EC2", ("subnet-a", "subnet-b"))
    assert config.assign_public_ip
    assert config.secrets == {"TORNADO_DATABASE_URL": "arn:aws:ssm:x:1:parameter/db"}
    assert EcsConfig.from_env({}) == EcsConfig()


@pytest.fixture
def agent() -> Iterator[tuple[str, Calls]]:
    with ecs_agent() as running:
        yield running


def test_protection_sets_and_clears_through_the_agent(agent: tuple[str, list[Any]]) -> None:
    uri, calls = agent
    protect = protection_from_env({"ECS_AGENT_URI": uri, "TORNADO_ECS_PROTECTION_MINUTES": "30"})
    assert protect is not None
    protect(True)
    protect(False)
    path = "/api/task-1/task-protection/v1/state"
    assert calls == [
        (path, {"ProtectionEnabled": True, "ExpiresInMinutes": 30}),
        (path, {"ProtectionEnabled": False}),
    ]
    assert protection_from_env({}) is None  # not on ECS: no hook at all


def test_an_unreachable_agent_never_breaks_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    TaskProtection("http://127.0.0.1:9", timeout=0.5)(True)
    assert "could not set task protection" in caplog.text


def test_a_worker_is_protected_exactly_while_it_runs_jobs(agent: tuple[str, list[Any]]) -> None:
    uri, calls = agent
    registry = TaskRegistry()
    registry.register_module(demo)
    services = memory_services(registry)
    submitter = Submitter.for_services(services)
    services.queue.ensure_queue(queue_spec(services.settings.queue_prefix, registry.get("demo.sleep")))
    jobs = [submitter.prepare(task="demo.sleep", tenant="acme", payload={"seconds": 0.3, "steps": 1})]
    jobs.append(submitter.prepare(task="demo.sleep", tenant="acme", payload={"seconds": 0.5, "steps": 1}))
    services.queue.send_batch(jobs[0].queue, [OutgoingMessage(job.body) for job in jobs])
    services.jobs.record_queued([job.as_new_job() for job in jobs])
    options = WorkerOptions(concurrency=2, poll_wait=0.1, grace_period=5, on_busy_change=TaskProtection(uri))
    worker = Worker(services, registry.get("demo.sleep"), options)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not all(_succeeded(services, job.envelope.job_id) for job in jobs) or len(calls) < 2:
        assert time.monotonic() < deadline, calls
        time.sleep(0.02)
    worker.stop()
    thread.join(timeout=10)
    states = [body["ProtectionEnabled"] for _path, body in calls]
    assert states[0] is True and states[-1] is False  # set on the first job, cleared when idle
    assert all(a != b for a, b in itertools.pairwise(states))  # only on changes


def _succeeded(services: Any, job_id: str) -> bool:
    record = services.jobs.get(job_id)
    return record is not None and record.status is JobStatus.SUCCEEDED
