"""Transactional enqueue on the real stack: a job exists if and only if the caller's transaction commits.

On the PostgreSQL queue the job is written in the caller's transaction; with SQS (the moto endpoint)
an outbox row is, and the relay queues it after the commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2.extensions import connection as Connection

from tornado_core.bootstrap import (
    Routing,
    build_outbox,
    build_outbox_relay,
    build_routing,
    build_services,
    build_transactional_enqueuer,
    provision_queues,
)
from tornado_core.errors import ConfigError, PayloadInvalid, QueueUnavailable, TaskNotFound
from tornado_core.naming import queue_name
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.transactional import OutboxStorePort
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token
from tornado_core.transactional import (
    EntryInvalid,
    OutboxRelay,
    RelayOptions,
    TransactionalEnqueuer,
    UnknownTenant,
    add_to_outbox,
)

pytestmark = pytest.mark.integration


def _stack(env: dict[str, str], backend: str) -> Iterator[tuple[Services, Routing, str]]:
    settings = Settings.load(
        {**env, "TORNADO_QUEUE": backend, "TORNADO_QUEUE_PREFIX": f"tx{uuid.uuid4().hex[:6]}"}
    )
    services, close = build_services(settings, pool_size=4)
    provision_queues(services)
    tenant = f"erp-{uuid.uuid4().hex[:8]}"
    services.tenants.create(tenant, hash_token(new_token()))
    routing, close_routing = build_routing(services)
    yield services, routing, tenant
    close_routing()
    for spec in services.registry:
        name = queue_name(settings.queue_prefix, spec.name, spec.version)
        services.queue.delete_queue(name)
        services.queue.delete_queue(name + "-dlq")
    close()


@pytest.fixture(scope="module")
def pg(stack_env: dict[str, str]) -> Iterator[tuple[Services, Routing, str]]:
    """Services on the PostgreSQL queue, their routing, and a tenant."""
    yield from _stack(stack_env, "postgres")


@pytest.fixture(scope="module")
def sqs(stack_env: dict[str, str]) -> Iterator[tuple[Services, Routing, str]]:
    """Services on the SQS endpoint, their routing, and a tenant."""
    yield from _stack(stack_env, "sqs")


@pytest.fixture
def connect() -> Iterator[Callable[[str], Connection]]:
    """Opens the caller's own connections (plain psycopg2, as an ERP has them); closed after the test."""
    opened: list[Connection] = []

    def open_one(dsn: str) -> Connection:
        opened.append(psycopg2.connect(dsn))
        return opened[-1]

    yield open_one
    for conn in opened:
        conn.close()


def depth(services: Services, task: str) -> tuple[int, int]:
    spec = services.registry.get(task)
    found = services.queue.depth(queue_name(services.settings.queue_prefix, spec.name, spec.version))
    return found.visible, found.delayed


# --- in the caller's transaction, on the PostgreSQL queue ------------------------------------------


@pytest.fixture(scope="module")
def enqueuer(pg: tuple[Services, Routing, str]) -> TransactionalEnqueuer:
    services, routing, _tenant = pg
    return build_transactional_enqueuer(services, routing)


def test_a_rolled_back_transaction_leaves_no_job(
    pg: tuple[Services, Routing, str], enqueuer: TransactionalEnqueuer, postgres_url: str, connect: Any
) -> None:
    services, _routing, tenant = pg
    conn = connect(postgres_url)
    before = depth(services, "demo.echo")
    receipt = enqueuer.submit(conn, tenant, "demo.echo", {"message": "NF-e of order 41"})
    conn.rollback()
    assert services.jobs.get(receipt["id"]) is None
    assert depth(services, "demo.echo") == before


def test_a_committed_transaction_leaves_exactly_one_job_and_wakes_the_workers(
    pg: tuple[Services, Routing, str], enqueuer: TransactionalEnqueuer, postgres_url: str, connect: Any
) -> None:
    services, _routing, tenant = pg
    conn = connect(postgres_url)
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE orders (id int)")  # the ERP's own write, in the same transaction
        cur.execute("INSERT INTO orders VALUES (42)")
    receipt = enqueuer.submit(
        conn, tenant, "demo.echo", {"message": "NF-e of order 42"}, idempotency_key="o-42"
    )
    assert services.jobs.get(receipt["id"]) is None  # not before the commit
    spec = services.registry.get("demo.echo")
    queue = queue_name(services.settings.queue_prefix, spec.name, spec.version)
    conn.commit()
    record = services.jobs.get(receipt["id"])
    assert record is not None and record.status is JobStatus.QUEUED and record.tenant == tenant
    got = services.queue.receive(queue, max_messages=10, wait_seconds=5, visibility_timeout=30)
    assert [receipt["id"] in m.body for m in got] == [True]


