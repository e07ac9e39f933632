"""Fixtures of the console's job tests: each queue backend, jobs written in bulk, the console's job tools."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.helpers import wait_until
from tornado_core.adapters.postgres import PostgresPool, PostgresQueue
from tornado_core.adapters.postgres.audit import PostgresAuditLog
from tornado_core.adapters.postgres.bulk_actions import PostgresBulkActions
from tornado_core.adapters.postgres.dead_letter_moves import PostgresDeadLetters
from tornado_core.adapters.postgres.job_search import PostgresJobSearch
from tornado_core.console.bulk import BulkAction, BulkActions, BulkOptions
from tornado_core.console.dead_letters import DeadLetterBrowser, DeadLetterRoutes, ScannedDeadLetters
from tornado_core.message import Envelope
from tornado_core.ports.console_jobs import BulkActionStorePort, DeadLetterStorePort
from tornado_core.ports.queue import OutgoingMessage, QueuePort, QueueSpec, ReceivedMessage

BACKENDS = ("postgres", "sqs")


@dataclass
class Tools:
    """The console's job tools on one queue backend, with the queues a test made (deleted after)."""

    backend: str
    pool: PostgresPool
    queue: QueuePort
    queue_prefix: str
    search: PostgresJobSearch
    audit: PostgresAuditLog
    routes: DeadLetterRoutes
    letters: DeadLetterStorePort
    browser: DeadLetterBrowser
    current: dict[str, str] = field(default_factory=dict)  # task -> its current version (retry)
    made: list[str] = field(default_factory=list)

    def bulk(
        self, options: BulkOptions | None = None, store: BulkActionStorePort | None = None
    ) -> BulkActions:
        """Bulk actions of a new process (close it)."""
        return BulkActions(
            store=store or PostgresBulkActions(self.pool), search=self.search, queue=self.queue,
            audit=self.audit, routes=self.routes, letters_in_store=self.backend == "postgres",
            options=options,
        )  # fmt: skip

    def version_queues(self, task: str, version: str) -> tuple[str, str]:
        """Make the version's queue and DLQ; returns their names."""
        source, dlq = self.routes.queues(task, version)
        self.queue.ensure_queue(
            QueueSpec(name=source, dead_letter_name=dlq, max_receive_count=3, visibility_timeout=30)
        )
        self.made += [source, dlq]
        return source, dlq


def make_tools(backend: str, pool: PostgresPool, queue: QueuePort, queue_prefix: str) -> Tools:
    search = PostgresJobSearch(pool)
    letters: DeadLetterStorePort = (
        PostgresDeadLetters(pool) if backend == "postgres" else ScannedDeadLetters(queue)
    )
    current: dict[str, str] = {}
    routes = DeadLetterRoutes(queue_prefix, current.get)
    return Tools(
        backend=backend, pool=pool, queue=queue, queue_prefix=queue_prefix, search=search,
        audit=PostgresAuditLog(pool), routes=routes, letters=letters,
        browser=DeadLetterBrowser(letters, search, routes), current=current,
    )  # fmt: skip


def _queue(backend: str, pool: PostgresPool, request: pytest.FixtureRequest) -> Iterator[QueuePort]:
    if backend == "postgres":
        queue = PostgresQueue(pool)
        yield queue
        queue.close()
        return
    from tornado_core.adapters.aws.clients import make_client
    from tornado_core.adapters.aws.sqs import SqsQueue

    endpoint = request.getfixturevalue("aws_endpoint_url")
    yield SqsQueue(
        make_client("sqs", region="us-east-1", endpoint_url=endpoint, credentials=("test", "test"))
    )


@pytest.fixture(name="tools", params=BACKENDS)
def tools_fixture(request: pytest.FixtureRequest, postgres_url: str, unique_prefix: str) -> Iterator[Tools]:
    """The console's job tools on each queue backend in turn."""
    pool = PostgresPool(postgres_url, max_size=8)
    queues = _queue(request.param, pool, request)
    made = make_tools(request.param, pool, next(queues), f"tc{unique_prefix}")
    yield made
    for name in made.made:
        made.queue.delete_queue(name)
    queues.close()
    pool.close()


def insert_jobs(
    pool: PostgresPool,
    *,
    prefix: str,
    count: int,
    status: str,
    task: str,
    version: str = "1.0.0",
    tenant: str = "acme",
    error: str | None = None,
    key: bool = False,
) -> list[str]:
    """Write ``count`` jobs in one statement; their ids are ``<prefix>-<status>-<n>`` (sorted as numbered)."""
    finished = status in ("succeeded", "failed", "dead", "cancelled")
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO tornado_jobs (job_id, tenant, task, version, idempotency_key, status, attempts,
                error_type, error_message, created_at, started_at, finished_at, updated_at)
            SELECT %(prefix)s || '-' || %(status)s || '-' || lpad(g::text, 7, '0'), %(tenant)s, %(task)s,
                   %(version)s, CASE WHEN %(key)s THEN 'key-' || g END, %(status)s,
                   CASE WHEN %(status)s IN ('queued', 'scheduled') THEN 0 ELSE 1 END,
                   CASE WHEN %(error)s::text IS NOT NULL THEN 'TaskError' END, %(error)s,
                   clock_timestamp() - interval '1 minute', NULL,
                   CASE WHEN %(finished)s THEN clock_timestamp() END, clock_timestamp()
            FROM generate_series(1, %(count)s) AS g
            """,
            {
                "prefix": prefix, "status": status, "tenant": tenant, "task": task, "version": version,
                "key": key, "error": error, "finished": finished, "count": count,
            },
        )  # fmt: skip
    return [f"{prefix}-{status}-{n:07d}" for n in range(1, count + 1)]


def envelope(job_id: str, task: str, version: str = "1.0.0", tenant: str = "acme") -> str:
    """A job's message body."""
    return Envelope(job_id=job_id, task=task, version=version, tenant=tenant, payload={"n": job_id}).to_json()


def send_letters(queue: QueuePort, name: str, bodies: list[str]) -> None:
    """Put messages into ``name`` (a DLQ, as the worker's dead-lettering would)."""
    step = queue.max_send_batch
    for start in range(0, len(bodies), step):
        chunk = [OutgoingMessage(body) for body in bodies[start : start + step]]
        assert queue.send_batch(name, chunk) == [None] * len(chunk)


def read_all(queue: QueuePort, name: str) -> list[ReceivedMessage]:
    """Every visible message of ``name`` (hidden a minute, not deleted)."""
    got: list[ReceivedMessage] = []
    while batch := queue.receive(
        name, max_messages=queue.max_receive_batch, wait_seconds=1, visibility_timeout=60
    ):
        got.extend(batch)
    return got


def finished(bulk: BulkActions, action_id: int, *, timeout: float = 300.0) -> BulkAction:
    """The action once it ended."""

    def ended() -> BulkAction | None:
        action = bulk.get(action_id)
        return action if action is not None and action.status != "running" else None

    done = wait_until(ended, timeout=timeout, what=f"bulk action {action_id} to end")
    assert isinstance(done, BulkAction)
    return done
