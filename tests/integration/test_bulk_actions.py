"""Bulk actions over every job a filter matches, on a real PostgreSQL and each queue backend.

What an operator checks: every matching job ends as the action says (and no other job moves), the
letters went where they should, the progress was written batch by batch, an action outlives the process
that started it, and the audit log has its start and its end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.helpers import wait_until
from tests.integration.console_jobs_fixtures import (
    BACKENDS,
    Tools,
    envelope,
    finished,
    insert_jobs,
    make_tools,
    read_all,
    send_letters,
    tools_fixture,  # noqa: F401 - the fixture
)
from tornado_core.adapters.postgres import PostgresPool, PostgresQueue
from tornado_core.adapters.postgres.bulk_actions import PostgresBulkActions
from tornado_core.bootstrap import build_services
from tornado_core.bootstrap.console import build_console_jobs
from tornado_core.console.bulk import BulkAction, BulkActionKind, BulkActions, BulkOptions
from tornado_core.console.filters import JobFilter
from tornado_core.message import Envelope
from tornado_core.naming import dead_letter_name, queue_name
from tornado_core.ports.console_jobs import SWEEP_LETTERS, BatchOutcome, BulkActionRow
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.queue import QueueSpec
from tornado_core.settings import Settings

pytestmark = pytest.mark.integration


def audit_of(tools: Tools, action: BulkAction) -> list[dict[str, Any]]:
    """The details of the action's audit entries, oldest first."""
    entries = tools.audit.entries(actions=[f"jobs.bulk_{action.action}"], limit=500)
    mine = [e for e in entries if e.detail.get("bulk_action") == action.id]
    assert all(e.actor == action.operator and e.target == action.filter.describe() for e in mine)
    return [dict(e.detail) for e in reversed(mine)]


def run_to_end(
    tools: Tools,
    kind: BulkActionKind,
    job_filter: JobFilter,
    *,
    actor: str,
    options: BulkOptions | None = None,
    store: PostgresBulkActions | None = None,
) -> BulkAction:
    """Start the action in a new process's bulk actions, wait for its end, stop them."""
    bulk = tools.bulk(options, store=store)
    try:
        started = bulk.start(kind, job_filter, actor=actor)
        assert started.status == "running" and started.done == 0
        return finished(bulk, started.id, timeout=900)
    finally:
        bulk.close()


def test_a_bulk_redrive_sends_every_matching_dead_letter_back_to_its_queue(tools: Tools, prefix: str) -> None:
    task = f"{prefix}.redrive"
    source, dlq = tools.version_queues(task, "1.0.0")
    # A thousand on PostgreSQL; on SQS, moto answers each call in about 100 ms, so 120 (twelve
    # receives, more than one batch) prove the same sweep without a minute of waiting.
    count = 1000 if tools.backend == "postgres" else 120
    dead = insert_jobs(tools.pool, prefix=f"{prefix}-a", count=count, status="dead", task=task, error="boom")
    insert_jobs(tools.pool, prefix=f"{prefix}-a", count=50, status="queued", task=task)
    others = insert_jobs(
        tools.pool, prefix=f"{prefix}-g", count=20, status="dead", task=task, tenant="globex"
    )
    send_letters(
        tools.queue,
        dlq,
        [envelope(j, task) for j in dead] + [envelope(j, task, tenant="globex") for j in others],
    )

    job_filter = JobFilter(task=task, tenant="acme")
    action = run_to_end(tools, BulkActionKind.REDRIVE, job_filter, actor="alice")

    assert (action.status, action.matched, action.done, action.skipped) == (
        "succeeded",
        count + 50,
        count,
        50,
    )
    assert action.fraction == 1.0
    assert tools.search.tally(job_filter) == {JobStatus.QUEUED: count + 50}
    assert tools.search.tally(JobFilter(task=task, tenant="globex")) == {JobStatus.DEAD: 20}
    assert tools.queue.depth(dlq).total == 20  # the other tenant's letters stay (on SQS, hidden a while)
    if tools.backend == "postgres":
        assert sorted(Envelope.from_json(m.body).job_id for m in read_all(tools.queue, source)) == dead
        assert {
            Envelope.from_json(letter.body).job_id for letter in tools.letters.letters(dlq, limit=100)
        } == set(others)
    else:  # the retry test reads the bodies back from SQS
        assert tools.queue.depth(source).visible == count
    started_entry, ended_entry = audit_of(tools, action)
    assert started_entry["phase"] == "started" and started_entry["matched"] == count + 50
    assert started_entry["filter"] == job_filter.to_json()
    assert ended_entry | {"error": None} == {
        "bulk_action": action.id, "phase": "finished", "status": "succeeded", "matched": count + 50,
        "done": count, "skipped": 50, "error": None,
    }  # fmt: skip