def test_a_delayed_job_waits_after_the_commit(
    pg: tuple[Services, Routing, str], enqueuer: TransactionalEnqueuer, postgres_url: str, connect: Any
) -> None:
    services, _routing, tenant = pg
    conn = connect(postgres_url)
    visible, delayed = depth(services, "demo.sleep")
    enqueuer.submit(conn, tenant, "demo.sleep", {"seconds": 0}, delay=600)
    conn.commit()
    assert depth(services, "demo.sleep") == (visible, delayed + 1)


@pytest.mark.parametrize(
    ("tenant", "task", "payload", "error"),
    [
        (None, "demo.nothing", {}, TaskNotFound),
        (None, "demo.echo", {"message": 42}, PayloadInvalid),
        ("nobody-here", "demo.echo", {"message": "x"}, UnknownTenant),
        (None, "Demo Echo", {"message": "x"}, EntryInvalid),
    ],
)
def test_bad_input_is_refused_clearly_and_the_transaction_goes_on_without_it(
    pg: tuple[Services, Routing, str],
    enqueuer: TransactionalEnqueuer,
    postgres_url: str,
    connect: Any,
    tenant: str | None,
    task: str,
    payload: Any,
    error: type[Exception],
) -> None:
    services, _routing, known = pg
    conn = connect(postgres_url)
    before = services.jobs.list(tenant=tenant or known, limit=500).jobs
    with pytest.raises(error):
        enqueuer.submit(conn, tenant or known, task, payload)
    with conn.cursor() as cur:
        cur.execute("SELECT 1")  # the caller's transaction is still usable
    conn.commit()
    assert services.jobs.list(tenant=tenant or known, limit=500).jobs == before


def test_a_batch_writes_all_its_jobs_or_none(
    pg: tuple[Services, Routing, str], enqueuer: TransactionalEnqueuer, postgres_url: str, connect: Any
) -> None:
    services, _routing, tenant = pg
    conn = connect(postgres_url)
    good = {"task": "demo.echo", "payload": {"message": "first"}, "idempotency_key": "batch-first"}
    missing_queue = {"task": "demo.echo", "payload": {"message": "second"}}
    # The second job's queue is gone: the first job's writes are undone with it.
    spec = services.registry.get("demo.fail")
    services.queue.delete_queue(queue_name(services.settings.queue_prefix, spec.name, spec.version))
    with pytest.raises(QueueUnavailable):
        enqueuer.submit_many(conn, tenant, [good, {"task": "demo.fail", "payload": {"reason": "x"}}])
    conn.commit()
    first_id = services.job_ids.for_idempotency_key(tenant, "demo.echo\0batch-first")
    assert services.jobs.get(first_id) is None
    receipts = enqueuer.submit_many(conn, tenant, [good, missing_queue])
    conn.commit()
    assert [services.jobs.get(r["id"]) is not None for r in receipts] == [True, True]


def test_an_autocommit_connection_or_a_database_without_tornado_is_refused(
    pg: tuple[Services, Routing, str],
    enqueuer: TransactionalEnqueuer,
    postgres_url: str,
    erp_database_url: str,
    connect: Any,
) -> None:
    _services, _routing, tenant = pg
    autocommit = connect(postgres_url)
    autocommit.autocommit = True
    with pytest.raises(ConfigError, match="autocommit"):
        enqueuer.submit(autocommit, tenant, "demo.echo", {"message": "x"})
    elsewhere = connect(erp_database_url)  # the stack's ERP database has no Tornado queue
    with pytest.raises(ConfigError, match="this database has no Tornado queue"):
        enqueuer.submit(elsewhere, tenant, "demo.echo", {"message": "x"})


def test_a_unique_task_holds_its_key_only_if_the_transaction_commits(
    pg: tuple[Services, Routing, str], enqueuer: TransactionalEnqueuer, postgres_url: str, connect: Any
) -> None:
    services, _routing, tenant = pg
    conn = connect(postgres_url)
    payload = {"company": f"c-{uuid.uuid4().hex[:6]}", "period": "2026-11"}
    dropped = enqueuer.submit(conn, tenant, "demo.report", payload)
    conn.rollback()
    first = enqueuer.submit(conn, tenant, "demo.report", payload)
    second = enqueuer.submit(conn, tenant, "demo.report", payload)
    conn.commit()
    assert first["id"] != dropped["id"] and "existing" not in first
    assert second == {**first, "existing": True}
    assert services.jobs.get(dropped["id"]) is None and services.jobs.get(first["id"]) is not None


def test_enqueueing_in_a_transaction_needs_the_postgresql_queue(sqs: tuple[Services, Routing, str]) -> None:
    services, routing, _tenant = sqs
    with pytest.raises(ConfigError, match="use the outbox"):
        build_transactional_enqueuer(services, routing)


