"""The queue port on RabbitMQ (AMQP), in Celery's message format, with SQS's visibility emulated.

A received message stays unacknowledged on this process's connection (RabbitMQ gives it back if the
process dies) and the adapter keeps its visibility deadline: a visibility change moves the deadline,
a change to 0 or a passed deadline gives it back at once (``basic.reject`` with requeue), a delete
acknowledges it. Each give-back raises the quorum queue's ``x-delivery-count``, which is the receive
count; RabbitMQ dead-letters the message past the queue's limit. The layout is in ``amqp_layout``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import amqp  # type: ignore[import-untyped]
import amqp.exceptions  # type: ignore[import-untyped]

from tornado_core.adapters.celery.amqp_layout import (
    DEAD_LETTER_ARGUMENTS,
    delay_arguments,
    delay_bucket,
    delay_queue,
    delay_queues,
    queue_arguments,
)
from tornado_core.adapters.celery.amqp_link import AmqpLink, management_url_of
from tornado_core.adapters.celery.amqp_stats import ManagementApi
from tornado_core.adapters.celery.polling import long_poll
from tornado_core.adapters.celery.protocol import decode_amqp, encode_amqp, kombu_json
from tornado_core.errors import EnvelopeInvalid, QueueUnavailable
from tornado_core.ports.queue import OutgoingMessage, QueueDepth, QueueSpec, ReceivedMessage

#: Seconds between two sweeps of the held messages whose visibility timeout passed.
SWEEP_INTERVAL = 0.25
#: Seconds a depth waits for RabbitMQ to forget the holders of messages just settled.
SETTLE_WAIT = 0.3


@dataclass
class _Held:
    """A message this process holds (unacknowledged) until its visibility deadline."""

    queue: str
    tag: int
    deadline: float


class AmqpQueue:
    """:class:`tornado_core.ports.queue.QueuePort` on RabbitMQ quorum queues.

    Args:
        url: ``amqp://user:pass@host:port/vhost`` (``amqps://`` for TLS; ``//``: the vhost ``/``).
        management_url: The management HTTP API (``http://user:pass@host:15672``), for the in-flight
            count; by default port 15672 of the broker's host with the broker's credentials.
        timeout: Seconds to connect, and to wait for any answer (a confirm included).
    """

    max_send_batch = 100
    max_send_batch_bytes = 8 * 1024 * 1024
    max_receive_batch = 10

    def __init__(self, url: str, *, management_url: str | None = None, timeout: float = 5.0) -> None:
        self._link = AmqpLink(url, timeout=timeout)
        self._stats = ManagementApi(
            management_url or management_url_of(url), vhost_path=self._link.vhost_path, timeout=timeout
        )
        self._held: dict[str, _Held] = {}
        self._generation = 0
        self._closed = threading.Event()
        self._sweeper: threading.Thread | None = None

    def ensure_queue(self, spec: QueueSpec) -> None:
        """Declare the queue and its DLQ (durable quorum queues); idempotent.

        Raises:
            QueueUnavailable: The queue exists with other arguments (another receive limit or DLQ).
        """
        with self._use(f"declaring queue {spec.name}"):
            channel = self._link.control()
            channel.queue_declare(
                spec.dead_letter_name, durable=True, auto_delete=False, arguments=DEAD_LETTER_ARGUMENTS
            )
            channel.queue_declare(spec.name, durable=True, auto_delete=False, arguments=queue_arguments(spec))

    def delete_queue(self, name: str) -> None:
        """Delete a queue, its delay queues and their messages; a missing queue is not an error."""
        with self._use(f"deleting queue {name}"):
            channel = self._link.control()
            for queue in (name, *delay_queues(name)):
                channel.queue_delete(queue)
            for receipt in [r for r, held in self._held.items() if held.queue == name]:
                del self._held[receipt]

    def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        """Publish the messages and wait for RabbitMQ's confirms; delayed ones go to a delay queue."""
        if not messages:
            return []
        with self._use(f"queue {queue}"):
            channel = self._link.control()
            channel.queue_declare(queue, passive=True)
            declared: set[str] = set()
            outgoing: list[tuple[str, amqp.Message]] = []
            for message in messages:
                target = queue
                if message.delay > 0:
                    seconds = delay_bucket(message.delay)
                    target = delay_queue(queue, seconds)
                    if target not in declared:
                        channel.queue_declare(
                            target, durable=True, auto_delete=False, arguments=delay_arguments(queue, seconds)
                        )
                        declared.add(target)
                outgoing.append((target, _amqp_message(message.body)))
            return self._link.publish(outgoing)

    def receive(
        self, queue: str, *, max_messages: int, wait_seconds: float, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        """Look for visible messages until some come or ``wait_seconds`` pass (pauses up to 0.2 s)."""
        most = max(1, min(max_messages, self.max_receive_batch))
        return long_poll(lambda: self._receive_once(queue, most, max(0.0, visibility_timeout)), wait_seconds)

    def _receive_once(self, queue: str, most: int, visibility_timeout: float) -> list[ReceivedMessage]:
        found: list[ReceivedMessage] = []
        with self._use(f"queue {queue}"):
            self._link.control().queue_declare(queue, passive=True)
            with self._link.call(f"receiving from queue {queue}", holding=True):
                channel = self._holding()
                while len(found) < most:
                    message = channel.basic_get(queue)
                    if message is None:
                        break
                    received = self._received(queue, message)
                    deadline = time.monotonic() + visibility_timeout
                    self._held[received.receipt] = _Held(queue, message.delivery_tag, deadline)
                    found.append(received)
        if found:
            self._start_sweeper()
        return found

    def delete(self, queue: str, receipts: Sequence[str]) -> None:
        """Acknowledge delivered messages; stale receipts are ignored (RabbitMQ gave those back)."""
        if not receipts:
            return
        with self._use(f"queue {queue}"), self._link.call(f"acknowledging on queue {queue}", holding=True):
            for receipt in receipts:
                held = self._held.pop(receipt, None)
                if held is not None:
                    self._holding().basic_ack(held.tag)

    def change_visibility(self, queue: str, receipt: str, timeout: float) -> None:
        """Hide a delivered message ``timeout`` more seconds (0: give it back at once).

        Raises:
            QueueUnavailable: The receipt is stale (the message was given back, or its connection lost).
        """
        with self._use(f"queue {queue}"):
            held = self._held.get(receipt)
            if held is None or held.queue != queue:
                raise QueueUnavailable(f"the receipt is stale (queue {queue})")
            if timeout > 0:
                held.deadline = time.monotonic() + timeout
                return
            with self._link.call(f"giving back a message of queue {queue}", holding=True):
                del self._held[receipt]
                self._holding().basic_reject(held.tag, requeue=True)

    def depth(self, queue: str) -> QueueDepth:
        """Visible and delayed counts (exact), in flight (exact unless other live processes hold some).

        Messages held by other processes are counted from the management API's statistics, which lag.
        """
        with self._use(f"queue {queue}"):
            visible, holders = self._ready(queue)
            own = sum(1 for held in self._held.values() if held.queue == queue)
            delayed = sum(self._delayed(name) for name in delay_queues(queue))
        others = holders - (1 if own else 0)
        deadline = time.monotonic() + SETTLE_WAIT
        while others > 0 and time.monotonic() < deadline:  # a give-back or ack just sent may not count yet
            time.sleep(0.02)
            with self._use(f"queue {queue}"):
                visible, holders = self._ready(queue)
                own = sum(1 for held in self._held.values() if held.queue == queue)
            others = holders - (1 if own else 0)
        in_flight = own if others <= 0 else max(own, self._stats.unacknowledged(queue))
        return QueueDepth(visible=visible, in_flight=in_flight, delayed=delayed)

    def ping(self) -> None:
        """Raise ``QueueUnavailable`` unless RabbitMQ accepts a connection and opens a channel."""
        with self._use("ping"):
            self._link.control()

    def close(self) -> None:
        """Close the connection (RabbitMQ gives back every message still held) and stop the sweeper."""
        self._closed.set()
        with self._link.lock:
            self._held.clear()
            self._link.close()
        if self._sweeper is not None and self._sweeper is not threading.current_thread():
            self._sweeper.join(timeout=5)

    def _ready(self, queue: str) -> tuple[int, int]:
        """The queue's ready messages and how many channels hold some of its messages (both live)."""
        answer = self._link.control().queue_declare(queue, passive=True)
        return int(answer.message_count), int(answer.consumer_count)

    def _delayed(self, name: str) -> int:
        try:
            return int(self._link.control().queue_declare(name, passive=True).message_count)
        except amqp.exceptions.NotFound:
            self._link.drop_channel(holding=False)
            return 0  # no such delay queue (none was needed, or it expired unused)

    @contextmanager
    def _use(self, what: str) -> Iterator[None]:
        """Hold the lock, translate failures, forget receipts of a lost connection, give back expired ones."""
        with self._link.lock, self._link.call(what):
            if not self._link.holding_open():
                self._held.clear()
            self._give_back_expired()
            yield

    def _holding(self) -> Any:
        channel = self._link.holding()
        if self._link.generation != self._generation:
            self._held.clear()
            self._generation = self._link.generation
        return channel

    def _give_back_expired(self) -> None:
        now = time.monotonic()
        expired = [receipt for receipt, held in self._held.items() if held.deadline <= now]
        if not expired:
            return
        with self._link.call("giving back messages whose visibility timeout passed", holding=True):
            for receipt in expired:
                self._holding().basic_reject(self._held.pop(receipt).tag, requeue=True)

    def _start_sweeper(self) -> None:
        """Give back expired messages even while no call comes (a daemon thread, stopped by close)."""
        with self._link.lock:
            if self._sweeper is not None or self._closed.is_set():
                return
            self._sweeper = threading.Thread(target=self._sweep, name="tornado-amqp-visibility", daemon=True)
            self._sweeper.start()

    def _sweep(self) -> None:
        while not self._closed.wait(SWEEP_INTERVAL):
            if not self._held:
                continue
            try:
                with self._use("visibility sweep"):
                    pass
            except QueueUnavailable:
                continue  # the next call reconnects; RabbitMQ gave the messages back

    def _received(self, queue: str, message: amqp.Message) -> ReceivedMessage:
        raw = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        headers = dict(message.headers or {})
        properties = {k: v for k, v in message.properties.items() if k != "application_headers"}
        count = int(headers.get("x-delivery-count") or 0) + 1
        receipt = f"{self._generation}:{message.delivery_tag}"
        try:
            celery = decode_amqp(raw, headers, properties)
            return ReceivedMessage(celery.message_id or _fallback_id(raw), celery.body, receipt, count)
        except EnvelopeInvalid:  # not Tornado's: handed over in kombu's JSON (read_task reads it)
            celery_headers = {k: v for k, v in headers.items() if not k.startswith("x-")}
            message_id = str(headers.get("id") or properties.get("correlation_id") or _fallback_id(raw))
            body = kombu_json(raw, celery_headers, properties, queue)
            return ReceivedMessage(message_id, body, receipt, count)


def _amqp_message(body: str) -> amqp.Message:
    """The persistent AMQP message of ``tornado.run(body)``."""
    encoded = encode_amqp(body)
    return amqp.Message(encoded.body, application_headers=encoded.headers, **encoded.properties)


def _fallback_id(raw: bytes) -> str:
    """An id for a message that carries none: the digest of its body, the same on every delivery."""
    return hashlib.sha256(raw).hexdigest()[:32]