def test_a_bulk_retry_runs_dead_jobs_on_the_tasks_current_version(tools: Tools, prefix: str) -> None:
    task = f"{prefix}.retry"
    _, old_dlq = tools.version_queues(task, "1.0.0")
    new_source, _ = tools.version_queues(task, "1.1.0")
    tools.current[task] = "1.1.0"
    dead = insert_jobs(tools.pool, prefix=prefix, count=30, status="dead", task=task)
    send_letters(tools.queue, old_dlq, [envelope(j, task) for j in dead])

    action = run_to_end(tools, BulkActionKind.RETRY, JobFilter(task=task), actor="bob")

    assert (action.status, action.done, action.skipped) == ("succeeded", 30, 0)
    moved = [Envelope.from_json(m.body) for m in read_all(tools.queue, new_source)]
    assert sorted(e.job_id for e in moved) == dead
    assert {e.version for e in moved} == {"1.1.0"}
    records = tools.search.records(dead)
    assert {(r.status, r.version) for r in records.values()} == {(JobStatus.QUEUED, "1.1.0")}
    assert tools.queue.depth(old_dlq).total == 0


def test_a_bulk_purge_deletes_the_letters_and_fails_every_matching_dead_job(
    tools: Tools, prefix: str
) -> None:
    task = f"{prefix}.purge"
    _, dlq = tools.version_queues(task, "1.0.0")
    with_letters = insert_jobs(tools.pool, prefix=f"{prefix}-l", count=30, status="dead", task=task)
    insert_jobs(tools.pool, prefix=f"{prefix}-n", count=5, status="dead", task=task)  # their letters are gone
    insert_jobs(tools.pool, prefix=prefix, count=5, status="running", task=task)
    send_letters(tools.queue, dlq, [envelope(j, task) for j in with_letters])

    action = run_to_end(tools, BulkActionKind.PURGE, JobFilter(task=task), actor="carol")

    assert (action.status, action.matched, action.done, action.skipped) == ("succeeded", 40, 35, 5)
    assert tools.search.tally(JobFilter(task=task)) == {JobStatus.FAILED: 35, JobStatus.RUNNING: 5}
    assert tools.queue.depth(dlq).total == 0


class RecordingStore(PostgresBulkActions):
    """The real store, remembering each batch and the progress persisted right after it."""

    def __init__(self, pool: PostgresPool) -> None:
        super().__init__(pool)
        self.batches: list[tuple[BatchOutcome, int]] = []
        self.hold_at: int | None = None  # the batch that waits for its process to stop
        self.held = threading.Event()
        self.bulk: BulkActions | None = None

    def cancel_batch(self, action_id: int, **kwargs: Any) -> BatchOutcome:
        if len(self.batches) + 1 == self.hold_at and self.bulk is not None:
            self.held.set()
            wait_until(lambda: self.bulk is not None and self.bulk.stopping, what="the process to stop")
        outcome = super().cancel_batch(action_id, **kwargs)
        row = self.get(action_id)
        assert row is not None
        self.batches.append((outcome, row.done + row.skipped))
        return outcome


@pytest.fixture
def fresh_tools(fresh_database_url: str, unique_prefix: str) -> Iterator[Tools]:
    """The tools on a database of this test alone (no other process's actions to adopt)."""
    pool = PostgresPool(fresh_database_url, max_size=8)
    queue = PostgresQueue(pool)
    yield make_tools("postgres", pool, queue, f"tc{unique_prefix}")
    queue.close()
    pool.close()


