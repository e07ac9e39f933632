"""The outbox and the in-transaction enqueue on in-memory adapters: what is refused, and that every row
becomes one job id, also when a batch is tried again after a failure."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import tornado_tasks.demo.handlers as demo

from tornado_core.errors import ConfigError, PayloadInvalid, QueueUnavailable, TaskNotFound
from tornado_core.naming import queue_name, queue_spec
from tornado_core.ports.jobs import NewJob
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.transactional import Holder, OutboxEntry, OutboxRow, OutboxStatus
from tornado_core.producer.direct import JobSender
from tornado_core.producer.submission import Submitter
from tornado_core.registry import TaskRegistry
from tornado_core.services import Services
from tornado_core.toolchain.testing import memory_services
from tornado_core.transactional import (
    EntryInvalid,
    OutboxRelay,
    RelayOptions,
    TransactionalEnqueuer,
    UnknownTenant,
    add_many_to_outbox,
    add_to_outbox,
)
from tornado_core.transactional.entries import OUTBOX_KEY_PREFIX, outbox_entry
from tornado_core.transactional.tenants import KnownTenants


@pytest.fixture
def services() -> Services:
    registry = TaskRegistry()
    registry.register_module(demo)
    built = memory_services(registry)
    for spec in registry:
        built.queue.ensure_queue(queue_spec(built.settings.queue_prefix, spec))
    built.tenants.create("acme", "hash-of-acme")
    return built


def messages(services: Services, task: str = "demo.echo") -> list[dict[str, Any]]:
    spec = services.registry.get(task)
    queue = queue_name(services.settings.queue_prefix, spec.name, spec.version)
    received = services.queue.receive(queue, max_messages=100, wait_seconds=0, visibility_timeout=30)
    return [json.loads(m.body) for m in received]


# --- what is refused before anything is written --------------------------------------------------


def test_an_entry_names_every_problem() -> None:
    with pytest.raises(EntryInvalid) as refused:
        outbox_entry("a b", "Not-A-Task", ["x"], idempotency_key="", delay=901)
    assert [p["field"] for p in refused.value.problems] == [
        "tenant",
        "task",
        "idempotency_key",
        "delay",
        "payload",
    ]


def test_an_entry_without_a_key_gets_one_of_its_own() -> None:
    first = outbox_entry("acme", "demo.echo", {"message": "hi"})
    second = outbox_entry("acme", "demo.echo", {"message": "hi"})
    assert (
        first.idempotency_key.startswith(OUTBOX_KEY_PREFIX)
        and first.idempotency_key != second.idempotency_key
    )
    assert json.loads(first.payload_json) == {"message": "hi"}
    assert outbox_entry("acme", "demo.echo", {}, idempotency_key="order-42").idempotency_key == "order-42"


def test_a_payload_that_is_not_json_is_refused() -> None:
    with pytest.raises(EntryInvalid, match="payload: is not JSON-serialisable"):
        outbox_entry("acme", "demo.echo", {"when": object()})


@dataclass
class FakeWriter:
    added: list[OutboxEntry] = field(default_factory=list)

    def add(self, connection: Any, entries: Sequence[OutboxEntry]) -> list[int]:
        start = len(self.added)
        self.added.extend(entries)
        return list(range(start + 1, start + 1 + len(entries)))


def test_adding_to_the_outbox_writes_validated_entries_all_or_none() -> None:
    writer = FakeWriter()
    assert add_to_outbox("conn", "acme", "demo.echo", {"message": "a"}, delay=5, writer=writer) == 1
    with pytest.raises(EntryInvalid) as refused:
        jobs = [{"task": "demo.echo", "payload": {}}, {"task": "demo.echo", "payload": {}, "run_at": "x"}]
        add_many_to_outbox("conn", "acme", jobs, writer=writer)
    assert "job 1 of the call" in " ".join(refused.value.__notes__)
    assert [(e.task, e.delay) for e in writer.added] == [("demo.echo", 5.0)]


# --- the relay -------------------------------------------------------------------------------


@dataclass
class MemoryOutbox:
    """Rows in a list; a claim's changes apply only if its block ends normally."""

    rows: list[OutboxRow] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)

    def add(self, tenant: str, task: str, payload: Any, key: str) -> int:
        row_id = len(self.rows) + len(self.failed) + 1
        self.rows.append(
            OutboxRow(row_id=row_id, tenant=tenant, task=task, payload=payload, idempotency_key=key)
        )
        return row_id

    @contextlib.contextmanager
    def claim(self, limit: int) -> Iterator[_Batch]:
        batch = _Batch(self.rows[:limit])
        yield batch
        self.rows = [
            row for row in self.rows if row.row_id not in batch.sent and row.row_id not in batch.failed
        ]
        self.failed.update(batch.failed)

    def wait(self, timeout: float) -> None:
        pass

    def status(self, *, failures: int = 20) -> OutboxStatus:
        return OutboxStatus(
            pending=len(self.rows), failed=len(self.failed), oldest_pending_age=None, failures=[]
        )

    def install(self) -> bool:
        return False

    def retry_failed(self) -> int:
        return 0

    def close(self) -> None:
        pass


