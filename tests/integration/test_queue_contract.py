"""One contract for :class:`QueuePort`, run against every queue adapter.

``memory`` is the in-process queue, ``postgres`` the PostgreSQL queue on a real
server and ``sqs`` the SQS adapter against the local SQS-compatible endpoint.
Timeouts are whole seconds (SQS only takes integers) and kept short.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest

from tornado_core.errors import QueueUnavailable
from tornado_core.ports.queue import OutgoingMessage, QueuePort, QueueSpec, ReceivedMessage

pytestmark = pytest.mark.integration

MAX_RECEIVE_COUNT = 2


def _memory(request: pytest.FixtureRequest) -> Iterator[QueuePort]:
    from tornado_core.adapters.memory.stores import MemoryQueue

    yield MemoryQueue()


def _postgres(request: pytest.FixtureRequest) -> Iterator[QueuePort]:
    from tornado_core.adapters.postgres import PostgresPool, PostgresQueue

    pool = PostgresPool(request.getfixturevalue("postgres_url"), max_size=4)
    queue = PostgresQueue(pool)
    yield queue
    queue.close()
    pool.close()


def _sqs(request: pytest.FixtureRequest) -> Iterator[QueuePort]:
    from tornado_core.adapters.aws.clients import make_client
    from tornado_core.adapters.aws.sqs import SqsQueue

    client = make_client(
        "sqs",
        region="us-east-1",
        endpoint_url=request.getfixturevalue("aws_endpoint_url"),
        credentials=("test", "test"),
    )
    yield SqsQueue(client)


_ADAPTERS = {"memory": _memory, "postgres": _postgres, "sqs": _sqs}


def _sqs_like() -> tuple[type, ...]:
    from tornado_core.adapters.aws.sqs import SqsQueue

    return (SqsQueue,)


@pytest.fixture(params=sorted(_ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Iterator[QueuePort]:
    """Each queue adapter in turn."""
    yield from _ADAPTERS[request.param](request)


@pytest.fixture
def spec(adapter: QueuePort, unique_prefix: str) -> Iterator[QueueSpec]:
    """A fresh queue (1 s visibility, redrive after 2 receives), deleted afterwards."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", unique_prefix)[:60] + "-contract"
    queue_spec = QueueSpec(
        name=name,
        dead_letter_name=name + "-dlq",
        max_receive_count=MAX_RECEIVE_COUNT,
        visibility_timeout=1,
    )
    adapter.ensure_queue(queue_spec)
    yield queue_spec
    adapter.delete_queue(queue_spec.name)
    adapter.delete_queue(queue_spec.dead_letter_name)


def send(queue: QueuePort, name: str, *bodies: str, delay: float = 0) -> None:
    assert queue.send_batch(name, [OutgoingMessage(b, delay=delay) for b in bodies]) == [None] * len(bodies)


def receive(
    queue: QueuePort, name: str, *, wait: float = 0, visibility: float = 1, most: int = 10
) -> list[ReceivedMessage]:
    return queue.receive(name, max_messages=most, wait_seconds=wait, visibility_timeout=visibility)


def receive_one(queue: QueuePort, name: str, *, wait: float = 3, visibility: float = 1) -> ReceivedMessage:
    got = receive(queue, name, wait=wait, visibility=visibility, most=1)
    assert len(got) == 1, got
    return got[0]


def test_send_receive_delete(adapter: QueuePort, spec: QueueSpec) -> None:
    send(adapter, spec.name, "hello")
    message = receive_one(adapter, spec.name)
    assert (message.body, message.receive_count) == ("hello", 1)
    adapter.delete(spec.name, [message.receipt])
    assert adapter.depth(spec.name).total == 0
    assert receive(adapter, spec.name) == []


def test_one_receive_brings_up_to_the_adapters_batch(adapter: QueuePort, spec: QueueSpec) -> None:
    batch = adapter.max_receive_batch
    bodies = [f"m{n}" for n in range(batch + 3)]
    for start in range(0, len(bodies), adapter.max_send_batch):
        send(adapter, spec.name, *bodies[start : start + adapter.max_send_batch])
    got = receive(adapter, spec.name, wait=1, most=batch)
    assert 0 < len(got) <= batch
    if not isinstance(adapter, _sqs_like()):  # SQS may answer with fewer than are visible
        assert len(got) == batch
    assert len({m.message_id for m in got}) == len(got)


def test_ensure_queue_is_idempotent(adapter: QueuePort, spec: QueueSpec) -> None:
    send(adapter, spec.name, "kept")
    adapter.ensure_queue(spec)
    assert receive_one(adapter, spec.name).body == "kept"


def test_visibility_timeout_hides_then_redelivers(adapter: QueuePort, spec: QueueSpec) -> None:
    send(adapter, spec.name, "job")
    first = receive_one(adapter, spec.name, visibility=1)
    assert receive(adapter, spec.name) == []
    again = receive_one(adapter, spec.name, wait=4)
    assert again.message_id == first.message_id
    assert again.receive_count == 2
    assert again.receipt != first.receipt


def test_change_visibility_extends_and_zero_shows_at_once(adapter: QueuePort, spec: QueueSpec) -> None:
    send(adapter, spec.name, "long job")
    message = receive_one(adapter, spec.name, visibility=1)
    adapter.change_visibility(spec.name, message.receipt, 4)
    # A long poll of 2 s, past the original 1 s timeout and within the extended one, finds nothing.
    assert receive(adapter, spec.name, wait=2) == []
    adapter.change_visibility(spec.name, message.receipt, 0)
    again = receive_one(adapter, spec.name, wait=1)
    assert (again.message_id, again.receive_count) == (message.message_id, 2)


