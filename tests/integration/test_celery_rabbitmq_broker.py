"""A Django shop's Celery app and Tornado share RabbitMQ: ``send_task`` jobs reach Tornado's queue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery

from tornado_core.adapters.celery.amqp_queue import AmqpQueue
from tornado_core.adapters.celery.protocol import TASK_NAME, read_task
from tornado_core.devstack.brokers import RabbitMQUrls
from tornado_core.local_machine import wait_until
from tornado_core.message import Envelope
from tornado_core.ports.queue import QueueSpec

pytestmark = pytest.mark.integration

#: A process that takes one message, says so, and waits to be killed (a handler crashing its worker).
_TAKE_AND_HANG = """
import sys, time
from tornado_core.adapters.celery.amqp_queue import AmqpQueue
queue = AmqpQueue(sys.argv[1], management_url=sys.argv[2])
got = queue.receive(sys.argv[3], max_messages=1, wait_seconds=10, visibility_timeout=300)
print(len(got), flush=True)
time.sleep(300)
"""


@pytest.fixture
def queue(rabbitmq_broker: RabbitMQUrls) -> Iterator[tuple[AmqpQueue, QueueSpec]]:
    adapter = AmqpQueue(rabbitmq_broker.url, management_url=rabbitmq_broker.management_url)
    name = f"celery-{uuid.uuid4().hex[:8]}"
    spec = QueueSpec(name=name, dead_letter_name=name + "-dlq", max_receive_count=2, visibility_timeout=30)
    adapter.ensure_queue(spec)
    yield adapter, spec
    adapter.delete_queue(spec.name)
    adapter.delete_queue(spec.dead_letter_name)
    adapter.close()


def _shop(broker: RabbitMQUrls) -> Celery:
    return Celery("django_shop", broker=broker.url, set_as_current=False)


def test_send_task_from_a_celery_app_is_received_as_the_envelope(
    queue: tuple[AmqpQueue, QueueSpec], rabbitmq_broker: RabbitMQUrls
) -> None:
    adapter, spec = queue
    envelope = Envelope(job_id=f"j-{uuid.uuid4().hex}", task="demo.echo", version="1.0.0", tenant="shop")
    # declare=[]: the queue is Tornado's (a quorum queue); Celery's own declaration would differ
    result = _shop(rabbitmq_broker).send_task(
        TASK_NAME, args=[json.loads(envelope.to_json())], queue=spec.name, declare=[]
    )
    (message,) = adapter.receive(spec.name, max_messages=10, wait_seconds=2, visibility_timeout=30)
    assert Envelope.from_json(message.body) == envelope
    assert (message.message_id, message.receive_count) == (result.id, 1)
    adapter.delete(spec.name, [message.receipt])
    assert adapter.depth(spec.name).total == 0


def test_celerys_own_declaration_of_the_queue_is_refused_by_rabbitmq(
    queue: tuple[AmqpQueue, QueueSpec], rabbitmq_broker: RabbitMQUrls
) -> None:
    adapter, spec = queue
    with pytest.raises(Exception, match="PRECONDITION_FAILED"):
        _shop(rabbitmq_broker).send_task(TASK_NAME, args=["{}"], queue=spec.name)
    assert adapter.depth(spec.name).total == 0


def test_another_task_is_handed_over_as_kombu_json_that_read_task_reads(
    queue: tuple[AmqpQueue, QueueSpec], rabbitmq_broker: RabbitMQUrls
) -> None:
    adapter, spec = queue
    sent = _shop(rabbitmq_broker).send_task(
        "tornado.submit", args=["demo.echo"], kwargs={"payload": {"n": 1}}, queue=spec.name, declare=[]
    )
    (message,) = adapter.receive(spec.name, max_messages=1, wait_seconds=2, visibility_timeout=30)
    task = read_task(message.body)
    assert (task.name, task.task_id, task.args, task.kwargs) == (
        "tornado.submit", sent.id, ["demo.echo"], {"payload": {"n": 1}},
    )  # fmt: skip
    assert message.message_id == sent.id


def test_a_poison_message_given_back_max_receive_count_times_ends_in_the_dlq(
    queue: tuple[AmqpQueue, QueueSpec], rabbitmq_broker: RabbitMQUrls
) -> None:
    adapter, spec = queue
    _shop(rabbitmq_broker).send_task("shop.send_invoice", args=[42], queue=spec.name, declare=[])
    for attempt in range(1, spec.max_receive_count + 1):
        (message,) = adapter.receive(spec.name, max_messages=1, wait_seconds=2, visibility_timeout=30)
        assert message.receive_count == attempt
        adapter.change_visibility(spec.name, message.receipt, 0)  # a failed attempt, shown again
    assert adapter.receive(spec.name, max_messages=1, wait_seconds=0, visibility_timeout=30) == []
    (dead,) = adapter.receive(spec.dead_letter_name, max_messages=1, wait_seconds=5, visibility_timeout=30)
    assert (read_task(dead.body).name, read_task(dead.body).args) == ("shop.send_invoice", [42])


def test_a_crash_loop_ends_in_the_dlq_server_side(
    queue: tuple[AmqpQueue, QueueSpec], rabbitmq_broker: RabbitMQUrls
) -> None:
    adapter, spec = queue
    envelope = Envelope(job_id=f"j-{uuid.uuid4().hex}", task="demo.crash", version="1.0.0", tenant="shop")
    _shop(rabbitmq_broker).send_task(TASK_NAME, args=[envelope.to_json()], queue=spec.name, declare=[])
    argv = [
        sys.executable,
        "-c",
        _TAKE_AND_HANG,
        rabbitmq_broker.url,
        rabbitmq_broker.management_url,
        spec.name,
    ]
    for _ in range(spec.max_receive_count):  # every delivery kills its process with -9
        taker = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
        )  # fmt: skip
        assert taker.stdout is not None and taker.stdout.readline().strip() == "1"
        os.kill(taker.pid, signal.SIGKILL)
        taker.wait(timeout=10)
    assert wait_until(lambda: adapter.depth(spec.dead_letter_name).visible == 1, timeout=10)
    assert adapter.receive(spec.name, max_messages=1, wait_seconds=0, visibility_timeout=30) == []
    (dead,) = adapter.receive(spec.dead_letter_name, max_messages=1, wait_seconds=1, visibility_timeout=30)
    assert Envelope.from_json(dead.body) == envelope
