"""Micro-batching of queue sends for the enqueue path, without delaying a lone request.

Per queue there are at most two flushes in flight. A message that arrives while the
queue is idle is flushed at once (no timer, no waiting for company), and so is one that
arrives while a single flush waits on the queue: the event loop goes on working while a
commit is being made durable. Messages that arrive while two flushes are in flight
accumulate and all go in the next flush, split into chunks of at most ``queue.max_send_batch`` messages and
``queue.max_send_batch_bytes`` bytes that are sent concurrently in the executor.
Under load this turns N requests into about N / max_send_batch calls; with a
single client it adds no latency.

Each message travels with its job's ``queued`` row. Where the queue and the job store share a
database (:class:`~tornado_core.ports.queue_and_jobs.QueueAndJobsPort`, PostgreSQL) both are
stored in the same commit; elsewhere the row goes to the write-behind
:class:`~tornado_core.producer.recording.QueuedRecorder` once the queue has the message.

Blocking port calls run in the executor, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

from tornado_core.errors import QueueUnavailable
from tornado_core.jsontext import utf8_size
from tornado_core.ports.jobs import NewJob
from tornado_core.ports.queue import OutgoingMessage, QueuePort
from tornado_core.ports.queue_and_jobs import QueueAndJobsPort
from tornado_core.producer.recording import QueuedRecorder

_log = logging.getLogger(__name__)
#: Flushes of one queue in flight at once: a second one takes what arrived while the first waits
#: on the database or SQS, so the event loop never idles behind one commit.
FLUSHES_IN_FLIGHT = 2
_T = TypeVar("_T")


@dataclass(eq=False)
class _Send:
    """One caller's messages, answered together once each has an outcome.

    One future per call, not per message: a batch request of 500 jobs schedules one wake-up.
    """

    messages: Sequence[tuple[str, NewJob]]
    future: asyncio.Future[list[str | None]]
    delay: float = 0.0
    outcomes: list[str | None] = field(init=False)
    settled: bytearray = field(init=False)
    left: int = field(init=False)
    size: int = field(init=False)  # bytes of the bodies in UTF-8

    def __post_init__(self) -> None:
        self.outcomes = [None] * len(self.messages)
        self.settled = bytearray(len(self.messages))
        self.left = len(self.messages)
        self.size = sum(utf8_size(body) for body, _ in self.messages)

    def outgoing(self) -> list[OutgoingMessage]:
        """The messages to send, each grouped by its job's tenant."""
        return [OutgoingMessage(body, self.delay, job.tenant) for body, job in self.messages]

    def settle(self, index: int, error: str | None) -> None:
        """Record message ``index``'s outcome (``None``: stored) once; answer the caller after the last."""
        if self.settled[index]:
            return
        self.settled[index] = 1
        self.outcomes[index] = error
        self.left -= 1
        if self.left == 0 and not self.future.done():
            self.future.set_result(self.outcomes)


#: One message of a send: ``(send, index)``.
_Item = tuple[_Send, int]


@dataclass
class _Lane:
    """The pending sends of one queue and its flush tasks in flight (at most :data:`FLUSHES_IN_FLIGHT`)."""

    pending: list[_Send] = field(default_factory=list)
    flushing: set[asyncio.Task[None]] = field(default_factory=set)


