"""A Django shop's Celery app and Tornado share the Redis broker: ``send_task`` jobs reach Tornado's queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from tornado_core.adapters.celery.protocol import TASK_NAME, decode_message
from tornado_core.adapters.celery.redis_queue import RedisQueue
from tornado_core.message import Envelope
from tornado_core.ports.queue import QueueSpec

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(redis_url: str) -> Iterator[tuple[RedisQueue, QueueSpec]]:
    adapter = RedisQueue(redis_url)
    name = f"celery-{uuid.uuid4().hex[:8]}"
    spec = QueueSpec(name=name, dead_letter_name=name + "-dlq", max_receive_count=1, visibility_timeout=30)
    adapter.ensure_queue(spec)
    yield adapter, spec
    adapter.delete_queue(spec.name)
    adapter.delete_queue(spec.dead_letter_name)
    adapter.close()


def test_send_task_from_a_celery_app_is_received_as_the_envelope(
    queue: tuple[RedisQueue, QueueSpec], redis_url: str
) -> None:
    adapter, spec = queue
    envelope = Envelope(job_id=f"j-{uuid.uuid4().hex}", task="demo.echo", version="1.0.0", tenant="shop")
    app = Celery("django_shop", broker=redis_url, set_as_current=False)
    result = app.send_task(TASK_NAME, args=[json.loads(envelope.to_json())], queue=spec.name)
    assert adapter.depth(spec.name).visible == 1
    (message,) = adapter.receive(spec.name, max_messages=10, wait_seconds=2, visibility_timeout=30)
    assert Envelope.from_json(message.body) == envelope
    assert (message.message_id, message.receive_count) == (result.id, 1)
    adapter.delete(spec.name, [message.receipt])
    assert adapter.depth(spec.name).total == 0


def test_a_poison_message_ends_on_the_dead_letter_list_in_celerys_format(
    queue: tuple[RedisQueue, QueueSpec], redis_url: str
) -> None:
    adapter, spec = queue
    app = Celery("django_shop", broker=redis_url, set_as_current=False)
    app.send_task(TASK_NAME, args=["not an envelope"], queue=spec.name)
    (first,) = adapter.receive(spec.name, max_messages=1, wait_seconds=2, visibility_timeout=30)
    adapter.change_visibility(spec.name, first.receipt, 0)  # a failed attempt, shown again
    assert adapter.receive(spec.name, max_messages=1, wait_seconds=0, visibility_timeout=30) == []
    assert adapter.depth(spec.dead_letter_name).visible == 1
    (raw,) = redis.Redis.from_url(redis_url).lrange(spec.dead_letter_name, 0, -1)
    assert decode_message(raw).body == "not an envelope"