@dataclass
class _Batch:
    rows: list[OutboxRow]
    sent: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)

    def settle(self, sent: Sequence[int], failed: Mapping[int, str]) -> None:
        self.sent.update(sent)
        self.failed.update(failed)


class FailingOnce(JobSender):
    """Sends, then fails once as if the process died before the outbox commit."""

    def __init__(self, services: Services) -> None:
        super().__init__(services)
        self.failures = 1

    def send(self, jobs: Any) -> None:
        super().send(jobs)
        if self.failures:
            self.failures -= 1
            raise QueueUnavailable("the relay lost its outbox connection")


def relay(services: Services, outbox: MemoryOutbox, sender: JobSender | None = None) -> OutboxRelay:
    return OutboxRelay(
        outbox=outbox,
        submitter=Submitter.for_services(services),
        sender=sender or JobSender(services),
        jobs=services.jobs,
        tenants=KnownTenants(services.tenants),
        options=RelayOptions(batch_size=10),
    )


def test_the_relay_queues_each_row_under_its_key_and_deletes_it(services: Services) -> None:
    outbox = MemoryOutbox()
    for n in range(3):
        outbox.add("acme", "demo.echo", {"message": str(n)}, f"order-{n}")
    report = relay(services, outbox).relay_once()
    assert (report.claimed, report.sent, report.failed) == (3, 3, 0)
    expected = [services.job_ids.for_idempotency_key("acme", f"demo.echo\0order-{n}") for n in range(3)]
    assert sorted(m["job_id"] for m in messages(services)) == sorted(expected)
    assert all(services.jobs.get(job_id) is not None for job_id in expected)
    assert outbox.rows == []


def test_two_rows_with_one_key_in_one_batch_are_one_job(services: Services) -> None:
    outbox = MemoryOutbox()
    for _ in range(2):
        outbox.add("acme", "demo.echo", {"message": "once"}, "order-7")
    report = relay(services, outbox).relay_once()
    assert (report.claimed, report.sent, report.existing) == (2, 1, 1)
    assert len(messages(services)) == 1 and outbox.rows == []


def test_a_batch_that_failed_after_sending_is_sent_again_under_the_same_job_ids(services: Services) -> None:
    outbox = MemoryOutbox()
    outbox.add("acme", "demo.echo", {"message": "nf-e 42"}, "order-42")
    flaky = relay(services, outbox, FailingOnce(services))
    with pytest.raises(QueueUnavailable):
        flaky.relay_once()
    assert len(outbox.rows) == 1  # still pending
    assert flaky.relay_once().sent == 1
    ids = {m["job_id"] for m in messages(services)}
    assert ids == {services.job_ids.for_idempotency_key("acme", "demo.echo\0order-42")}


def test_refused_rows_are_set_aside_with_their_reason_and_do_not_block_the_others(services: Services) -> None:
    outbox = MemoryOutbox()
    outbox.add("acme", "demo.nothing", {}, "k1")
    outbox.add("acme", "demo.echo", {"wrong": 1}, "k2")
    outbox.add("ghost", "demo.echo", {"message": "x"}, "k3")
    outbox.add("acme", "demo.echo", {"message": "fine"}, "k4")
    report = relay(services, outbox).relay_once()
    assert (report.sent, report.failed) == (1, 3)
    assert outbox.failed[1].startswith("TaskNotFound") and "demo.nothing" in outbox.failed[1]
    assert outbox.failed[2].startswith("PayloadInvalid")
    assert outbox.failed[3].startswith("UnknownTenant")
    assert [m["payload"] for m in messages(services)] == [{"message": "fine"}]


