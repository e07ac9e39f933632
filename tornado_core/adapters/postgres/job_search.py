"""The console's job search in PostgreSQL: any filter over ``tornado_jobs``, newest first, by keyset."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tornado_core.adapters.postgres.job_queries import newest_first, rows_of, waiting_split
from tornado_core.adapters.postgres.jobs import _COLUMNS, _record
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.ports.console_jobs import JobCriteria
from tornado_core.ports.jobs import JobPage, JobRecord, JobStatus
from tornado_core.ports.operators import AuditEntry

#: The job columns of a search, on the alias ``j``.
_J_COLUMNS = ", ".join(f"j.{column.strip()}" for column in _COLUMNS.split(","))

# Jobs whose dead letter was moved by hand: only those still dead change (a worker may hold one now).
_SETTLE_DEAD = """
UPDATE tornado_jobs SET status = %(status)s, version = COALESCE(%(version)s, version),
    finished_at = CASE WHEN %(status)s = 'queued' THEN NULL ELSE COALESCE(finished_at, clock_timestamp()) END,
    lease_expires_at = NULL, updated_at = clock_timestamp()
WHERE job_id = ANY(%(job_ids)s) AND status = 'dead'
"""


def like_pattern(text: str) -> str:
    """An ``ILIKE`` pattern matching ``text`` anywhere (its ``%``, ``_`` and ``\\`` taken literally)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def criteria_sql(criteria: JobCriteria, alias: str = "j") -> tuple[str, dict[str, Any]]:
    """The ``WHERE`` condition of a filter on ``tornado_jobs AS alias``, and its parameters (``f_*``)."""
    conditions = ["TRUE"]
    params: dict[str, Any] = {}
    exact = {
        "task": criteria.task,
        "version": criteria.version,
        "tenant": criteria.tenant,
        "status": str(criteria.status) if criteria.status is not None else None,
        "idempotency_key": criteria.idempotency_key,
    }
    for column, value in exact.items():
        if value is not None:
            conditions.append(f"{alias}.{column} = %(f_{column})s")
            params[f"f_{column}"] = value
    if criteria.created_after is not None:
        conditions.append(f"{alias}.created_at >= %(f_after)s")
        params["f_after"] = criteria.created_after
    if criteria.created_before is not None:
        conditions.append(f"{alias}.created_at < %(f_before)s")
        params["f_before"] = criteria.created_before
    if criteria.error_text is not None:
        conditions.append(
            f"({alias}.error_type ILIKE %(f_error)s OR {alias}.error_message ILIKE %(f_error)s)"
        )
        params["f_error"] = like_pattern(criteria.error_text)
    return " AND ".join(conditions), params


def criteria_parts(criteria: JobCriteria, where: str, alias: str = "j") -> tuple[str, ...]:
    """``where`` (a filter's condition, see :func:`criteria_sql`) as :func:`waiting_split` reads it."""
    by_task = criteria.task is not None or criteria.version is not None
    return waiting_split(where, by_task=by_task, by_status=criteria.status is not None, alias=f"{alias}.")


class PostgresJobSearch:
    """:class:`~tornado_core.ports.console_jobs.JobSearchPort` on ``tornado_jobs`` (and the audit log).

    Args:
        pool: Pool of the job-store database.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def _rows(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def search(self, criteria: JobCriteria, *, limit: int, cursor: str | None) -> JobPage:
        """Matching jobs newest first (by id), paged by keyset on the id."""
        where, params = criteria_sql(criteria)
        if cursor:
            where += " AND j.job_id < %(cursor)s"
        sql = newest_first(_J_COLUMNS, "tornado_jobs j", criteria_parts(criteria, where), alias="j.")
        rows = self._rows(sql, {**params, "cursor": cursor, "limit": limit + 1})
        page = [_record(row) for row in rows[:limit]]
        return JobPage(page, page[-1].job_id if len(rows) > limit and page else None)

    def count(self, criteria: JobCriteria, *, cap: int) -> tuple[int, bool]:
        """How many match, counting at most ``cap``."""
        where, params = criteria_sql(criteria)
        matching = rows_of("1", "tornado_jobs j", criteria_parts(criteria, where))
        sql = f"SELECT count(*) FROM ({matching} LIMIT %(cap)s) AS m"
        counted = int(self._rows(sql, {**params, "cap": cap + 1})[0][0])
        return min(counted, cap), counted > cap

    def tally(self, criteria: JobCriteria, *, created_before: datetime | None = None) -> dict[JobStatus, int]:
        """Matching jobs (created no later than ``created_before``) by status."""
        where, params = criteria_sql(criteria)
        if created_before is not None:
            where += " AND j.created_at <= %(until)s"
        matching = rows_of("j.status", "tornado_jobs j", criteria_parts(criteria, where))
        rows = self._rows(
            f"SELECT status, count(*) FROM ({matching}) AS m GROUP BY status",
            {**params, "until": created_before},
        )
        return {JobStatus(status): int(count) for status, count in rows}

    def records(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        """The jobs of ``job_ids`` that exist."""
        if not job_ids:
            return {}
        rows = self._rows(f"SELECT {_COLUMNS} FROM tornado_jobs WHERE job_id = ANY(%s)", (list(job_ids),))
        return {row[0]: _record(row) for row in rows}

    def dead_among(
        self, criteria: JobCriteria, job_ids: Sequence[str], *, created_before: datetime
    ) -> set[str]:
        """Those of ``job_ids`` that match, are dead and were created no later than ``created_before``."""
        if not job_ids:
            return set()
        where, params = criteria_sql(criteria)
        sql = (
            f"SELECT j.job_id FROM tornado_jobs j WHERE j.job_id = ANY(%(ids)s) AND j.status = 'dead'"
            f" AND j.created_at <= %(until)s AND {where}"
        )
        return {row[0] for row in self._rows(sql, {**params, "ids": list(job_ids), "until": created_before})}

    def dead_versions(self, criteria: JobCriteria, *, created_before: datetime) -> list[tuple[str, str]]:
        """Each (task, version) with matching dead jobs, sorted."""
        where, params = criteria_sql(criteria)
        sql = (
            f"SELECT DISTINCT j.task, j.version FROM tornado_jobs j WHERE j.status = 'dead'"
            f" AND j.created_at <= %(until)s AND {where} ORDER BY 1, 2"
        )
        return [(row[0], row[1]) for row in self._rows(sql, {**params, "until": created_before})]

    def settle_dead(self, job_ids: Sequence[str], *, status: JobStatus, version: str | None = None) -> int:
        """Jobs still dead take ``status`` (and ``version``); returns how many changed."""
        if not job_ids:
            return 0
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_SETTLE_DEAD, {"status": str(status), "version": version, "job_ids": list(job_ids)})
            return int(cur.rowcount)

    def audit_trail(self, target: str, *, limit: int = 50) -> list[AuditEntry]:
        """The audit log's entries about ``target``, newest first."""
        rows = self._rows(
            "SELECT id, at, actor, action, target, detail FROM tornado_audit_log WHERE target = %s"
            " ORDER BY id DESC LIMIT %s",
            (target, limit),
        )
        return [
            AuditEntry(id=r[0], at=r[1].astimezone(UTC), actor=r[2], action=r[3], target=r[4], detail=r[5])
            for r in rows
        ]
