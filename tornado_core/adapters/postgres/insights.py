"""The console's job figures in PostgreSQL: counts and percentiles computed by the server."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.ports.insights import Figures, ThroughputBucket, VersionKey

#: The jobs finished in the window, read through ``tornado_jobs_finished_idx`` (migration 0012).
_FINISHED = """
SELECT task, version, tenant, status,
       extract(epoch FROM started_at - created_at)::float8 AS wait,
       extract(epoch FROM finished_at - started_at)::float8 AS run
FROM tornado_jobs
WHERE finished_at >= %(since)s AND finished_at < %(until)s
  AND status IN ('succeeded', 'failed', 'dead', 'cancelled')
  AND (%(task)s::text IS NULL OR task = %(task)s)
"""

# Cancelled jobs are counted apart and left out of the other figures (an outcome nobody ran to).
_FIGURES = f"""
WITH f AS ({_FINISHED}), g AS (
    SELECT task, {{version}} AS version, {{tenant}} AS tenant,
           count(*) FILTER (WHERE status <> 'cancelled') AS finished,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status IN ('failed', 'dead')) AS failed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY wait)
               FILTER (WHERE status <> 'cancelled') AS waits,
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY run)
               FILTER (WHERE status <> 'cancelled') AS runs
    FROM f GROUP BY 1, 2, 3
)
SELECT task, version, tenant, finished, succeeded, failed, cancelled,
       finished / %(minutes)s::float8,
       COALESCE(failed::float8 / NULLIF(finished, 0), 0),
       waits, runs
FROM g ORDER BY {{order}} LIMIT %(limit)s
"""

_PER_VERSION = _FIGURES.format(version="version", tenant="NULL::text", order="task, version")
_PER_TENANT = _FIGURES.format(
    version="NULL::text", tenant="tenant", order="finished + cancelled DESC, task, tenant"
)

_THROUGHPUT = """
WITH counts AS (
    SELECT floor(extract(epoch FROM finished_at) / %(step)s)::bigint AS slot,
           count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE status IN ('failed', 'dead')) AS failed
    FROM tornado_jobs
    WHERE finished_at >= to_timestamp(%(first)s * %(step)s)
      AND finished_at < to_timestamp((%(last)s + 1) * %(step)s)
      AND status IN ('succeeded', 'failed', 'dead')
      AND task = %(task)s AND (%(version)s::text IS NULL OR version = %(version)s)
    GROUP BY 1
)
SELECT to_timestamp(s.slot * %(step)s), COALESCE(c.succeeded, 0), COALESCE(c.failed, 0)
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS s (slot)
LEFT JOIN counts AS c USING (slot)
ORDER BY s.slot
"""

#: Through ``tornado_jobs_status_idx``: the cost follows the queued backlog, not the table.
_OLDEST_WAITING = """
SELECT task, version, GREATEST(extract(epoch FROM %(now)s - min(created_at)), 0)::float8
FROM tornado_jobs
WHERE status = 'queued'
  AND (task, version) IN (SELECT * FROM unnest(%(tasks)s::text[], %(versions)s::text[]))
GROUP BY task, version
"""

_RELEASE_VERSIONS = """
SELECT task, version FROM tornado_releases WHERE state <> 'retired'
UNION SELECT task, current_version FROM tornado_routes
UNION SELECT task, ramping_version FROM tornado_routes WHERE ramping_version IS NOT NULL
UNION SELECT r.task, p.version FROM tornado_routes AS r, jsonb_each_text(r.pins) AS p (tenant, version)
ORDER BY 1, 2
"""

#: Most intervals one throughput series may have.
MAX_BUCKETS = 10_000


def _percentiles(values: Sequence[float | None] | None) -> tuple[float | None, float | None, float | None]:
    p50, p95, p99 = values if values is not None else (None, None, None)
    return p50, p95, p99


def _figures(row: Sequence[Any]) -> Figures:
    wait, run = _percentiles(row[9]), _percentiles(row[10])
    return Figures(
        task=row[0], version=row[1], tenant=row[2],
        finished=row[3], succeeded=row[4], failed=row[5], cancelled=row[6],
        per_minute=row[7], error_rate=row[8],
        wait_p50=wait[0], wait_p95=wait[1], wait_p99=wait[2],
        run_p50=run[0], run_p95=run[1], run_p99=run[2],
    )  # fmt: skip


def _minutes(since: datetime, until: datetime) -> float:
    minutes = (until - since).total_seconds() / 60.0
    if minutes <= 0:
        raise ValueError(f"the window must end after it starts ({since} .. {until})")
    return minutes


class PostgresJobFigures:
    """Throughput, latency percentiles and error rates over ``tornado_jobs`` (see :class:`JobFiguresPort`).

    Args:
        pool: Pool of the job-store database.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def _rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def _figures(
        self, sql: str, since: datetime, until: datetime, *, task: str | None, limit: int | None
    ) -> list[Figures]:
        params = {
            "since": since,
            "until": until,
            "task": task,
            "limit": limit,
            "minutes": _minutes(since, until),
        }
        return [_figures(row) for row in self._rows(sql, params)]

    def version_figures(self, *, since: datetime, until: datetime) -> list[Figures]:
        """Figures per task version of the jobs finished in ``[since, until)``, by task and version."""
        return self._figures(_PER_VERSION, since, until, task=None, limit=None)

    def tenant_figures(
        self, *, since: datetime, until: datetime, task: str | None = None, limit: int = 50
    ) -> list[Figures]:
        """Figures per task and tenant of the jobs finished in ``[since, until)``, busiest first."""
        return self._figures(_PER_TENANT, since, until, task=task, limit=limit)

    def throughput(
        self, task: str, version: str | None, *, since: datetime, until: datetime, step: float
    ) -> list[ThroughputBucket]:
        """Succeeded and failed jobs per interval of ``step`` seconds, empty intervals included.

        Raises:
            ValueError: ``step`` is not positive, or the window would have more than
                :data:`MAX_BUCKETS` intervals.
        """
        if not step > 0:
            raise ValueError(f"step must be positive, not {step}")
        first, last = math.floor(since.timestamp() / step), math.floor(until.timestamp() / step)
        if not 0 <= last - first < MAX_BUCKETS:
            raise ValueError(f"{last - first + 1} intervals of {step} s: more than {MAX_BUCKETS}, or none")
        params = {"task": task, "version": version, "step": float(step), "first": first, "last": last}
        return [
            ThroughputBucket(start.astimezone(UTC), succeeded, failed)
            for start, succeeded, failed in self._rows(_THROUGHPUT, params)
        ]

    def oldest_waiting(self, versions: Sequence[VersionKey], *, now: datetime) -> dict[VersionKey, float]:
        """Seconds the oldest ``queued`` job of each version has waited at ``now``."""
        if not versions:
            return {}
        params = {"now": now, "tasks": [t for t, _ in versions], "versions": [v for _, v in versions]}
        return {(task, version): age for task, version, age in self._rows(_OLDEST_WAITING, params)}

    def release_versions(self) -> list[VersionKey]:
        """Task versions released and not retired, or routed (current, ramping, pinned)."""
        return [(task, version) for task, version in self._rows(_RELEASE_VERSIONS, {})]