def test_a_unique_job_whose_key_is_held_is_answered_by_its_holder(services: Services) -> None:
    outbox = MemoryOutbox()
    payload = {"company": "acme", "period": "2026-11"}
    outbox.add("acme", "demo.report", payload, "first")
    outbox.add("acme", "demo.report", payload, "second")
    report = relay(services, outbox).relay_once()
    assert (report.sent, report.existing, outbox.rows) == (1, 1, [])
    assert len(messages(services, "demo.report")) == 1


# --- the in-transaction enqueue --------------------------------------------------------------


@dataclass
class FakeTransaction:
    """The caller's transaction: writes kept until the test commits or drops them."""

    sent: list[tuple[str, OutgoingMessage, NewJob]] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)
    autocommit: bool = False

    def check(self, connection: Any) -> None:
        if self.autocommit:
            raise ConfigError("the connection is in autocommit mode")

    @contextlib.contextmanager
    def atomic(self, connection: Any) -> Iterator[None]:
        before, held = list(self.sent), dict(self.held)
        try:
            yield
        except BaseException:
            self.sent, self.held = before, held
            raise

    def send_recorded(
        self, connection: Any, queue: str, messages: Sequence[OutgoingMessage], jobs: Sequence[NewJob]
    ) -> None:
        if queue.endswith("missing"):
            raise QueueUnavailable(f"queue {queue} does not exist")
        self.sent.extend((queue, m, j) for m, j in zip(messages, jobs, strict=True))

    def hold_unique(
        self, connection: Any, task: str, tenant: str, key: str, job_id: str, *, window: float
    ) -> Holder | None:
        holder = self.held.setdefault(key, job_id)
        return None if holder == job_id else Holder(job_id=holder)


def enqueuer(services: Services, transaction: FakeTransaction) -> TransactionalEnqueuer:
    return TransactionalEnqueuer(
        submitter=Submitter.for_services(services), writes=transaction, tenants=KnownTenants(services.tenants)
    )


def test_a_job_is_prepared_as_the_api_does_and_written_in_the_callers_transaction(services: Services) -> None:
    transaction = FakeTransaction()
    receipt = enqueuer(services, transaction).submit(
        "conn", "acme", "demo.echo", {"message": "hi"}, idempotency_key="order-42", delay=30
    )
    assert receipt == {
        "id": services.job_ids.for_idempotency_key("acme", "demo.echo\0order-42"),
        "task": "demo.echo", "version": services.registry.get("demo.echo").version, "status": "queued",
    }  # fmt: skip
    ((queue, message, job),) = transaction.sent
    assert (json.loads(message.body)["job_id"], message.delay, job.idempotency_key) == (
        receipt["id"],
        30,
        "order-42",
    )
    assert queue == queue_name(services.settings.queue_prefix, "demo.echo", receipt["version"])


@pytest.mark.parametrize(
    ("tenant", "task", "payload", "error"),
    [
        ("acme", "demo.nothing", {}, TaskNotFound),
        ("acme", "demo.echo", {"message": 1}, PayloadInvalid),
        ("ghost", "demo.echo", {"message": "x"}, UnknownTenant),
        ("acme", "demo.echo", "not a dict", EntryInvalid),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    services: Services, tenant: str, task: str, payload: Any, error: type[Exception]
) -> None:
    transaction = FakeTransaction()
    with pytest.raises(error):
        enqueuer(services, transaction).submit("conn", tenant, task, payload)
    assert transaction.sent == []


def test_a_batch_with_one_refused_job_writes_none(services: Services) -> None:
    transaction = FakeTransaction()
    jobs = [{"task": "demo.echo", "payload": {"message": "a"}}, {"task": "demo.echo", "payload": {}}]
    with pytest.raises(PayloadInvalid) as refused:
        enqueuer(services, transaction).submit_many("conn", "acme", jobs)
    assert "job 1 of the call" in " ".join(refused.value.__notes__)
    assert transaction.sent == []


def test_an_autocommit_connection_is_refused(services: Services) -> None:
    transaction = FakeTransaction(autocommit=True)
    with pytest.raises(ConfigError, match="autocommit"):
        enqueuer(services, transaction).submit("conn", "acme", "demo.echo", {"message": "x"})
    assert transaction.sent == []


def test_a_unique_task_held_in_the_same_transaction_answers_with_its_holder(services: Services) -> None:
    transaction = FakeTransaction()
    payload = {"company": "acme", "period": "2026-11"}
    first, second = enqueuer(services, transaction).submit_many(
        "conn",
        "acme",
        [{"task": "demo.report", "payload": payload}, {"task": "demo.report", "payload": payload}],
    )
    assert second == {**first, "existing": True}
    assert len(transaction.sent) == 1
