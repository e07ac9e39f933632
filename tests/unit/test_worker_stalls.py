"""A stalled backend never makes one worker run the same job twice at once.

During a stall the heartbeat cannot keep a running job's message hidden (when the queue stalls
too, as with the PostgreSQL queue) or its lease alive, so the message reappears and the worker
receives it again while the first run is still going.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from tests.unit.test_worker import queue_job, wait_for_status
from tornado_core.adapters.memory.jobs import MemoryJobStore
from tornado_core.adapters.memory.stores import MemoryQueue
from tornado_core.ports.jobs import JobStatus
from tornado_core.registry import TaskRegistry
from tornado_core.services import Services
from tornado_core.task import task
from tornado_core.task_context import TaskContext
from tornado_core.toolchain.testing import memory_services
from tornado_core.worker.loop import Worker, WorkerOptions

VISIBILITY = 0.6  # seconds: the message reappears this long after the heartbeat stops
pytestmark = pytest.mark.usefixtures("info_logs")


@pytest.fixture
def info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tornado.worker")


class Gate:
    """Calls through it block while it is closed (a server that accepts but does not answer)."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self.blocked = 0

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def pass_through(self) -> None:
        if not self._open.is_set():
            self.blocked += 1
            self._open.wait(30)


class StallingStore(MemoryJobStore):
    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate
        self.claims = 0

    def extend_lease(self, job_id: str, *, lease_seconds: float) -> None:
        self.gate.pass_through()
        super().extend_lease(job_id, lease_seconds=lease_seconds)

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        self.gate.pass_through()
        self.claims += 1
        return super().claim(*args, **kwargs)


class StallingQueue(MemoryQueue):
    """Its visibility changes stall with the gate (receives still answer, from a replica say)."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate
        self.hidden = 0

    def change_visibility(self, queue: str, receipt: str, timeout: float) -> None:
        self.gate.pass_through()
        self.hidden += 1
        super().change_visibility(queue, receipt, timeout)


class Slow(BaseModel):
    n: int


class Runs:
    """What the handler saw: how many runs, and the most at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.most_at_once = 0
        self.total = 0
        self.started = threading.Event()
        self.finish = threading.Event()


@pytest.fixture
def runs() -> Runs:
    return Runs()


def slow_task(runs: Runs) -> Any:
    @task(name="test.slow", payload=Slow, version="1.0.0", visibility_timeout=VISIBILITY, timeout=60)
    def slow(ctx: TaskContext, payload: Slow) -> dict[str, int]:
        with runs.lock:
            runs.active += 1
            runs.total += 1
            runs.most_at_once = max(runs.most_at_once, runs.active)
        runs.started.set()
        runs.finish.wait(30)
        with runs.lock:
            runs.active -= 1
        return {"n": payload.n}

    return slow


@pytest.fixture
def gate() -> Gate:
    return Gate()


def stalling_services(runs: Runs, gate: Gate, *, queue_stalls: bool) -> Services:
    base = memory_services(TaskRegistry([slow_task(runs)]))
    queue = StallingQueue(gate) if queue_stalls else StallingQueue(Gate())
    return type(base)(**{**vars(base), "jobs": StallingStore(gate), "queue": queue})


@pytest.fixture
def worker_of() -> Iterator[Any]:
    threads: list[tuple[Worker, threading.Thread]] = []

    def start(services: Services) -> Worker:
        worker = Worker(
            services, services.registry.get("test.slow"),
            WorkerOptions(concurrency=2, poll_wait=0.1, grace_period=5),
        )  # fmt: skip
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        threads.append((worker, thread))
        return worker

    yield start
    for worker, thread in threads:
        worker.stop()
        thread.join(timeout=15)


def wait_until(condition: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("queue_stalls", [True, False], ids=["store and queue stall", "store stalls"])
def test_a_stall_longer_than_the_visibility_timeout_never_runs_a_job_twice_at_once(
    runs: Runs, gate: Gate, worker_of: Any, queue_stalls: bool, caplog: pytest.LogCaptureFixture
) -> None:
    services = stalling_services(runs, gate, queue_stalls=queue_stalls)
    job_id, _ = queue_job(services, "test.slow", {"n": 1})
    worker = worker_of(services)
    assert runs.started.wait(10)

    gate.close()  # the backend stalls while the job runs ...
    queue = services.queue
    assert isinstance(queue, StallingQueue)
    if queue_stalls:  # ... long enough for the message to come back and be received again
        wait_until(lambda: max(queue.receive_counts(worker.queue_name), default=0) >= 2, "a redelivery")
    else:  # ... for several visibility timeouts, while the queue's heartbeat goes on without the store
        wait_until(lambda: gate.blocked >= 1, "the lease extension blocks")
        hidden = queue.hidden
        wait_until(lambda: queue.hidden >= hidden + 9, "three visibility timeouts of heartbeats")
        assert queue.receive_counts(worker.queue_name) == [1]
    gate.open()
    if queue_stalls:  # the copy is either held by the worker or (the bug) claimed beside the first run
        store = services.jobs
        assert isinstance(store, StallingStore)
        held = "arrived again while it runs here"
        wait_until(lambda: store.claims >= 2 or held in caplog.text, "the copy is held or claimed")
    runs.finish.set()

    wait_for_status(services, job_id, JobStatus.SUCCEEDED)
    wait_until(lambda: queue.depth(worker.queue_name).total == 0, "the message is deleted")
    assert runs.most_at_once == 1
    assert runs.total == 1
