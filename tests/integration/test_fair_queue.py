"""The PostgreSQL queue's fair receive: messages handed out in turns across their groups (tenants)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tornado_core.adapters.postgres import PostgresPool, PostgresQueue
from tornado_core.ports.queue import OutgoingMessage, QueueSpec


@pytest.fixture
def queue(postgres_url: str) -> Iterator[PostgresQueue]:
    pool = PostgresPool(postgres_url, max_size=2)
    yield PostgresQueue(pool)
    pool.close()


def spec(fair: bool) -> QueueSpec:
    name = f"fair-test-{uuid.uuid4().hex[:8]}"
    return QueueSpec(name=name, dead_letter_name=f"{name}-dlq", max_receive_count=3, visibility_timeout=30,
                     fair=fair)  # fmt: skip


def send(queue: PostgresQueue, name: str, group: str | None, count: int) -> None:
    queue.send_batch(name, [OutgoingMessage(f"{group}-{n}", group=group) for n in range(count)])


def bodies(queue: PostgresQueue, name: str, count: int) -> list[str]:
    return [m.body for m in queue.receive(name, max_messages=count, wait_seconds=0, visibility_timeout=30)]


def test_a_fair_queue_takes_turns_across_groups(queue: PostgresQueue) -> None:
    fair = spec(fair=True)
    queue.ensure_queue(fair)
    send(queue, fair.name, "big", 50)
    send(queue, fair.name, "small", 3)
    send(queue, fair.name, None, 1)  # a message without a group is a turn of its own
    first = bodies(queue, fair.name, 6)
    assert sorted(first) == sorted(["big-0", "big-1", "small-0", "small-1", "None-0", "big-2"])
    assert sorted(bodies(queue, fair.name, 2)) == ["big-3", "small-2"]
    assert len(bodies(queue, fair.name, 100)) == 46  # the rest (54 - 8), each once


def test_a_queue_that_is_not_fair_hands_out_the_oldest_first(queue: PostgresQueue) -> None:
    plain = spec(fair=False)
    queue.ensure_queue(plain)
    send(queue, plain.name, "big", 50)
    send(queue, plain.name, "small", 3)
    assert bodies(queue, plain.name, 4) == ["big-0", "big-1", "big-2", "big-3"]
