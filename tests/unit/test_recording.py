"""QueuedRecorder: write-behind, batched, bounded, and harmless when the store is down."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from tornado_core.adapters.memory.jobs import MemoryJobStore
from tornado_core.errors import StoreUnavailable
from tornado_core.ports.jobs import JobStatus, NewJob
from tornado_core.producer.recording import QueuedRecorder


class SlowStore(MemoryJobStore):
    """Records the size of each record_queued call; can be slow, down, or block."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.down = False
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def record_queued(self, jobs: Sequence[NewJob]) -> None:
        self.entered.set()
        self.gate.wait(5)
        self.calls.append(len(jobs))
        time.sleep(self.delay)
        if self.down:
            raise StoreUnavailable("postgres is down")
        super().record_queued(jobs)


def job(n: int) -> NewJob:
    return NewJob(
        job_id=f"job-{n:05d}", tenant="acme", task="demo.echo", version="1", submitted_at=time.time()
    )


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(4)
    yield pool
    pool.shutdown()


def test_add_returns_at_once_and_rows_arrive_in_the_background(executor: ThreadPoolExecutor) -> None:
    store = SlowStore()
    store.gate.clear()  # the store does not answer until the test says so

    async def run() -> None:
        recorder = QueuedRecorder(store, executor)
        recorder.add(job(1))  # returns although the store cannot answer yet: not on the caller's path
        assert store.get("job-00001") is None
        assert recorder.pending == 1
        store.gate.set()
        await recorder.close()

    asyncio.run(run())
    record = store.get("job-00001")
    assert record is not None and record.status is JobStatus.QUEUED


def test_rows_added_during_a_write_are_batched(executor: ThreadPoolExecutor) -> None:
    store = SlowStore(delay=0.05)

    async def run() -> None:
        recorder = QueuedRecorder(store, executor, batch_size=100)
        store.gate.clear()
        recorder.add(job(0))
        while not store.entered.is_set():  # until the first write is in flight
            await asyncio.sleep(0.001)
        for n in range(1, 251):
            recorder.add(job(n))
        store.gate.set()
        await recorder.close()

    asyncio.run(run())
    assert store.calls == [1, 100, 100, 50]
    assert len(store.list(tenant="acme", limit=500).jobs) == 251


def test_store_down_drops_with_a_warning(
    executor: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    store = SlowStore()
    store.down = True

    async def run() -> QueuedRecorder:
        recorder = QueuedRecorder(store, executor)
        recorder.add(job(1))
        recorder.add(job(2))
        await recorder.close()
        return recorder

    with caplog.at_level(logging.WARNING, logger="tornado_core.producer.recording"):
        recorder = asyncio.run(run())
    assert recorder.dropped == 2
    assert recorder.pending == 0
    assert "job store unavailable" in caplog.text


def test_buffer_is_bounded(executor: ThreadPoolExecutor) -> None:
    store = SlowStore()
    store.gate.clear()  # the first write blocks until we let it go

    async def run() -> QueuedRecorder:
        recorder = QueuedRecorder(store, executor, max_buffer=10, batch_size=5)
        for n in range(15):
            recorder.add(job(n))
        assert recorder.pending == 10
        store.gate.set()
        await recorder.close()
        return recorder

    recorder = asyncio.run(run())
    assert recorder.dropped == 5
    assert len(store.list(tenant="acme", limit=100).jobs) == 10


def test_close_flushes_and_refuses_later_rows(executor: ThreadPoolExecutor) -> None:
    store = SlowStore()

    async def run() -> QueuedRecorder:
        recorder = QueuedRecorder(store, executor, batch_size=3)
        for n in range(7):
            recorder.add(job(n))
        await recorder.close()
        recorder.add(job(99))
        return recorder

    recorder = asyncio.run(run())
    assert len(store.list(tenant="acme", limit=100).jobs) == 7
    assert recorder.dropped == 1


def test_recorder_keeps_going_after_the_store_comes_back(executor: ThreadPoolExecutor) -> None:
    store = SlowStore()

    async def run() -> None:
        recorder = QueuedRecorder(store, executor)
        store.down = True
        recorder.add(job(1))
        while recorder.pending:
            await asyncio.sleep(0.005)
        store.down = False
        recorder.add(job(2))
        await recorder.close()

    asyncio.run(run())
    assert store.get("job-00001") is None
    assert store.get("job-00002") is not None


class PickyStore(MemoryJobStore):
    """Refuses any batch that holds a row its database cannot store (as psycopg2 refuses a NUL)."""

    def record_queued(self, jobs: Sequence[NewJob]) -> None:
        if any("\0" in (j.idempotency_key or "") for j in jobs):
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        super().record_queued(jobs)


def test_one_refused_row_costs_only_itself(executor: ThreadPoolExecutor) -> None:
    store = PickyStore()
    rows = [job(n) for n in range(40)]
    poisoned = NewJob(
        job_id="job-poisoned", tenant="globex", task="demo.echo", version="1", submitted_at=time.time(),
        idempotency_key="bad\0key",
    )  # fmt: skip
    rows.insert(17, poisoned)

    async def run() -> QueuedRecorder:
        recorder = QueuedRecorder(store, executor, batch_size=500)
        for row in rows:
            recorder.add(row)
        await recorder.close()
        return recorder

    recorder = asyncio.run(run())

    recorded = {j.job_id for j in rows if store.get(j.job_id) is not None}
    assert recorded == {j.job_id for j in rows} - {"job-poisoned"}
    assert recorder.dropped == 1