def test_a_bulk_cancel_of_100000_jobs_runs_in_batches_without_loading_them(
    fresh_tools: Tools, prefix: str
) -> None:
    task = f"{prefix}.many"
    insert_jobs(fresh_tools.pool, prefix=prefix, count=100_000, status="queued", task=task)
    insert_jobs(fresh_tools.pool, prefix=prefix, count=200, status="running", task=task)
    insert_jobs(fresh_tools.pool, prefix=prefix, count=100, status="succeeded", task=task)
    scheduled = insert_jobs(fresh_tools.pool, prefix=prefix, count=1, status="scheduled", task=task)[0]
    with fresh_tools.pool.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO tornado_scheduled_jobs (job_id, queue, body, due_at)"
            " VALUES (%s, 'q', '{}', clock_timestamp() + interval '1 day')",
            (scheduled,),
        )
    store = RecordingStore(fresh_tools.pool)
    options = BulkOptions(batch_size=500)
    action = run_to_end(
        fresh_tools, BulkActionKind.CANCEL, JobFilter(task=task), actor="dave", options=options, store=store
    )

    assert (action.status, action.matched, action.done, action.skipped) == (
        "succeeded",
        100_301,
        100_201,
        100,
    )
    assert fresh_tools.search.tally(JobFilter(task=task)) == {
        JobStatus.CANCELLED: 100_001,
        JobStatus.RUNNING: 200,
        JobStatus.SUCCEEDED: 100,
    }
    with fresh_tools.pool.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE cancel_requested_at IS NOT NULL AND status = 'running'),"
            " (SELECT count(*) FROM tornado_scheduled_jobs WHERE job_id = %s)"
            " FROM tornado_jobs WHERE task = %s",
            (scheduled, task),
        )
        assert cur.fetchone() == (200, 0)  # running ones asked to stop; the scheduled one unparked
    worked = [(outcome, persisted) for outcome, persisted in store.batches if outcome.seen]
    assert len(worked) >= 100_301 // 500
    assert all(outcome.seen <= 500 for outcome, _ in worked)
    running_total = 0
    for outcome, persisted in worked:  # each batch's progress was written with it
        running_total += outcome.seen
        assert persisted == running_total
    assert [entry["phase"] for entry in audit_of(fresh_tools, action)] == ["started", "finished"]


def orphan(store: PostgresBulkActions, kind: BulkActionKind, job_filter: JobFilter) -> BulkActionRow:
    """An action started by a process that died at once ("gone", its lease already over)."""
    return store.create(
        kind, job_filter.to_json(), criteria=job_filter, operator="erin", runner="gone", lease_seconds=0
    )


def resumed(tools: Tools, action_id: int, batch_size: int) -> BulkAction:
    """The action once another process adopted it and finished it."""
    bulk = tools.bulk(BulkOptions(batch_size=batch_size))
    try:
        assert bulk.resume_orphans() == 1
        return finished(bulk, action_id)
    finally:
        bulk.close()


def test_an_action_whose_process_died_is_resumed_by_another_without_acting_twice(
    fresh_tools: Tools, prefix: str
) -> None:
    task = f"{prefix}.orphan"
    insert_jobs(fresh_tools.pool, prefix=prefix, count=1200, status="queued", task=task)
    store = PostgresBulkActions(fresh_tools.pool)
    job_filter = JobFilter(task=task)
    row = orphan(store, BulkActionKind.CANCEL, job_filter)
    for _ in range(2):  # the dead process got through two batches
        store.cancel_batch(row.id, runner="gone", criteria=job_filter, size=500, lease_seconds=0)

    action = resumed(fresh_tools, row.id, 500)

    assert (action.status, action.done, action.skipped) == ("succeeded", 1200, 0)
    assert fresh_tools.search.tally(job_filter) == {JobStatus.CANCELLED: 1200}
    assert (
        store.cancel_batch(row.id, runner="gone", criteria=job_filter, size=500, lease_seconds=0).held
        is False
    )


