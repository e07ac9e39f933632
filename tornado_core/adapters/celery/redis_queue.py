"""The queue port on a Redis broker, in Celery's message format, with SQS's visibility semantics."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
import redis.exceptions

from tornado_core.adapters.celery import scripts
from tornado_core.adapters.celery.polling import long_poll
from tornado_core.adapters.celery.protocol import decode_message, encode_message
from tornado_core.errors import EnvelopeInvalid, QueueUnavailable
from tornado_core.ports.queue import OutgoingMessage, QueueDepth, QueueSpec, ReceivedMessage

#: The hash of every queue's settings (its max receive count); a queue exists when it has an entry.
SETTINGS_KEY = "tornado:queues"


class RedisQueue:
    """:class:`tornado_core.ports.queue.QueuePort` on Redis, Celery's broker list as its intake.

    Messages sent at once go onto the list Celery's Redis transport uses for the queue (so
    ``send_task`` from a Celery app lands in the same place); each receive moves the list into
    Tornado's sorted set of visibility times, which gives SQS's semantics: a received message is
    hidden until its visibility timeout, its receive count grows with each delivery, and past the
    queue's ``max_receive_count`` it moves to the dead-letter queue. Times are the Redis server's.

    Args:
        url: ``redis://[:password@]host:port/db``.
        timeout: Seconds a Redis call may take (connect and read).
    """

    max_send_batch = 100
    max_send_batch_bytes = 8 * 1024 * 1024
    max_receive_batch = 10

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self._url = url
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._send = self._client.register_script(scripts.SEND)
        self._receive = self._client.register_script(scripts.RECEIVE)
        self._delete = self._client.register_script(scripts.DELETE)
        self._change = self._client.register_script(scripts.CHANGE_VISIBILITY)
        self._depth = self._client.register_script(scripts.DEPTH)

    def ensure_queue(self, spec: QueueSpec) -> None:
        """Record the queue and its DLQ, and bind each to Celery's exchange of its name; idempotent."""
        with self._call(spec.name):
            pipe = self._client.pipeline()
            pipe.hset(SETTINGS_KEY, spec.name, _settings(spec.max_receive_count, spec.dead_letter_name))
            pipe.hsetnx(SETTINGS_KEY, spec.dead_letter_name, _settings(0, None))
            for name in (spec.name, spec.dead_letter_name):
                pipe.sadd(f"_kombu.binding.{name}", f"{name}\x06\x16\x06\x16{name}")
            pipe.execute()

    def delete_queue(self, name: str) -> None:
        """Delete a queue, its messages and its binding; a missing queue is not an error."""
        with self._call(name):
            pipe = self._client.pipeline()
            pipe.delete(name, *_keys(name).values(), f"_kombu.binding.{name}")
            pipe.hdel(SETTINGS_KEY, name)
            pipe.execute()

    def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        """Store the messages in one atomic call (all or none); delayed ones wait in the sorted set."""
        if not messages:
            return []
        args: list[Any] = [queue]
        for message in messages:
            args += [round(max(0.0, message.delay) * 1000), encode_message(message.body, queue)]
        keys = _keys(queue)
        with self._call(queue):
            self._send(keys=[SETTINGS_KEY, queue, keys["vis"], keys["body"], keys["seq"]], args=args)
        return [None] * len(messages)

    def receive(
        self, queue: str, *, max_messages: int, wait_seconds: float, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        """Look for visible messages until some come or ``wait_seconds`` pass.

        Between two looks it waits on Celery's list of the queue (up to 0.2 s), so a message sent
        meanwhile wakes it at once; delayed and returned messages are seen at the next look.
        """
        most = max(1, min(max_messages, self.max_receive_batch))
        return long_poll(
            lambda: self._receive_once(queue, most, visibility_timeout),
            wait_seconds,
            pause=lambda seconds: self._wait_for_send(queue, seconds),
        )

    def _wait_for_send(self, queue: str, seconds: float) -> None:
        """Block until Celery's list of ``queue`` holds a message, at most ``seconds``.

        ``BLMOVE Q Q RIGHT RIGHT`` takes the oldest message and puts it back where it was, in one
        step: it changes nothing, and returns as soon as the list is not empty.
        """
        with self._call(queue):
            # redis-py types the timeout as whole seconds; Redis 6+ takes a fraction, which it passes on
            self._client.blmove(queue, queue, max(seconds, 0.001), "RIGHT", "RIGHT")  # type: ignore[arg-type]

    def _receive_once(self, queue: str, most: int, visibility_timeout: float) -> list[ReceivedMessage]:
        keys = _keys(queue)
        with self._call(queue):
            flat = self._receive(
                keys=[SETTINGS_KEY, queue, keys["vis"], keys["body"], keys["count"], keys["seq"]],
                args=[queue, most, round(max(0.0, visibility_timeout) * 1000)],
            )
        return [_received(flat[i], int(flat[i + 1]), flat[i + 2]) for i in range(0, len(flat), 3)]

    def delete(self, queue: str, receipts: Sequence[str]) -> None:
        """Acknowledge delivered messages; receipts of a later delivery's message are ignored."""
        if not receipts:
            return
        keys = _keys(queue)
        args = [part for receipt in receipts for part in _receipt(receipt)]
        with self._call(queue):
            self._delete(keys=[keys["vis"], keys["body"], keys["count"]], args=args)

    def change_visibility(self, queue: str, receipt: str, timeout: float) -> None:
        """Hide a delivered message ``timeout`` more seconds (0: visible at once).

        Raises:
            QueueUnavailable: The receipt is stale (the message was delivered again, or deleted).
        """
        keys = _keys(queue)
        number, count = _receipt(receipt)
        with self._call(queue):
            self._change(
                keys=[keys["vis"], keys["count"]], args=[number, count, round(max(0.0, timeout) * 1000)]
            )

    def depth(self, queue: str) -> QueueDepth:
        """Exact visible (Celery's list included), in-flight and delayed counts."""
        keys = _keys(queue)
        with self._call(queue):
            visible, in_flight, delayed = self._depth(
                keys=[SETTINGS_KEY, queue, keys["vis"], keys["count"]], args=[queue]
            )
        return QueueDepth(visible=int(visible), in_flight=int(in_flight), delayed=int(delayed))

    def ping(self) -> None:
        """Raise ``QueueUnavailable`` unless Redis answers PING."""
        with self._call("(ping)"):
            self._client.ping()

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    @contextmanager
    def _call(self, queue: str) -> Iterator[None]:
        """Translate redis-py failures into :class:`QueueUnavailable`."""
        try:
            yield
        except redis.exceptions.ResponseError as exc:
            if "TORNADO_MISSING_QUEUE" in str(exc):
                raise QueueUnavailable(f"queue {queue} does not exist") from exc
            if "TORNADO_STALE_RECEIPT" in str(exc):
                raise QueueUnavailable(f"the receipt is stale (queue {queue})") from exc
            raise QueueUnavailable(f"Redis refused the call on queue {queue}: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise QueueUnavailable(
                f"Redis at {_where(self._url)} is unreachable (queue {queue}): {exc}"
            ) from exc


def _keys(queue: str) -> dict[str, str]:
    return {part: f"tornado:{queue}:{part}" for part in ("vis", "body", "count", "seq")}


def _settings(max_receive_count: int, dead_letter: str | None) -> str:
    """A queue's entry in :data:`SETTINGS_KEY` (0 receives: no limit, as for a DLQ)."""
    return json.dumps({"max_receive_count": max_receive_count, "dead_letter": dead_letter})


def _receipt(receipt: str) -> tuple[str, str]:
    number, _, count = receipt.partition(":")
    return number, count


def _received(number: bytes, count: int, raw: bytes) -> ReceivedMessage:
    text = raw.decode("utf-8", errors="replace")
    try:
        message = decode_message(text)
        message_id, body = message.message_id or number.decode(), message.body
    except EnvelopeInvalid:  # not a Tornado message: handed over as it is, so the worker dead-letters it
        message_id, body = number.decode(), text
    return ReceivedMessage(
        message_id=message_id, body=body, receipt=f"{number.decode()}:{count}", receive_count=count
    )


def _where(url: str) -> str:
    """The host and port of a URL, without its password."""
    return url.partition("://")[2].rpartition("@")[2]