class SendBatcher:
    """Coalesces concurrent sends to the same queue into ``send_batch`` calls.

    Args:
        queue: The queue port.
        executor: Where the blocking ``send_batch`` calls run.
        recorder: Records each sent job's ``queued`` row after the fact.
        queue_and_jobs: Stores messages and rows in one commit instead, where it can.

    Must be used from one event loop (the one of the API process).
    """

    def __init__(
        self,
        queue: QueuePort,
        executor: Executor,
        recorder: QueuedRecorder,
        *,
        queue_and_jobs: QueueAndJobsPort | None = None,
    ) -> None:
        self._queue = queue
        self._executor = executor
        self._recorder = recorder
        self._together = queue_and_jobs
        self._limits: QueuePort | QueueAndJobsPort = queue_and_jobs or queue
        self._lanes: dict[str, _Lane] = {}

    async def send(self, queue_name: str, body: str, job: NewJob, *, delay: float = 0.0) -> None:
        """Send one message; return once the queue has stored it (with its job's row, if it can).

        Args:
            queue_name: The queue.
            body: The message body.
            job: Its job's ``queued`` row.
            delay: Seconds before the message becomes visible (at most 900).

        Raises:
            QueueUnavailable: The queue refused this message or could not be reached.
        """
        error = (await self.send_many(queue_name, [(body, job)], delay=delay))[0]
        if error is not None:
            raise QueueUnavailable(error)

    async def send_many(
        self, queue_name: str, messages: Sequence[tuple[str, NewJob]], *, delay: float = 0.0
    ) -> list[str | None]:
        """Send several ``(body, job)`` to one queue, each ``delay`` seconds from now; they share flushes.

        Returns:
            For each body, ``None`` if the queue stored it, else an error text.
        """
        if not messages:
            return []
        loop = asyncio.get_running_loop()
        send = _Send(messages, loop.create_future(), delay)
        lane = self._lanes.setdefault(queue_name, _Lane())
        lane.pending.append(send)
        if len(lane.flushing) < FLUSHES_IN_FLIGHT:
            lane.flushing.add(loop.create_task(self._drain(queue_name, lane)))
        return await send.future

    async def wait_idle(self) -> None:
        """Wait until no flush is in flight (for a graceful shutdown)."""
        while tasks := [task for lane in self._lanes.values() for task in lane.flushing]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _drain(self, queue_name: str, lane: _Lane) -> None:
        batch: list[_Send] = []
        try:
            while lane.pending:
                batch, lane.pending = lane.pending, []
                await self._flush(queue_name, batch)
        finally:
            current = asyncio.current_task()
            if current is not None:
                lane.flushing.discard(current)
            # Normally everything is settled; if the flush was cancelled, nobody may hang (what is
            # still pending is another flush's to send, if one is in flight).
            leftovers = batch
            if not lane.flushing:
                leftovers, lane.pending = batch + lane.pending, []
            _fail([(send, i) for send in leftovers for i in range(len(send.messages))], "send cancelled")

    async def _flush(self, queue_name: str, batch: list[_Send]) -> None:
        limits = self._limits
        count, most = max(1, limits.max_send_batch), limits.max_send_batch_bytes
        whole, split = _whole_sends(batch, count, most)
        calls = [self._send_whole(queue_name, sends) for sends in whole]
        if split:  # a send too large for one call: its messages go in chunks, each with its outcome
            items = [(send, index) for send in split for index in range(len(send.messages))]
            calls += [self._send_chunk(queue_name, chunk) for chunk in chunks_of(items, _body, count, most)]
        if len(calls) == 1:
            await calls[0]
        else:
            await asyncio.gather(*calls)

    async def _send_whole(self, queue_name: str, batch: list[_Send]) -> None:
        """Send every message of ``batch`` in one call; a send wholly stored is answered at once."""
        messages = [message for send in batch for message in send.outgoing()]
        pairs = [pair for send in batch for pair in send.messages]
        results = await self._store(queue_name, messages, pairs)
        if isinstance(results, str):
            _fail([(send, index) for send in batch for index in range(len(send.messages))], results)
            return
        start = 0
        for send in batch:
            outcomes = results[start : start + len(send.messages)]
            start += len(send.messages)
            if len(outcomes) == len(send.messages) and not any(outcomes):
                send.left = 0
                if not send.future.done():
                    send.future.set_result(send.outcomes)  # all None: every message stored
            else:
                _settle([(send, index) for index in range(len(send.messages))], outcomes)

    async def _send_chunk(self, queue_name: str, chunk: list[_Item]) -> None:
        pairs = [send.messages[index] for send, index in chunk]
        messages = [
            OutgoingMessage(body, send.delay, job.tenant)
            for (body, job), (send, _) in zip(pairs, chunk, strict=True)
        ]
        results = await self._store(queue_name, messages, pairs)
        if isinstance(results, str):
            _fail(chunk, results)
        else:
            _settle(chunk, results)

    async def _store(
        self, queue_name: str, messages: list[OutgoingMessage], pairs: list[tuple[str, NewJob]]
    ) -> Sequence[str | None] | str:
        """Send ``messages`` (with their jobs' rows, or the rows behind them): each one's outcome,
        or why none was sent."""
        loop = asyncio.get_running_loop()
        try:
            if self._together is not None:  # the rows go in the same commit
                jobs = [job for _, job in pairs]
                send = self._together.send_recorded
                results = await loop.run_in_executor(self._executor, send, queue_name, messages, jobs)
            else:
                results = await loop.run_in_executor(
                    self._executor, self._queue.send_batch, queue_name, messages
                )
        except QueueUnavailable as exc:
            return str(exc)
        except Exception as exc:  # an adapter bug must not hang or crash the requests
            _log.exception("send_batch to %s failed unexpectedly", queue_name)
            return f"send failed: {type(exc).__name__}"
        if self._together is None:  # write-behind of the rows of the messages the queue stored
            for (_, job), error in zip(pairs, results, strict=False):
                if error is None:
                    self._recorder.add(job)
        return results


def _whole_sends(batch: list[_Send], count: int, size: int) -> tuple[list[list[_Send]], list[_Send]]:
    """The sends that fit whole in one call, grouped in calls of at most ``count`` messages and
    ``size`` bytes, and those that do not."""
    calls: list[list[_Send]] = []
    current: list[_Send] = []
    messages = used = 0
    split = []
    for send in batch:
        if len(send.messages) > count or send.size > size:
            split.append(send)
            continue
        if current and (messages + len(send.messages) > count or used + send.size > size):
            calls.append(current)
            current, messages, used = [], 0, 0
        current.append(send)
        messages += len(send.messages)
        used += send.size
    if current:
        calls.append(current)
    return calls, split


def chunks_of(items: Sequence[_T], body: Callable[[_T], str], count: int, size: int) -> list[list[_T]]:
    """Consecutive chunks of at most ``count`` items and ``size`` bytes of ``body(item)`` (a larger
    body alone), as one batched send takes them."""
    chunks: list[list[_T]] = []
    current: list[_T] = []
    used = 0
    for item in items:
        length = utf8_size(body(item))
        if current and (len(current) == count or used + length > size):
            chunks.append(current)
            current, used = [], 0
        current.append(item)
        used += length
    if current:
        chunks.append(current)
    return chunks


def _body(item: _Item) -> str:
    send, index = item
    return send.messages[index][0]


def _settle(chunk: list[_Item], results: Sequence[str | None]) -> None:
    for position, (send, index) in enumerate(chunk):
        error = results[position] if position < len(results) else "no acknowledgement from the queue"
        send.settle(index, error)


def _fail(items: list[_Item], error: str) -> None:
    for send, index in items:
        if not send.future.done():
            send.settle(index, error)
