"""The RabbitMQ layout of a Tornado queue: its quorum queue, its dead-letter queue, its delay queues.

A queue ``Q`` is a durable quorum queue reached through the default exchange (routing key ``Q``, so
``send_task(..., queue=Q, declare=[])`` reaches it). RabbitMQ itself dead-letters a message to ``Q``'s
dead-letter queue when it is given back for the ``max_receive_count``-th time (``x-delivery-limit`` is
one less: a kill -9 on every delivery still ends there). A delayed send waits in a delay queue
``tornado.delay.Q.<seconds>`` whose message TTL is the delay rounded up to :data:`DELAY_BUCKETS`;
expired messages dead-letter back to ``Q``, and an unused delay queue vanishes (``x-expires``).
"""

from __future__ import annotations

import math
from typing import Any

from tornado_core.ports.queue import QueueSpec

#: The delays a send may wait, in seconds; a delay is rounded up to the next one.
DELAY_BUCKETS = (1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 450, 600, 900)
#: Milliseconds an unused delay queue outlives its last message.
DELAY_QUEUE_EXPIRES_MS = 600_000
#: The arguments of a dead-letter queue (and of any queue without a receive limit).
DEAD_LETTER_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum"}


def queue_arguments(spec: QueueSpec) -> dict[str, Any]:
    """The arguments of the quorum queue of ``spec`` (RabbitMQ refuses a redeclaration with others)."""
    arguments: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": spec.dead_letter_name,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    if spec.max_receive_count > 0:
        arguments["x-delivery-limit"] = spec.max_receive_count - 1
    return arguments


def delay_bucket(delay: float) -> int:
    """The delay queue's seconds for a send delayed ``delay`` seconds (> 0; at most 900)."""
    wanted = math.ceil(delay - 1e-6)
    return next((bucket for bucket in DELAY_BUCKETS if bucket >= wanted), DELAY_BUCKETS[-1])


def delay_queue(queue: str, seconds: int) -> str:
    """The name of ``queue``'s delay queue of ``seconds``."""
    return f"tornado.delay.{queue}.{seconds}"


def delay_queues(queue: str) -> list[str]:
    """Every delay queue ``queue`` may have."""
    return [delay_queue(queue, seconds) for seconds in DELAY_BUCKETS]


def delay_arguments(queue: str, seconds: int) -> dict[str, Any]:
    """The arguments of ``queue``'s delay queue of ``seconds``: a TTL, dead-lettering back to ``queue``."""
    return {
        "x-queue-type": "quorum",
        "x-message-ttl": seconds * 1000,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-expires": seconds * 1000 + DELAY_QUEUE_EXPIRES_MS,
    }
