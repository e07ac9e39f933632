"""Queued jobs stay out of the task indexes (migration 0013), and searches by task still use those indexes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tornado_core.adapters.postgres import PostgresPool
from tornado_core.adapters.postgres.job_queries import newest_first
from tornado_core.adapters.postgres.job_search import _J_COLUMNS, criteria_parts, criteria_sql
from tornado_core.console.filters import JobFilter
from tornado_core.ports.jobs import JobStatus

pytestmark = pytest.mark.integration

TASK_INDEXES = ("tornado_jobs_tenant_task_idx", "tornado_jobs_task_idx", "tornado_jobs_task_version_idx")


@pytest.fixture
def pool(postgres_url: str) -> Iterator[PostgresPool]:
    pool = PostgresPool(postgres_url, max_size=2)
    yield pool
    pool.close()


def rows(pool: PostgresPool, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with pool.connection() as conn, conn.cursor() as cur:
        # The test table is small: the planner would rather read it whole than show its indexes.
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute(sql, params)
        return cur.fetchall()


def test_the_task_indexes_hold_only_jobs_past_queued(pool: PostgresPool) -> None:
    found = rows(pool, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tornado_jobs'")
    definitions = dict(found)
    for name in TASK_INDEXES:
        assert definitions[name].endswith("WHERE (status <> 'queued'::text)"), definitions[name]
    for name in ("tornado_jobs_pkey", "tornado_jobs_tenant_idx", "tornado_jobs_status_idx"):
        assert " WHERE " not in definitions[name]  # every job, queued ones included


@pytest.mark.parametrize(
    "fields",
    [
        {"tenant": "acme", "task": "sped.generate"},
        {"task": "sped.generate"},
        {"task": "sped.generate", "version": "2.0.0"},
        {"task": "sped.generate", "status": JobStatus.DEAD},
    ],
)
def test_a_search_by_task_reads_a_task_index_for_jobs_past_queued(
    pool: PostgresPool, fields: dict[str, Any]
) -> None:
    # PostgreSQL reads a partial index only for a query that implies its condition: without the split
    # into the jobs past queued and the queued ones, no task index would be usable.
    criteria = JobFilter(**fields)
    where, params = criteria_sql(criteria)
    sql = newest_first(_J_COLUMNS, "tornado_jobs j", criteria_parts(criteria, where), alias="j.")
    plan = "\n".join(line for (line,) in rows(pool, "EXPLAIN " + sql, {**params, "limit": 51}))
    assert any(index in plan for index in TASK_INDEXES), plan
    # The queued part reads an index too (status or tenant: the planner picks by the statistics of the
    # moment), never the whole table. Seq scans are off, so a plan shows one only if no index can serve.
    assert "Seq Scan" not in plan, plan
