"""SendBatcher: a lone send goes at once; concurrent sends share send_batch calls."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from tornado_core.adapters.memory.jobs import MemoryJobStore
from tornado_core.adapters.memory.stores import MemoryQueue
from tornado_core.errors import QueueUnavailable
from tornado_core.ports.jobs import NewJob
from tornado_core.ports.queue import OutgoingMessage, QueueSpec
from tornado_core.producer.batching import FLUSHES_IN_FLIGHT, SendBatcher
from tornado_core.producer.recording import QueuedRecorder

QUEUE = "q"


class CountingQueue(MemoryQueue):
    """A memory queue that records its send_batch calls and can be slow or refuse entries."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.refuse: set[str] = set()
        self.explode = False
        self.in_flight = 0
        self.most_in_flight = 0
        self._calls_lock = threading.Lock()

    def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        with self._calls_lock:
            self.calls.append(len(messages))
            self.threads.add(threading.current_thread().name)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
        finally:
            with self._calls_lock:
                self.in_flight -= 1
        if self.explode:
            raise RuntimeError("adapter bug")
        keep = [m for m in messages if m.body not in self.refuse]
        super().send_batch(queue, keep)
        return [("refused" if m.body in self.refuse else None) for m in messages]


def batcher_for(queue: MemoryQueue, executor: ThreadPoolExecutor) -> SendBatcher:
    """A batcher whose rows go write-behind to an in-memory job store (as on SQS)."""
    return SendBatcher(queue, executor, QueuedRecorder(MemoryJobStore(), executor))


def job(body: str) -> NewJob:
    return NewJob(
        job_id=f"job-{body[:20]}", tenant="acme", task="demo.echo", version="1.0.0", submitted_at=1.0
    )


def pairs(bodies: list[str]) -> list[tuple[str, NewJob]]:
    return [(body, job(body)) for body in bodies]


def make_queue(delay: float = 0.0) -> CountingQueue:
    queue = CountingQueue(delay)
    queue.ensure_queue(
        QueueSpec(name=QUEUE, dead_letter_name="q-dlq", max_receive_count=3, visibility_timeout=30)
    )
    return queue


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(8, thread_name_prefix="batch-test")
    yield pool
    pool.shutdown()


def test_lone_send_is_flushed_at_once(executor: ThreadPoolExecutor) -> None:
    queue = make_queue()

    async def run() -> None:
        batcher = batcher_for(queue, executor)
        await batcher.send(QUEUE, "one", job("one"))

    asyncio.run(run())
    assert queue.calls == [1]  # sent alone, in the first call: nothing waited for company
    assert queue.depth(QUEUE).visible == 1
    assert all(name.startswith("batch-test") for name in queue.threads)  # never on the loop


def test_concurrent_sends_are_batched_in_chunks(executor: ThreadPoolExecutor) -> None:
    queue = make_queue(delay=0.05)

    async def run() -> None:
        batcher = batcher_for(queue, executor)
        first = asyncio.ensure_future(batcher.send(QUEUE, "first", job("first")))
        while not queue.calls:  # until the first flush is in flight
            await asyncio.sleep(0.001)
        await asyncio.gather(first, *(batcher.send(QUEUE, f"m{i}", job(f"m{i}")) for i in range(95)))

    asyncio.run(run())
    assert queue.calls[0] == 1
    assert sorted(queue.calls[1:], reverse=True) == [10] * 9 + [5]
    assert queue.depth(QUEUE).visible == 96


def test_waiting_sends_go_whole_in_as_few_calls_as_fit_each_answered_on_its_own(
    executor: ThreadPoolExecutor,
) -> None:
    """Three sends of four wait behind a flush: two share a call (eight of ten), the third has its own."""
    queue = make_queue(delay=0.05)
    queue.refuse = {"c2"}

    async def run() -> list[list[str | None]]:
        batcher = batcher_for(queue, executor)
        first = asyncio.ensure_future(batcher.send(QUEUE, "first", job("first")))
        while not queue.calls:  # until the first flush is in flight
            await asyncio.sleep(0.001)
        sends = [batcher.send_many(QUEUE, pairs([f"{name}{i}" for i in range(4)])) for name in "abc"]
        *answers, _ = await asyncio.gather(*sends, first)
        return answers

    answers = asyncio.run(run())
    assert sorted(queue.calls[1:]) == [4, 8]
    assert answers[:2] == [[None] * 4, [None] * 4]
    assert answers[2][2] is not None and answers[2][:2] + answers[2][3:] == [None] * 3
    assert queue.depth(QUEUE).visible == 12