# Not part of the SQS contract: SQS may accept a superseded receipt ("the request succeeds,
# but the message might not be deleted"), and moto does. Our own adapters are stricter.
@pytest.mark.parametrize("adapter", ["memory", "postgres"], indirect=True)
def test_stale_receipt_is_refused(adapter: QueuePort, spec: QueueSpec) -> None:
    send(adapter, spec.name, "job")
    stale = receive_one(adapter, spec.name)
    adapter.change_visibility(spec.name, stale.receipt, 0)
    current = receive_one(adapter, spec.name, visibility=30)
    with pytest.raises(QueueUnavailable):
        adapter.change_visibility(spec.name, stale.receipt, 10)
    adapter.delete(spec.name, [stale.receipt])
    assert adapter.depth(spec.name).in_flight == 1
    adapter.delete(spec.name, [current.receipt])
    assert adapter.depth(spec.name).total == 0


def test_delay_postpones_visibility(adapter: QueuePort, spec: QueueSpec) -> None:
    send(adapter, spec.name, "later", delay=1)
    assert receive(adapter, spec.name) == []
    assert adapter.depth(spec.name).delayed == 1
    assert receive_one(adapter, spec.name, wait=4).body == "later"


def test_redrive_moves_message_to_dead_letter_queue(adapter: QueuePort, spec: QueueSpec) -> None:
    send(adapter, spec.name, "poison")
    for attempt in range(1, MAX_RECEIVE_COUNT + 1):
        message = receive_one(adapter, spec.name)
        assert message.receive_count == attempt
        adapter.change_visibility(spec.name, message.receipt, 0)
    assert receive(adapter, spec.name) == []  # moved instead of delivered
    assert adapter.depth(spec.name).total == 0
    dead = receive_one(adapter, spec.dead_letter_name)
    assert (dead.body, dead.message_id) == ("poison", message.message_id)
    # memory and postgres reset the receive count in the DLQ; moto keeps counting


def test_depth_counts_visible_in_flight_and_delayed(adapter: QueuePort, spec: QueueSpec) -> None:
    send(adapter, spec.name, "a", "b")
    send(adapter, spec.name, "c", delay=30)
    receive_one(adapter, spec.name, visibility=30)
    depth = adapter.depth(spec.name)
    assert (depth.visible, depth.in_flight, depth.delayed) == (1, 1, 1)
    assert depth.total == 3


def test_batch_send_of_max_send_batch(adapter: QueuePort, spec: QueueSpec) -> None:
    bodies = [f"m{i}" for i in range(adapter.max_send_batch)]
    send(adapter, spec.name, *bodies)
    assert adapter.depth(spec.name).visible == len(bodies)
    got = receive(adapter, spec.name, most=10, visibility=30)
    assert got and {m.body for m in got} <= set(bodies)
    assert len({m.message_id for m in got}) == len(got)


def test_unknown_queue_is_an_error(adapter: QueuePort, unique_prefix: str) -> None:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", unique_prefix)[:60] + "-missing"
    with pytest.raises(QueueUnavailable):
        adapter.send_batch(name, [OutgoingMessage("x")])
    with pytest.raises(QueueUnavailable):
        receive(adapter, name)
    with pytest.raises(QueueUnavailable):
        adapter.depth(name)
    adapter.delete_queue(name)  # a missing queue is not an error here


def test_long_poll_wakes_on_send(adapter: QueuePort, spec: QueueSpec) -> None:
    assert receive(adapter, spec.name) == []  # wait 0 returns at once when empty
    sender = threading.Timer(0.3, send, args=(adapter, spec.name, "wake up"))
    sender.start()
    try:
        got = receive(adapter, spec.name, wait=10, most=1)
    finally:
        sender.join()
    assert [m.body for m in got] == ["wake up"]


def test_ping_answers_when_the_queue_service_does_and_raises_when_it_is_gone(
    adapter: QueuePort, request: pytest.FixtureRequest
) -> None:
    assert adapter.ping() is None
    gone = _unreachable(adapter, request)
    if gone is None:  # the in-memory queue cannot be unreachable
        return
    with pytest.raises(QueueUnavailable):
        gone.ping()
    with pytest.raises(QueueUnavailable):
        gone.send_batch("any", [OutgoingMessage("lost")])


def _unreachable(adapter: QueuePort, request: pytest.FixtureRequest) -> QueuePort | None:
    """The same kind of adapter, pointed at a port where nothing listens."""
    from tornado_core.adapters.aws.clients import make_client
    from tornado_core.adapters.aws.sqs import SqsQueue
    from tornado_core.adapters.postgres import PostgresPool, PostgresQueue
    from tornado_core.local_machine import free_port

    nowhere = f"127.0.0.1:{free_port()}"
    if isinstance(adapter, SqsQueue):
        return SqsQueue(make_client("sqs", region="us-east-1", endpoint_url=f"http://{nowhere}"))
    if isinstance(adapter, PostgresQueue):
        pool = PostgresPool(f"postgresql://postgres@{nowhere}/tornado", min_size=0, max_size=1)
        queue = PostgresQueue(pool)
        request.addfinalizer(queue.close)
        return queue
    return None
