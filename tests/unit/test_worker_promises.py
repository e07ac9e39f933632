"""What docs/operations.md promises of a worker, each checked: timeouts, chosen retry delays,
payloads refused at the worker, a full concurrency cap, and the backoff policy itself."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from tests.unit.test_worker import queue_job, wait_for_status
from tornado_core.adapters.memory.stores import MemoryQueue
from tornado_core.errors import JobTimeout, Retry
from tornado_core.message import Envelope
from tornado_core.naming import dead_letter_name, queue_spec
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.registry import TaskRegistry
from tornado_core.retry import RetryPolicy, backoff_delay
from tornado_core.services import Services
from tornado_core.task import task
from tornado_core.task_context import TaskContext, job_logger
from tornado_core.toolchain.testing import memory_services
from tornado_core.worker.loop import Worker, WorkerOptions
from tornado_core.worker.runner import Delivery, JobRunner, Outcome


class Work(BaseModel):
    n: int


release = threading.Event()


TWO_QUICK_ATTEMPTS = RetryPolicy(max_attempts=2, backoff_base=0)


@task(name="p.deadline", payload=Work, version="1.0.0", timeout=0.3, retry=TWO_QUICK_ATTEMPTS)
def deadline_checker(ctx: TaskContext, payload: Work) -> None:
    while True:  # a cooperative loop: it asks whether its time is up
        ctx.check_deadline()
        time.sleep(0.01)


@task(name="p.stuck", payload=Work, version="1.0.0", timeout=0.3, visibility_timeout=0.6)
def stuck(ctx: TaskContext, payload: Work) -> None:
    release.wait(30)  # never asks: only the heartbeat can tell


@task(name="p.later", payload=Work, version="1.0.0")
def later(ctx: TaskContext, payload: Work) -> None:
    raise Retry("the SEFAZ is in contingency", delay=42)


@task(name="p.capped", payload=Work, version="1.0.0", max_concurrency=1)
def capped(ctx: TaskContext, payload: Work) -> dict[str, int]:
    return {"n": payload.n}


class SpyQueue(MemoryQueue):
    """Records every visibility change it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: list[float] = []

    def change_visibility(self, queue: str, receipt: str, timeout: float) -> None:
        self.hidden.append(timeout)
        super().change_visibility(queue, receipt, timeout)


@pytest.fixture
def services() -> Services:
    base = memory_services(TaskRegistry([deadline_checker, stuck, later, capped]))
    return type(base)(**{**vars(base), "queue": SpyQueue()})


@pytest.fixture
def worker_for(services: Services) -> Iterator[Any]:
    started: list[tuple[Worker, threading.Thread]] = []

    def start(name: str) -> Worker:
        worker = Worker(services, services.registry.get(name), WorkerOptions(concurrency=2, poll_wait=0.1))
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    release.set()
    for worker, thread in started:
        worker.stop()
        thread.join(timeout=15)
    release.clear()


