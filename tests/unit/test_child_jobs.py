"""Child jobs (``ctx.children``) on in-memory adapters: queued once per key, waited for, failures surface."""

from __future__ import annotations

import json

import pytest
import tornado_tasks.demo.handlers as demo

from tornado_core.errors import ChildJobFailed, ConfigError, JobTimeout
from tornado_core.naming import queue_name
from tornado_core.ports.jobs import Failure, JobStatus, Success
from tornado_core.registry import TaskRegistry
from tornado_core.services import Services
from tornado_core.task_context import TaskContext
from tornado_core.toolchain.testing import memory_services
from tornado_core.worker.children import ChildJobs


@pytest.fixture
def services() -> Services:
    registry = TaskRegistry()
    registry.register_module(demo)
    return memory_services(registry)


def children(services: Services, parent: str = "parent-1", *, polls: list[int] | None = None) -> ChildJobs:
    def sleep(_seconds: float) -> None:
        if polls is not None:
            polls.append(1)

    return ChildJobs(services, parent_job_id=parent, tenant="acme", check_deadline=lambda: None, sleep=sleep)


def messages(services: Services) -> list[dict[str, object]]:
    spec = services.registry.get("demo.echo")
    queue = queue_name(services.settings.queue_prefix, spec.name, spec.version)
    received = services.queue.receive(queue, max_messages=10, wait_seconds=0, visibility_timeout=30)
    return [json.loads(m.body) for m in received]


def test_a_child_is_queued_once_per_key_whatever_the_parents_attempts(services: Services) -> None:
    first = children(services).submit("demo.echo", {"message": "a"}, key="part-1")
    again = children(services).submit("demo.echo", {"message": "a"}, key="part-1")  # the parent's rerun
    other = children(services).submit("demo.echo", {"message": "b"}, key="part-2")
    elsewhere = children(services, "parent-2").submit("demo.echo", {"message": "a"}, key="part-1")
    assert first == again and len({first, other, elsewhere}) == 3
    record = services.jobs.get(first)
    assert record is not None and (record.status, record.tenant) == (JobStatus.QUEUED, "acme")
    assert sorted(m["job_id"] for m in messages(services)) == sorted([first, other, elsewhere])


def test_wait_returns_the_records_once_every_child_succeeded(services: Services) -> None:
    polls: list[int] = []
    jobs = children(services, polls=polls)
    ids = [jobs.submit("demo.echo", {"message": n}, key=n) for n in ("a", "b")]
    heard: list[int] = []
    original_sleep = jobs._sleep

    def succeed_one_per_poll(seconds: float) -> None:
        original_sleep(seconds)
        services.jobs.record_successes([Success(job_id=ids[len(polls) - 1], result={"n": len(polls)})])

    jobs._sleep = succeed_one_per_poll
    records = jobs.wait(ids, on_done=heard.append)
    assert [r.job_id for r in records] == ids and [r.result for r in records] == [{"n": 1}, {"n": 2}]
    assert heard == [1, 2] and len(polls) == 2


def test_a_dead_child_fails_the_wait_with_its_error(services: Services) -> None:
    jobs = children(services)
    ids = [jobs.submit("demo.echo", {"message": n}, key=n) for n in ("a", "b")]
    failure = Failure(error_type="NonRetryable", message="no company with CNPJ 1")
    services.jobs.record_failure(ids[1], status=JobStatus.DEAD, failure=failure)
    with pytest.raises(
        ChildJobFailed, match=f"child job {ids[1]} .demo.echo. is dead: no company with CNPJ 1"
    ):
        jobs.wait(ids)


def test_the_parents_deadline_bounds_the_wait(services: Services) -> None:
    def expired() -> None:
        raise JobTimeout("demo.parent ran past its timeout")

    jobs = ChildJobs(services, parent_job_id="p", tenant="acme", check_deadline=expired, sleep=lambda s: None)
    child = jobs.submit("demo.echo", {"message": "a"}, key="a")
    with pytest.raises(JobTimeout):
        jobs.wait([child])


def test_a_context_outside_a_worker_has_no_children() -> None:
    ctx = TaskContext(
        job_id="j", task="demo.echo", version="1", tenant="acme", attempt=1, s3=None, rds=None,  # type: ignore[arg-type]
        redshift=None, logger=None, deadline=0.0, _progress_sink=lambda f, n: None,  # type: ignore[arg-type]
    )  # fmt: skip
    with pytest.raises(ConfigError, match="cannot queue child jobs"):
        _ = ctx.children