def test_chunks_of_one_flush_are_sent_concurrently(executor: ThreadPoolExecutor) -> None:
    queue = make_queue(delay=0.2)

    async def run() -> None:
        batcher = batcher_for(queue, executor)
        await batcher.send_many(QUEUE, pairs([f"m{i}" for i in range(40)]))

    asyncio.run(run())
    assert queue.calls == [10, 10, 10, 10]
    assert queue.most_in_flight == 4  # in parallel, not one after the other


def test_refused_entry_raises_only_for_its_sender(executor: ThreadPoolExecutor) -> None:
    queue = make_queue()
    queue.refuse = {"bad"}

    async def run() -> tuple[BaseException | None, BaseException | None]:
        batcher = batcher_for(queue, executor)
        return await asyncio.gather(
            batcher.send(QUEUE, "good", job("good")),
            batcher.send(QUEUE, "bad", job("bad")),
            return_exceptions=True,
        )

    good, bad = asyncio.run(run())
    assert good is None
    assert isinstance(bad, QueueUnavailable)
    assert queue.depth(QUEUE).visible == 1


def test_send_many_reports_per_entry(executor: ThreadPoolExecutor) -> None:
    queue = make_queue()
    queue.refuse = {"b"}

    async def run() -> list[str | None]:
        return await batcher_for(queue, executor).send_many(QUEUE, pairs(["a", "b", "c"]))

    outcome = asyncio.run(run())
    assert outcome[0] is None and outcome[2] is None
    assert outcome[1] is not None and "refused" in outcome[1]


def test_queue_down_raises_queue_unavailable(executor: ThreadPoolExecutor) -> None:
    queue = make_queue()
    queue.down = True

    async def run() -> None:
        await batcher_for(queue, executor).send(QUEUE, "x", job("x"))

    with pytest.raises(QueueUnavailable):
        asyncio.run(run())
    queue.down = False
    assert queue.depth(QUEUE).total == 0


def test_unexpected_adapter_error_becomes_queue_unavailable(executor: ThreadPoolExecutor) -> None:
    queue = make_queue()
    queue.explode = True

    async def run() -> list[str | None]:
        batcher = batcher_for(queue, executor)
        with pytest.raises(QueueUnavailable):
            await batcher.send(QUEUE, "x", job("x"))
        return await batcher.send_many(QUEUE, pairs(["y", "z"]))

    assert all(error for error in asyncio.run(run()))


def test_batcher_recovers_after_an_outage(executor: ThreadPoolExecutor) -> None:
    queue = make_queue()

    async def run() -> None:
        batcher = batcher_for(queue, executor)
        queue.down = True
        with pytest.raises(QueueUnavailable):
            await batcher.send(QUEUE, "lost", job("lost"))
        queue.down = False
        await batcher.send(QUEUE, "kept", job("kept"))
        await batcher.wait_idle()

    asyncio.run(run())
    assert queue.depth(QUEUE).visible == 1


def test_queues_are_flushed_independently(executor: ThreadPoolExecutor) -> None:
    queue = make_queue(delay=0.2)
    queue.ensure_queue(
        QueueSpec(name="other", dead_letter_name="o-dlq", max_receive_count=3, visibility_timeout=30)
    )

    async def run() -> None:
        batcher = batcher_for(queue, executor)
        await asyncio.gather(batcher.send(QUEUE, "a", job("a")), batcher.send("other", "b", job("b")))

    asyncio.run(run())
    assert queue.most_in_flight == 2  # in parallel, not one after the other
    assert queue.calls == [1, 1]


class ByteBudgetQueue(MemoryQueue):
    """Refuses a whole batch whose bodies exceed the byte budget, as SQS answers BatchRequestTooLong."""

    max_send_batch_bytes = 1_000

    def __init__(self) -> None:
        super().__init__()
        self.batch_bytes: list[int] = []

    def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        size = sum(len(m.body.encode()) for m in messages)
        self.batch_bytes.append(size)
        if size > self.max_send_batch_bytes:
            raise QueueUnavailable("BatchRequestTooLong: batch requests cannot be longer than 1000 bytes")
        return super().send_batch(queue, messages)


