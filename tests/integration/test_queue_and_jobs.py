"""The PostgreSQL backend's joint writes: a message with its ``queued`` row, a success with its
message's delete, each all or nothing in one commit."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tornado_core.adapters.postgres import PostgresJobStore, PostgresPool, PostgresQueue, PostgresQueueAndJobs
from tornado_core.errors import QueueUnavailable
from tornado_core.ports.jobs import Claim, ClaimOutcome, JobStatus, NewJob, Success
from tornado_core.ports.queue import OutgoingMessage, QueueSpec
from tornado_core.ports.queue_and_jobs import Completion

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(postgres_url: str) -> Iterator[PostgresPool]:
    pool = PostgresPool(postgres_url, max_size=3)
    yield pool
    pool.close()


@pytest.fixture
def spec(pool: PostgresPool, unique_prefix: str) -> Iterator[QueueSpec]:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", unique_prefix)[:60] + "-joint"
    queue = PostgresQueue(pool)
    spec = QueueSpec(name=name, dead_letter_name=name + "-dlq", max_receive_count=3, visibility_timeout=30)
    queue.ensure_queue(spec)
    yield spec
    queue.delete_queue(spec.name)
    queue.delete_queue(spec.dead_letter_name)
    queue.close()


def jobs(spec: QueueSpec, count: int) -> list[NewJob]:
    return [
        NewJob(
            job_id=f"{spec.name}-{n}", tenant="acme", task="demo.echo", version="1.0.0", submitted_at=1e9 + n
        )
        for n in range(count)
    ]


def test_messages_and_their_queued_rows_are_stored_together(pool: PostgresPool, spec: QueueSpec) -> None:
    joint, store, queue = PostgresQueueAndJobs(pool), PostgresJobStore(pool), PostgresQueue(pool)
    new = jobs(spec, 3)
    assert joint.send_recorded(spec.name, [OutgoingMessage(j.job_id) for j in new], new) == [None] * 3
    rows = [store.get(j.job_id) for j in new]
    assert [(r.status, r.created_at.timestamp()) for r in rows if r] == [
        (JobStatus.QUEUED, j.submitted_at) for j in new
    ]
    assert queue.depth(spec.name).visible == 3
    queue.close()


def test_a_refused_send_stores_neither_message_nor_row(pool: PostgresPool, spec: QueueSpec) -> None:
    joint, store = PostgresQueueAndJobs(pool), PostgresJobStore(pool)
    new = jobs(spec, 2)
    with pytest.raises(QueueUnavailable):
        joint.send_recorded(spec.name + "-missing", [OutgoingMessage(j.job_id) for j in new], new)
    assert [store.get(j.job_id) for j in new] == [None, None]


def test_messages_and_rows_share_one_transaction_and_leave_the_connection_as_it_was(
    postgres_url: str, spec: QueueSpec
) -> None:
    """A send goes as one message of statements on a connection in autocommit mode: its rows and
    messages commit together, and the next borrower of that connection gets a transaction again."""
    pool = PostgresPool(postgres_url, max_size=1)
    try:
        joint = PostgresQueueAndJobs(pool)
        new = jobs(spec, 2)
        joint.send_recorded(spec.name, [OutgoingMessage(j.job_id) for j in new], new)
        with pytest.raises(QueueUnavailable):
            joint.send_recorded(spec.name + "-missing", [OutgoingMessage("x")], jobs(spec, 3)[2:])
        with pool.connection() as conn, conn.cursor() as cur:
            assert not conn.autocommit
            cur.execute(
                "SELECT DISTINCT xmin::text FROM tornado_jobs WHERE job_id = ANY(%s)"
                " UNION SELECT DISTINCT xmin::text FROM tornado_messages WHERE queue = %s",
                ([j.job_id for j in new], spec.name),
            )
            assert len(cur.fetchall()) == 1  # one transaction wrote the two rows and the two messages
        with pytest.raises(ZeroDivisionError), pool.connection() as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM tornado_messages WHERE queue = %s", (spec.name,))
            raise ZeroDivisionError  # the block fails: its delete must be rolled back
        assert PostgresQueue(pool).depth(spec.name).visible == 2
    finally:
        pool.close()


def test_a_batch_with_a_known_id_is_stored_whole_and_leaves_the_known_row_as_it_was(
    pool: PostgresPool, spec: QueueSpec
) -> None:
    """New ids go in with a plain insert; one known id (a job sent again) must not lose the batch."""
    joint, store, queue = PostgresQueueAndJobs(pool), PostgresJobStore(pool), PostgresQueue(pool)
    first, *others = jobs(spec, 3)
    joint.send_recorded(spec.name, [OutgoingMessage(first.job_id)], [first])
    assert store.claim(first, attempt=1, lease_seconds=30, worker="w") is ClaimOutcome.CLAIMED
    again = [first, *others]
    assert joint.send_recorded(spec.name, [OutgoingMessage(j.job_id) for j in again], again) == [None] * 3
    statuses = {j.job_id: r.status for j in again if (r := store.get(j.job_id)) is not None}
    assert statuses == {first.job_id: JobStatus.RUNNING, **{j.job_id: JobStatus.QUEUED for j in others}}
    assert queue.depth(spec.name).visible == 4  # the first message (claimed, not received) and the three
    queue.close()


def test_a_success_and_its_delete_commit_together(pool: PostgresPool, spec: QueueSpec) -> None:
    joint, store, queue = PostgresQueueAndJobs(pool), PostgresJobStore(pool), PostgresQueue(pool)
    new = jobs(spec, 2)
    joint.send_recorded(spec.name, [OutgoingMessage(j.job_id) for j in new], new)
    got = queue.receive(spec.name, max_messages=2, wait_seconds=1, visibility_timeout=30)
    by_body = {m.body: m for m in got}
    for job in new:
        assert store.claim(job, attempt=1, lease_seconds=30, worker="w") is ClaimOutcome.CLAIMED
    done = new[0]
    stale = by_body[new[1].job_id].receipt.split(":")[0] + ":00000000-0000-0000-0000-000000000000"
    joint.complete([
        Completion(success=Success(job_id=done.job_id, result={"ok": 1}), queue=spec.name,
                   receipt=by_body[done.job_id].receipt),
        # A stale receipt deletes nothing, and the success is recorded all the same.
        Completion(success=Success(job_id=new[1].job_id, result=None, result_json="[2]"), queue=spec.name,
                   receipt=stale),
    ])  # fmt: skip
    first, second = store.get(done.job_id), store.get(new[1].job_id)
    assert first is not None and (first.status, first.result) == (JobStatus.SUCCEEDED, {"ok": 1})
    assert second is not None and (second.status, second.result) == (JobStatus.SUCCEEDED, [2])
    assert queue.depth(spec.name).in_flight == 1  # only the current receipt's message went
    queue.close()


@pytest.mark.parametrize("prepare", [True, False], ids=["prepared", "sent-whole"])
def test_the_hot_path_works_with_and_without_prepared_statements(
    postgres_url: str, spec: QueueSpec, prepare: bool
) -> None:
    """Behind PgBouncer in transaction mode a connection's prepared statements do not follow it:
    ``database_prepared_statements = false`` sends every statement whole, with the same types."""
    pool = PostgresPool(postgres_url, max_size=1, prepare_statements=prepare)
    try:
        joint, store, queue = PostgresQueueAndJobs(pool), PostgresJobStore(pool), PostgresQueue(pool)
        new = jobs(spec, 3)
        assert (
            joint.send_recorded(spec.name, [OutgoingMessage(j.job_id, delay=0) for j in new], new)
            == [None] * 3
        )
        got = queue.receive(spec.name, max_messages=3, wait_seconds=1, visibility_timeout=30)

        claims = [Claim(job=j, attempt=1, worker="w") for j in new]
        assert store.claim_many(claims, lease_seconds=30) == [ClaimOutcome.CLAIMED] * 3
        receipts = {m.body: m.receipt for m in got}
        joint.complete([
            Completion(success=Success(job_id=j.job_id, result={"n": n}), queue=spec.name,
                       receipt=receipts[j.job_id])
            for n, j in enumerate(new)
        ])  # fmt: skip
        assert [store.get(j.job_id).status for j in new] == [JobStatus.SUCCEEDED] * 3  # type: ignore[union-attr]
        assert queue.depth(spec.name).total == 0
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_prepared_statements")
            row = cur.fetchone()
        assert row is not None and (row[0] > 0) is prepare
        queue.close()
    finally:
        pool.close()
