"""The console's job search and job detail on a real PostgreSQL (and the S3 endpoint for claim checks)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.integration.console_jobs_fixtures import envelope, insert_jobs, send_letters
from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.adapters.postgres import PostgresJobStore, PostgresPool, PostgresQueue
from tornado_core.adapters.postgres.audit import PostgresAuditLog
from tornado_core.adapters.postgres.dead_letter_moves import PostgresDeadLetters
from tornado_core.adapters.postgres.job_search import PostgresJobSearch
from tornado_core.console.dead_letters import DeadLetterRoutes
from tornado_core.console.filters import JobFilter
from tornado_core.console.job_detail import JobDetails
from tornado_core.console.search import JobSearch
from tornado_core.errors import FilterInvalid
from tornado_core.naming import payload_key, result_key
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.queue import QueueSpec

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(postgres_url: str) -> Iterator[PostgresPool]:
    pool = PostgresPool(postgres_url, max_size=4)
    yield pool
    pool.close()


@pytest.fixture
def search(pool: PostgresPool) -> JobSearch:
    return JobSearch(PostgresJobSearch(pool))


def ids_of(search: JobSearch, **fields: object) -> list[str]:
    return [job.job_id for job in search.search(JobFilter(**fields), limit=500).jobs]  # type: ignore[arg-type]


@pytest.fixture
def jobs(pool: PostgresPool, prefix: str) -> dict[str, list[str]]:
    """Jobs of one task that differ in one field each, by what sets them apart."""
    task = f"{prefix}.search"

    def some(name: str, count: int, status: str, **fields: object) -> list[str]:
        return insert_jobs(pool, prefix=f"{prefix}-{name}", count=count, status=status, task=task, **fields)  # type: ignore[arg-type]

    made = {
        "plain": some("p", 3, "queued"),
        "v2": some("v", 2, "queued", version="2.0.0"),
        "globex": some("g", 2, "queued", tenant=f"{prefix}-gx"),
        "dead": some("d", 2, "dead", error="Read TIMEOUT after 30s"),
        "percent": some("x", 1, "dead", error="quota 100% used"),
        "keyed": some("k", 2, "succeeded", key=True),
    }
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE tornado_jobs SET created_at = '2020-01-02T12:00:00Z' WHERE job_id = ANY(%s)",
            (made["plain"][:1],),
        )
    return made


def test_each_field_narrows_the_search(search: JobSearch, jobs: dict[str, list[str]], prefix: str) -> None:
    task = f"{prefix}.search"
    everything = sorted((j for group in jobs.values() for j in group), reverse=True)
    assert ids_of(search, task=task) == everything  # newest (greatest id) first
    assert ids_of(search, task=task, version="2.0.0") == sorted(jobs["v2"], reverse=True)
    assert ids_of(search, tenant=f"{prefix}-gx") == sorted(jobs["globex"], reverse=True)
    assert ids_of(search, task=task, status=JobStatus.DEAD) == sorted(
        jobs["dead"] + jobs["percent"], reverse=True
    )
    assert ids_of(search, task=task, idempotency_key="key-2") == [jobs["keyed"][1]]
    assert ids_of(search, task=task, error_text="timeout") == sorted(jobs["dead"], reverse=True)
    assert ids_of(search, task=task, error_text="100%") == jobs["percent"]
    assert ids_of(search, task=task, error_text="1_0") == []  # "_" is a character, not a wildcard
    old = datetime(2020, 1, 2, 12, tzinfo=UTC)
    assert ids_of(search, task=task, created_before=datetime(2021, 1, 1, tzinfo=UTC)) == jobs["plain"][:1]
    assert ids_of(search, task=task, created_after=old, created_before=datetime(2020, 1, 3, tzinfo=UTC)) == [
        jobs["plain"][0]
    ]
    assert jobs["plain"][0] not in ids_of(search, task=task, created_after=datetime(2021, 1, 1, tzinfo=UTC))


def test_pages_follow_each_other_by_cursor_and_counts_stop_at_their_cap(
    search: JobSearch, jobs: dict[str, list[str]], prefix: str
) -> None:
    job_filter = JobFilter(task=f"{prefix}.search")
    seen: list[str] = []
    cursor = None
    while True:
        page = search.search(job_filter, limit=5, cursor=cursor)
        assert len(page.jobs) <= 5
        seen += [job.job_id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted((j for group in jobs.values() for j in group), reverse=True)
    assert search.count(job_filter) == (12, False)
    assert search.count(job_filter, cap=5) == (5, True)
    with pytest.raises(FilterInvalid) as caught:
        search.search(job_filter, limit=0)
    assert caught.value.field == "limit"


@pytest.fixture
def objects(aws_endpoint_url: str) -> S3ObjectStore:
    return S3ObjectStore(make_client("s3", region="us-east-1", endpoint_url=aws_endpoint_url), "tornado")


def details_of(pool: PostgresPool, objects: S3ObjectStore, queue_prefix: str) -> JobDetails:
    search = PostgresJobSearch(pool)
    return JobDetails(
        jobs=PostgresJobStore(pool), search=search, letters=PostgresDeadLetters(pool), objects=objects,
        routes=DeadLetterRoutes(queue_prefix, lambda task: None),
    )  # fmt: skip


def fetch(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1")
    with urllib.request.urlopen(url, timeout=10) as answer:
        return bytes(answer.read())


def test_a_dead_jobs_detail_shows_its_payload_error_and_audited_actions(
    pool: PostgresPool, objects: S3ObjectStore, prefix: str
) -> None:
    task = f"{prefix}.detail"
    queue_prefix = f"tc{prefix}"
    job_id = insert_jobs(pool, prefix=prefix, count=1, status="dead", task=task, error="boom")[0]
    routes = DeadLetterRoutes(queue_prefix, lambda task: None)
    source, dlq = routes.queues(task, "1.0.0")
    queue = PostgresQueue(pool)
    queue.ensure_queue(
        QueueSpec(name=source, dead_letter_name=dlq, max_receive_count=3, visibility_timeout=30)
    )
    try:
        send_letters(queue, dlq, [envelope(job_id, task)])
        PostgresAuditLog(pool).record(actor="alice", action="dead_letter.inspect", target=job_id)
        detail = details_of(pool, objects, queue_prefix).get(job_id)
    finally:
        queue.delete_queue(source)
        queue.delete_queue(dlq)
        queue.close()

    assert detail is not None
    assert (detail.job.status, detail.job.error_message) == (JobStatus.DEAD, "boom")
    assert detail.payload == {"n": job_id} and detail.message_queue == dlq
    assert detail.payload_link is None and detail.result_link is None
    whats = [what for _, what in detail.timeline]
    assert whats[0].startswith("created for acme") and "finished: dead" in whats
    assert "dead_letter.inspect by alice" in whats
    assert [at for at, _ in detail.timeline] == sorted(at for at, _ in detail.timeline)


def test_claim_checked_payloads_and_results_are_links_that_work(
    pool: PostgresPool, objects: S3ObjectStore, prefix: str
) -> None:
    task = f"{prefix}.big"
    job_id = insert_jobs(pool, prefix=prefix, count=1, status="succeeded", task=task)[0]
    objects.put(payload_key(task, job_id), b'{"rows": 100000}')
    objects.put(result_key(task, job_id), b'{"total": 42}')
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE tornado_jobs SET result_ref = %s WHERE job_id = %s", (result_key(task, job_id), job_id)
        )

    detail = details_of(pool, objects, f"tc{prefix}").get(job_id)

    assert detail is not None and detail.payload is None
    assert detail.payload_link is not None and fetch(detail.payload_link) == b'{"rows": 100000}'
    assert detail.result_link is not None and fetch(detail.result_link) == b'{"total": 42}'
    assert details_of(pool, objects, f"tc{prefix}").get(f"{prefix}-no-such-job") is None