def test_batches_are_budgeted_by_bytes_as_well_as_count(executor: ThreadPoolExecutor) -> None:
    queue = ByteBudgetQueue()
    queue.ensure_queue(QueueSpec(name=QUEUE, dead_letter_name="d", max_receive_count=3, visibility_timeout=9))
    bodies = [f"{n:03d}" + "é" * 150 for n in range(30)]  # 303 bytes each: three fit in the budget, not four

    async def run() -> None:
        batcher = batcher_for(queue, executor)
        await asyncio.gather(*(batcher.send(QUEUE, body, job(body)) for body in bodies))

    asyncio.run(run())

    assert queue.depth(QUEUE).visible == 30
    assert max(queue.batch_bytes) <= queue.max_send_batch_bytes
    assert len(queue.batch_bytes) >= 10  # at least 30 / 3 calls


def test_a_body_larger_than_the_budget_goes_alone_and_fails_alone(executor: ThreadPoolExecutor) -> None:
    queue = ByteBudgetQueue()
    queue.ensure_queue(QueueSpec(name=QUEUE, dead_letter_name="d", max_receive_count=3, visibility_timeout=9))

    async def run() -> list[str | None]:
        return await batcher_for(queue, executor).send_many(
            QUEUE, pairs(["small", "x" * 5_000, "also small"])
        )

    outcomes = asyncio.run(run())

    assert outcomes[0] is None and outcomes[2] is None
    assert outcomes[1] is not None and "BatchRequestTooLong" in outcomes[1]


def test_only_the_jobs_whose_message_was_stored_get_their_row_written_behind(
    executor: ThreadPoolExecutor,
) -> None:
    queue = make_queue()
    queue.refuse = {"bad"}
    store = MemoryJobStore()
    recorder = QueuedRecorder(store, executor)

    async def run() -> list[str | None]:
        batcher = SendBatcher(queue, executor, recorder)
        results = await batcher.send_many(QUEUE, pairs(["good", "bad"]))
        await recorder.close()  # writes what it holds
        return results

    good, bad = asyncio.run(run())
    assert good is None and bad is not None
    assert store.get("job-good") is not None
    assert store.get("job-bad") is None  # refused by the queue: no row for a job that does not exist


def test_a_send_split_across_chunks_gets_each_message_its_own_outcome(executor: ThreadPoolExecutor) -> None:
    queue = make_queue()
    queue.refuse = {"m13"}  # in the second chunk of ten

    async def run() -> list[str | None]:
        return await batcher_for(queue, executor).send_many(QUEUE, pairs([f"m{i}" for i in range(25)]))

    outcome = asyncio.run(run())
    assert queue.calls == [10, 10, 5]
    assert [i for i, error in enumerate(outcome) if error is not None] == [13]
    assert queue.depth(QUEUE).visible == 24


def test_cancelled_flushes_answer_every_waiting_sender(executor: ThreadPoolExecutor) -> None:
    queue = make_queue(delay=0.3)

    async def until(condition: Callable[[], object]) -> None:
        while not condition():
            await asyncio.sleep(0.001)

    async def run() -> list[list[str | None]]:
        batcher = batcher_for(queue, executor)
        sends = [asyncio.ensure_future(batcher.send_many(QUEUE, pairs(["a", "b"])))]
        await until(lambda: len(queue.calls) == 1)
        sends.append(asyncio.ensure_future(batcher.send_many(QUEUE, pairs(["c"]))))
        await until(lambda: len(queue.calls) == 2)  # both flushes in flight
        sends.append(asyncio.ensure_future(batcher.send_many(QUEUE, pairs(["d"]))))
        lane = batcher._lanes[QUEUE]
        await until(lambda: lane.pending)  # "d" waits for a flush to end
        assert len(lane.flushing) == FLUSHES_IN_FLIGHT
        for flush in list(lane.flushing):
            flush.cancel()
        return await asyncio.wait_for(asyncio.gather(*sends), timeout=5)

    assert asyncio.run(run()) == [["send cancelled"] * 2, ["send cancelled"], ["send cancelled"]]


def test_a_second_flush_takes_what_arrives_while_the_first_waits_on_the_queue(
    executor: ThreadPoolExecutor,
) -> None:
    queue = make_queue(delay=0.2)

    async def run() -> None:
        batcher = batcher_for(queue, executor)
        first = asyncio.ensure_future(batcher.send(QUEUE, "first", job("first")))
        while not queue.calls:  # the first flush is in flight
            await asyncio.sleep(0.001)
        await asyncio.gather(first, *(batcher.send(QUEUE, f"m{i}", job(f"m{i}")) for i in range(8)))

    asyncio.run(run())
    assert queue.calls == [1, 8]  # the eight did not wait for the first commit: one call, beside it
    assert queue.most_in_flight == 2
    assert queue.depth(QUEUE).visible == 9