def wait_until(condition: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def run_one(services: Services, task_name: str, queue: str) -> Outcome:
    """Receive one message of ``queue`` and run it as a worker would."""
    (message,) = services.queue.receive(queue, max_messages=1, wait_seconds=0, visibility_timeout=30)
    runner = JobRunner(services, services.registry.get(task_name), worker_id="w")
    return runner.run(Delivery.received(queue, message, started=time.monotonic()))


def test_check_deadline_raises_job_timeout_and_the_job_is_retried_then_dead(
    services: Services, worker_for: Any
) -> None:
    job_id, _ = queue_job(services, "p.deadline", {"n": 1})
    worker_for("p.deadline")
    wait_for_status(services, job_id, JobStatus.DEAD, timeout=20)
    record = services.jobs.get(job_id)
    assert record is not None and record.attempts == 2
    assert record.error_type == "JobTimeout"


def test_progress_checks_the_deadline_too() -> None:
    now = [100.0]
    ctx = TaskContext(
        job_id="j", task="t", version="1", tenant="acme", attempt=1, s3=None, rds=None, redshift=None,  # type: ignore[arg-type]
        logger=job_logger(logging.getLogger("t"), job="j"), deadline=110.0,
        _progress_sink=lambda fraction, note: None, _clock=lambda: now[0],
    )  # fmt: skip
    ctx.progress(0.5)
    now[0] = 111.0
    with pytest.raises(JobTimeout):
        ctx.progress(0.6)
    with pytest.raises(JobTimeout):
        ctx.check_deadline()


def test_the_heartbeat_stops_keeping_a_job_past_its_timeout(services: Services, worker_for: Any) -> None:
    job_id, _ = queue_job(services, "p.stuck", {"n": 1})
    worker = worker_for("p.stuck")
    wait_for_status(services, job_id, JobStatus.RUNNING)
    queue = services.queue
    assert isinstance(queue, SpyQueue)
    # The handler never returns; past its timeout its message is no longer hidden, so it comes back.
    wait_until(lambda: max(queue.receive_counts(worker.queue_name), default=0) >= 2, "the message's return")


def test_retry_with_a_delay_hides_the_message_for_that_delay(services: Services) -> None:
    queue_job(services, "p.later", {"n": 1})
    spec = services.registry.get("p.later")
    name = queue_spec(services.settings.queue_prefix, spec).name
    outcome = run_one(services, spec.name, name)
    queue = services.queue
    assert isinstance(queue, SpyQueue)
    assert outcome is Outcome.RETRYING
    assert queue.hidden == [42]


def test_a_payload_refused_at_the_worker_is_dead_lettered_at_once(services: Services) -> None:
    spec = services.registry.get("p.later")
    name = queue_spec(services.settings.queue_prefix, spec).name
    services.queue.ensure_queue(queue_spec(services.settings.queue_prefix, spec))
    job_id = services.job_ids.new("acme")
    bad = Envelope(job_id=job_id, task=spec.name, version=spec.version, tenant="acme", payload={"n": "one"})
    services.queue.send_batch(name, [OutgoingMessage(bad.to_json())])
    outcome = run_one(services, spec.name, name)
    assert outcome is Outcome.DEAD
    record = services.jobs.get(job_id)
    assert record is not None and (record.status, record.attempts) == (JobStatus.DEAD, 1)
    assert record.error_type == "PayloadInvalid"
    assert services.queue.depth(dead_letter_name(name)).total == 1
    assert services.queue.depth(name).total == 0


def test_a_full_concurrency_cap_never_inflates_receive_counts(services: Services, worker_for: Any) -> None:
    job_id, _ = queue_job(services, "p.capped", {"n": 7})
    held = services.limiter.try_acquire("p.capped", 1)  # another worker somewhere holds the only slot
    assert held is not None
    held.__enter__()
    tries = [0]
    original = services.limiter.try_acquire_many

    def counted(task_name: str, limit: int, count: int) -> Any:
        tries[0] += 1
        return original(task_name, limit, count)

    services.limiter.try_acquire_many = counted  # type: ignore[method-assign]
    worker = worker_for("p.capped")
    wait_until(lambda: tries[0] >= 5, "the worker to try for a slot a few times")
    assert services.queue.receive_counts(worker.queue_name) == [0]  # type: ignore[attr-defined]
    held.__exit__(None, None, None)
    wait_for_status(services, job_id, JobStatus.SUCCEEDED)
    assert services.jobs.get(job_id).attempts == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(5))
def test_backoff_grows_exponentially_with_bounded_jitter_and_a_cap(seed: int) -> None:
    policy = RetryPolicy(backoff_base=2.0, backoff_factor=3.0, backoff_max=100.0, jitter=0.25)
    rng = random.Random(seed)
    delays = [backoff_delay(policy, attempt, rng) for attempt in range(1, 7)]
    exact = [2.0, 6.0, 18.0, 54.0, 100.0, 100.0]  # 162 and 486 capped at 100
    for delay, full in zip(delays, exact, strict=True):
        assert 0.75 * full <= delay <= full
    assert delays[:4] == sorted(delays[:4])  # equal jitter never lets a delay undercut the previous one
    assert [backoff_delay(RetryPolicy(backoff_base=2.0, jitter=0.0), a) for a in (1, 2, 3)] == [2.0, 4.0, 8.0]