# --- the outbox and its relay, on SQS ----------------------------------------------------------


@pytest.fixture
def outbox(fresh_database_url: str) -> Iterator[OutboxStorePort]:
    """The outbox in an application database of the test's own."""
    store, close = build_outbox(fresh_database_url)
    assert store.install() is True
    assert store.install() is False  # installing again changes nothing
    yield store
    close()


@pytest.fixture
def relay(sqs: tuple[Services, Routing, str], outbox: OutboxStorePort) -> OutboxRelay:
    services, routing, _tenant = sqs
    return build_outbox_relay(services, routing, outbox, RelayOptions(batch_size=50))


def test_an_outbox_row_becomes_one_job_only_if_its_transaction_commits(
    sqs: tuple[Services, Routing, str],
    outbox: OutboxStorePort,
    relay: OutboxRelay,
    fresh_database_url: str,
    connect: Any,
) -> None:
    services, _routing, tenant = sqs
    conn = connect(fresh_database_url)
    add_to_outbox(conn, tenant, "demo.echo", {"message": "order 41"}, idempotency_key="order-41")
    conn.rollback()
    add_to_outbox(conn, tenant, "demo.echo", {"message": "order 42"}, idempotency_key="order-42")
    assert outbox.status().pending == 0  # not before the commit
    conn.commit()
    assert outbox.status().pending == 1
    before = depth(services, "demo.echo")
    assert relay.relay_once().sent == 1
    assert outbox.status().pending == 0
    assert depth(services, "demo.echo") == (before[0] + 1, before[1])
    ids = {
        key: services.job_ids.for_idempotency_key(tenant, f"demo.echo\0{key}")
        for key in ("order-41", "order-42")
    }
    assert services.jobs.get(ids["order-41"]) is None
    record = services.jobs.get(ids["order-42"])
    assert record is not None and record.status is JobStatus.QUEUED


def test_a_relay_that_dies_before_its_commit_leaves_its_rows_to_the_next_one(
    sqs: tuple[Services, Routing, str],
    outbox: OutboxStorePort,
    relay: OutboxRelay,
    fresh_database_url: str,
    connect: Any,
) -> None:
    services, _routing, tenant = sqs
    conn = connect(fresh_database_url)
    for n in range(5):
        add_to_outbox(conn, tenant, "demo.echo", {"message": f"order {n}"})
    conn.commit()
    with outbox.claim(10) as batch:  # another relay holds these rows, then vanishes without deleting
        assert len(batch.rows) == 5
        assert relay.relay_once().claimed == 0  # SKIP LOCKED: the rows are not claimed twice
        keys = [row.idempotency_key for row in batch.rows]
    assert relay.relay_once().sent == 5 and relay.relay_once().claimed == 0
    ids = [services.job_ids.for_idempotency_key(tenant, f"demo.echo\0{key}") for key in keys]
    assert all(services.jobs.get(job_id) is not None for job_id in ids)


def test_bad_input_to_the_outbox_is_refused_and_a_bad_row_is_set_aside(
    sqs: tuple[Services, Routing, str],
    outbox: OutboxStorePort,
    relay: OutboxRelay,
    fresh_database_url: str,
    connect: Any,
) -> None:
    _services, _routing, tenant = sqs
    conn = connect(fresh_database_url)
    with pytest.raises(EntryInvalid, match="payload"):
        add_to_outbox(conn, tenant, "demo.echo", ["not", "an", "object"])
    add_to_outbox(conn, tenant, "demo.nothing", {"message": "no such task"})
    add_to_outbox(conn, tenant, "demo.echo", {"message": 7})
    add_to_outbox(conn, tenant, "demo.echo", {"message": "fine"})
    conn.commit()
    report = relay.relay_once()
    assert (report.sent, report.failed) == (1, 2)
    status = outbox.status()
    assert (status.pending, status.failed) == (0, 2)
    assert sorted(row.task for row in status.failures) == ["demo.echo", "demo.nothing"]
    assert any("unknown task 'demo.nothing'" in row.error for row in status.failures)
    assert outbox.retry_failed() == 2 and outbox.status().pending == 2


def test_the_outbox_refuses_a_connection_that_would_commit_at_once(
    outbox: OutboxStorePort, fresh_database_url: str, erp_database_url: str, connect: Any
) -> None:
    autocommit = connect(fresh_database_url)
    autocommit.autocommit = True
    with pytest.raises(ConfigError, match="autocommit"):
        add_to_outbox(autocommit, "acme", "demo.echo", {"message": "x"})
    with pytest.raises(ConfigError, match="no tornado_outbox table"):
        add_to_outbox(connect(erp_database_url), "acme", "demo.echo", {"message": "x"})
    assert outbox.status().pending == 0