def test_a_stopping_process_gives_its_action_back_and_another_finishes_it(
    fresh_tools: Tools, prefix: str
) -> None:
    task = f"{prefix}.handover"
    insert_jobs(fresh_tools.pool, prefix=prefix, count=1000, status="queued", task=task)
    store = RecordingStore(fresh_tools.pool)
    store.hold_at = 3
    first = store.bulk = fresh_tools.bulk(BulkOptions(batch_size=100), store=store)
    started = first.start(BulkActionKind.CANCEL, JobFilter(task=task), actor="frank")
    wait_until(store.held.is_set, what="the third batch")
    first.close()  # the third batch ends, no fourth starts
    stopped = first.get(started.id)
    assert stopped is not None and (stopped.status, stopped.done) == ("running", 300)

    action = resumed(fresh_tools, started.id, 100)
    assert (action.status, action.done) == ("succeeded", 1000)
    assert fresh_tools.search.tally(JobFilter(task=task)) == {JobStatus.CANCELLED: 1000}


def test_a_redrive_resumed_in_the_middle_of_a_dlq_moves_each_letter_once(
    fresh_tools: Tools, prefix: str
) -> None:
    task = f"{prefix}.midway"
    source, dlq = fresh_tools.version_queues(task, "1.0.0")
    dead = insert_jobs(fresh_tools.pool, prefix=prefix, count=450, status="dead", task=task)
    send_letters(fresh_tools.queue, dlq, [envelope(j, task) for j in dead])
    store = PostgresBulkActions(fresh_tools.pool)
    job_filter = JobFilter(task=task)
    row = orphan(store, BulkActionKind.REDRIVE, job_filter)
    move = fresh_tools.routes.plan(BulkActionKind.REDRIVE)(task, "1.0.0")
    assert move is not None
    assert store.add_progress(row.id, runner="gone", position=SWEEP_LETTERS, lease_seconds=0)
    for _ in range(2):  # the dead process moved 200 letters
        store.sweep_letters(row.id, runner="gone", criteria=job_filter, move=move, size=100, lease_seconds=0)

    action = resumed(fresh_tools, row.id, 100)

    assert (action.status, action.done, action.skipped) == ("succeeded", 450, 0)
    assert sorted(Envelope.from_json(m.body).job_id for m in read_all(fresh_tools.queue, source)) == dead
    assert fresh_tools.search.tally(job_filter) == {JobStatus.QUEUED: 450}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_composition_roots_console_tools_work_together(
    stack_env: dict[str, str], backend: str, prefix: str
) -> None:
    settings = Settings.load({**stack_env, "TORNADO_QUEUE": backend, "TORNADO_QUEUE_PREFIX": f"tb{prefix}"})
    services, close_services = build_services(settings, pool_size=4)
    console, close_console = build_console_jobs(services, options=BulkOptions(batch_size=2))
    pool = PostgresPool(settings.database_url, max_size=2)
    task = f"{prefix}.root"
    source = queue_name(settings.queue_prefix, task, "1.0.0")
    services.queue.ensure_queue(
        QueueSpec(
            name=source, dead_letter_name=dead_letter_name(source), max_receive_count=3, visibility_timeout=30
        )
    )
    try:
        dead = insert_jobs(pool, prefix=prefix, count=5, status="dead", task=task, error="boom")
        send_letters(services.queue, dead_letter_name(source), [envelope(j, task) for j in dead])
        assert {letter.job_id for letter in console.dead_letters.list(task, "1.0.0")} == set(dead)
        assert console.search.count(JobFilter(task=task, error_text="BOOM")) == (5, False)

        started = console.bulk.start(BulkActionKind.REDRIVE, JobFilter(task=task), actor="root")
        action = finished(console.bulk, started.id)
        assert (action.status, action.done) == ("succeeded", 5)
        assert [a.id for a in console.bulk.recent(50)].count(action.id) == 1

        detail = console.details.get(dead[0])
        assert detail is not None and detail.job.status is JobStatus.QUEUED
        if backend == "postgres":  # SQS cannot find a message by job id without consuming the queue
            assert detail.message_queue == source and detail.payload == {"n": dead[0]}
    finally:
        close_console()
        services.queue.delete_queue(source)
        services.queue.delete_queue(dead_letter_name(source))
        pool.close()
        close_services()
