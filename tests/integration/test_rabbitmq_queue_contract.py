"""The queue port's contract (tests/integration/test_queue_contract.py) on the Celery engine's RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_queue_contract import (  # noqa: F401  (the contract's tests, run here on RabbitMQ)
    receive,
    receive_one,
    send,
    spec,
    test_batch_send_of_max_send_batch,
    test_change_visibility_extends_and_zero_shows_at_once,
    test_delay_postpones_visibility,
    test_depth_counts_visible_in_flight_and_delayed,
    test_ensure_queue_is_idempotent,
    test_long_poll_wakes_on_send,
    test_one_receive_brings_up_to_the_adapters_batch,
    test_redrive_moves_message_to_dead_letter_queue,
    test_send_receive_delete,
    test_unknown_queue_is_an_error,
    test_visibility_timeout_hides_then_redelivers,
)
from tornado_core.adapters.celery.amqp_queue import AmqpQueue
from tornado_core.devstack.brokers import RabbitMQUrls
from tornado_core.errors import QueueUnavailable
from tornado_core.local_machine import free_port, wait_until
from tornado_core.ports.queue import OutgoingMessage, QueueSpec

pytestmark = pytest.mark.integration


def _queue(broker: RabbitMQUrls) -> AmqpQueue:
    return AmqpQueue(broker.url, management_url=broker.management_url)


@pytest.fixture
def adapter(rabbitmq_broker: RabbitMQUrls) -> Iterator[AmqpQueue]:
    """The RabbitMQ queue on the session's RabbitMQ."""
    queue = _queue(rabbitmq_broker)
    yield queue
    queue.close()


def test_stale_receipt_is_refused(adapter: AmqpQueue, spec: QueueSpec) -> None:  # noqa: F811
    send(adapter, spec.name, "job")
    stale = receive_one(adapter, spec.name)
    adapter.change_visibility(spec.name, stale.receipt, 0)
    current = receive_one(adapter, spec.name, visibility=30)
    with pytest.raises(QueueUnavailable, match="stale"):
        adapter.change_visibility(spec.name, stale.receipt, 10)
    adapter.delete(spec.name, [stale.receipt])
    assert adapter.depth(spec.name).in_flight == 1
    adapter.delete(spec.name, [current.receipt])
    assert adapter.depth(spec.name).total == 0


def _drop_connection(queue: AmqpQueue) -> None:
    """Cut the adapter's TCP connection under it, as a network failure would."""
    connection = queue._link._connection
    assert connection is not None
    connection.sock.close()


def test_a_receipt_of_a_lost_connection_is_stale_and_its_message_comes_back(
    adapter: AmqpQueue,
    spec: QueueSpec,  # noqa: F811
) -> None:
    send(adapter, spec.name, "job")
    before = receive_one(adapter, spec.name, visibility=30)
    _drop_connection(adapter)
    with pytest.raises(QueueUnavailable):
        adapter.depth(spec.name)  # the loss is noticed on the next call
    with pytest.raises(QueueUnavailable, match="stale"):
        adapter.change_visibility(spec.name, before.receipt, 30)
    adapter.delete(spec.name, [before.receipt])  # RabbitMQ gave it back: nothing to acknowledge
    after = receive_one(adapter, spec.name, visibility=30)
    assert (after.message_id, after.body, after.receive_count) == (before.message_id, "job", 2)
    adapter.delete(spec.name, [after.receipt])
    assert adapter.depth(spec.name).total == 0


def test_a_message_held_by_a_connection_that_closes_without_ack_comes_back_counted(
    adapter: AmqpQueue,
    spec: QueueSpec,  # noqa: F811
    rabbitmq_broker: RabbitMQUrls,
) -> None:
    send(adapter, spec.name, "survives kill -9")
    doomed = _queue(rabbitmq_broker)
    first = receive_one(doomed, spec.name, visibility=300)
    # held by another live connection: counted from the management API's statistics, which lag
    assert wait_until(lambda: adapter.depth(spec.name).in_flight == 1, timeout=10)
    _drop_connection(doomed)  # what RabbitMQ sees of a process killed with -9
    again = receive_one(adapter, spec.name, wait=5)
    assert (again.message_id, again.receive_count) == (first.message_id, 2)


def test_an_unreachable_rabbitmq_is_a_clear_error_not_a_hang() -> None:
    gone = AmqpQueue(f"amqp://tornado:secret@127.0.0.1:{free_port()}//", timeout=1)
    with pytest.raises(QueueUnavailable, match=r"RabbitMQ at 127\.0\.0\.1:\d+ is unreachable") as caught:
        gone.ping()
    assert "secret" not in str(caught.value)
    with pytest.raises(QueueUnavailable):
        gone.send_batch("any", [OutgoingMessage("lost")])


def test_a_wrong_password_is_a_clear_error(rabbitmq_url: str) -> None:
    wrong = AmqpQueue(rabbitmq_url.replace("tornado:", "tornado:x", 1), timeout=2)
    with pytest.raises(QueueUnavailable, match="refused the login") as caught:
        wrong.ping()
    assert "tornado:x" not in str(caught.value)


def test_a_queue_declared_with_another_receive_limit_is_refused_with_the_reason(
    adapter: AmqpQueue,
    spec: QueueSpec,  # noqa: F811
) -> None:
    other = QueueSpec(
        name=spec.name, dead_letter_name=spec.dead_letter_name, max_receive_count=9, visibility_timeout=1
    )
    with pytest.raises(QueueUnavailable, match="x-delivery-limit"):
        adapter.ensure_queue(other)
    send(adapter, spec.name, "still works")  # the refusal closed a channel, not the adapter
    assert receive_one(adapter, spec.name).body == "still works"
