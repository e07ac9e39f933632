"""The queue port's contract (tests/integration/test_queue_contract.py) on the Celery engine's Redis queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_queue_contract import (  # noqa: F401  (the contract's tests, run here on Redis)
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
from tornado_core.adapters.celery.redis_queue import RedisQueue
from tornado_core.errors import QueueUnavailable
from tornado_core.local_machine import free_port
from tornado_core.ports.queue import OutgoingMessage, QueueSpec

pytestmark = pytest.mark.integration


@pytest.fixture
def adapter(redis_url: str) -> Iterator[RedisQueue]:
    """The Redis queue on the session's Redis."""
    queue = RedisQueue(redis_url)
    yield queue
    queue.close()


def test_stale_receipt_is_refused(adapter: RedisQueue, spec: QueueSpec) -> None:  # noqa: F811
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


def test_an_unreachable_redis_is_a_clear_error_not_a_hang() -> None:
    gone = RedisQueue(f"redis://:secret@127.0.0.1:{free_port()}/0", timeout=1)
    with pytest.raises(QueueUnavailable, match=r"Redis at 127\.0\.0\.1:\d+/0 is unreachable") as caught:
        gone.ping()
    assert "secret" not in str(caught.value)
    with pytest.raises(QueueUnavailable):
        gone.send_batch("any", [OutgoingMessage("lost")])
