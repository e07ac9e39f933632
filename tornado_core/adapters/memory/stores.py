"""In-memory adapters with the same semantics as the real ones, for fast unit tests.

They are never the only test of a feature: the contract suite runs the same
assertions against PostgreSQL and the SQS-compatible endpoint.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tornado_core.errors import ObjectStoreError, QueueUnavailable
from tornado_core.ports.queue import OutgoingMessage, QueueDepth, QueueSpec, ReceivedMessage


@dataclass
class _Message:
    message_id: str
    body: str
    visible_at: float
    sent_seq: int
    receive_count: int = 0
    receipt: str | None = None


@dataclass
class _Queue:
    spec: QueueSpec | None
    messages: list[_Message] = field(default_factory=list)


class MemoryQueue:
    """A thread-safe queue with SQS visibility, receive-count and redrive semantics."""

    max_send_batch = 10
    max_send_batch_bytes = 1_048_576
    max_receive_batch = 10

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        self._cond = threading.Condition()
        self._seq = 0
        self.down = False  # tests flip this to simulate an outage

    def ensure_queue(self, spec: QueueSpec) -> None:
        with self._cond:
            self._queues.setdefault(spec.dead_letter_name, _Queue(spec=None))
            self._queues.setdefault(spec.name, _Queue(spec=spec)).spec = spec

    def delete_queue(self, name: str) -> None:
        with self._cond:
            self._queues.pop(name, None)

    def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        with self._cond:
            target = self._get(queue)
            now = self._clock()
            for message in messages:
                self._seq += 1
                target.messages.append(
                    _Message(uuid.uuid4().hex, message.body, now + message.delay, self._seq)
                )
            self._cond.notify_all()
        return [None] * len(messages)

    def receive(
        self, queue: str, *, max_messages: int, wait_seconds: float, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        deadline = self._clock() + wait_seconds
        with self._cond:
            while True:
                got = self._take(self._get(queue), max_messages, visibility_timeout)
                remaining = deadline - self._clock()
                if got or remaining <= 0:
                    return got
                self._cond.wait(timeout=min(remaining, 0.05))

    def delete(self, queue: str, receipts: Sequence[str]) -> None:
        with self._cond:
            target = self._get(queue)
            wanted = set(receipts)
            target.messages = [m for m in target.messages if m.receipt not in wanted]

    def change_visibility(self, queue: str, receipt: str, timeout: float) -> None:
        with self._cond:
            for message in self._get(queue).messages:
                if message.receipt == receipt:
                    message.visible_at = self._clock() + timeout
                    self._cond.notify_all()
                    return
            raise QueueUnavailable(f"receipt {receipt!r} is not valid on {queue}")

    def depth(self, queue: str) -> QueueDepth:
        with self._cond:
            now = self._clock()
            visible = in_flight = delayed = 0
            for message in self._get(queue).messages:
                if message.visible_at <= now:
                    visible += 1
                elif message.receive_count:
                    in_flight += 1
                else:
                    delayed += 1
            return QueueDepth(visible, in_flight, delayed)

    def ping(self) -> None:
        if self.down:
            raise QueueUnavailable("memory queue is down")

    def receive_counts(self, queue: str) -> list[int]:
        """How often each message of ``queue`` was delivered (for tests)."""
        with self._cond:
            return [m.receive_count for m in self._get(queue).messages]

    def _get(self, name: str) -> _Queue:
        self.ping()
        try:
            return self._queues[name]
        except KeyError:
            raise QueueUnavailable(f"queue {name} does not exist") from None

    def _take(self, queue: _Queue, limit: int, visibility: float) -> list[ReceivedMessage]:
        now = self._clock()
        got: list[ReceivedMessage] = []
        for message in sorted(queue.messages, key=lambda m: m.sent_seq):
            if len(got) >= limit:
                break
            if message.visible_at > now:
                continue
            spec = queue.spec
            if spec is not None and message.receive_count >= spec.max_receive_count:
                queue.messages.remove(message)
                self._seq += 1
                self._queues[spec.dead_letter_name].messages.append(
                    _Message(message.message_id, message.body, now, self._seq)
                )
                continue
            message.receive_count += 1
            message.receipt = uuid.uuid4().hex
            message.visible_at = now + visibility
            got.append(
                ReceivedMessage(message.message_id, message.body, message.receipt, message.receive_count)
            )
        return got


class MemoryObjectStore:
    """Objects in a dict."""

    def __init__(self, bucket: str = "tornado") -> None:
        self.bucket = bucket
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        with self._lock:
            self._objects[key] = bytes(data)

    def get(self, key: str) -> bytes:
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise ObjectStoreError(f"s3://{self.bucket}/{key} does not exist") from None

    def read_chunks(self, key: str, *, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        data = self.get(key)
        for start in range(0, len(data), chunk_bytes):
            yield data[start : start + chunk_bytes]

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._objects

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(prefix))

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A ``memory://`` link naming the object (nothing can fetch it; for unit tests)."""
        if not self.exists(key):
            raise ObjectStoreError(f"s3://{self.bucket}/{key} does not exist")
        return f"memory://{self.bucket}/{key}?expires_in={expires_in}"

    @contextlib.contextmanager
    def upload(self, key: str, *, content_type: str = "application/octet-stream") -> Iterator[io.BytesIO]:
        """Collects the bytes; the object appears when the block ends without an error."""
        buffer = io.BytesIO()
        yield buffer
        self.put(key, buffer.getvalue(), content_type=content_type)


class MemoryRateLimiter:
    """Token buckets counted in this process only, on an injectable clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, refreshed at)
        self._lock = threading.Lock()

    def try_take(self, key: str, *, per_second: float, capacity: float) -> float:
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * per_second)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return (1 - tokens) / per_second
            self._buckets[key] = (tokens - 1, now)
            return 0.0


class MemoryLimiter:
    """Per-task slots counted in this process only."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def try_acquire(self, task: str, limit: int) -> contextlib.AbstractContextManager[None] | None:
        with self._lock:
            if self._held.get(task, 0) >= limit:
                return None
            self._held[task] = self._held.get(task, 0) + 1
        return self._release(task)

    def try_acquire_many(
        self, task: str, limit: int, count: int
    ) -> list[contextlib.AbstractContextManager[None]]:
        slots = []
        for _ in range(count):
            slot = self.try_acquire(task, limit)
            if slot is None:
                break
            slots.append(slot)
        return slots

    def release_many(self, slots: Sequence[contextlib.AbstractContextManager[None]]) -> None:
        for slot in slots:
            slot.__exit__(None, None, None)

    @contextlib.contextmanager
    def _release(self, task: str) -> Iterator[None]:
        try:
            yield
        finally:
            with self._lock:
                self._held[task] -= 1

    def held(self, task: str) -> int:
        """Slots currently taken for ``task``."""
        with self._lock:
            return self._held.get(task, 0)
