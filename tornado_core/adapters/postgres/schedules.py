"""Scheduled jobs and periodic schedules in PostgreSQL (``tornado_scheduled_jobs``, ``tornado_schedules``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import psycopg2.errors
from psycopg2.extras import Json

from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.errors import ScheduleExists
from tornado_core.ports.schedules import (
    DueJob,
    FireSchedule,
    MissedPolicy,
    ParkedJob,
    Schedule,
    SendDue,
)

# The rows travel as one JSON array of [job_id, tenant, task, version, key, submitted_at].
_PARK_ROWS = """
INSERT INTO tornado_jobs (job_id, tenant, task, version, idempotency_key, status, created_at, updated_at)
SELECT r->>0, r->>1, r->>2, r->>3, r->>4, 'scheduled', to_timestamp((r->>5)::float8), clock_timestamp()
FROM jsonb_array_elements(%(rows)s) AS r
ON CONFLICT (job_id) DO NOTHING
RETURNING job_id
"""

_PARK_MESSAGES = """
INSERT INTO tornado_scheduled_jobs (job_id, queue, body, due_at)
SELECT * FROM unnest(%(job_ids)s::text[], %(queues)s::text[], %(bodies)s::text[], %(due)s::timestamptz[])
ON CONFLICT (job_id) DO NOTHING
"""

# Due jobs, oldest first, skipping those another scheduler holds; cancelled ones are dropped.
_DUE = """
SELECT s.job_id, s.queue, s.body, s.due_at, j.status, j.tenant
FROM tornado_scheduled_jobs AS s LEFT JOIN tornado_jobs AS j USING (job_id)
WHERE s.due_at <= %(until)s
ORDER BY s.due_at
LIMIT %(limit)s
FOR UPDATE OF s SKIP LOCKED
"""

_RELEASED = """
WITH gone AS (DELETE FROM tornado_scheduled_jobs WHERE job_id = ANY(%(job_ids)s) RETURNING job_id)
UPDATE tornado_jobs SET status = 'queued', updated_at = clock_timestamp()
WHERE job_id IN (SELECT job_id FROM gone) AND status = 'scheduled'
"""

_SCHEDULE_COLUMNS = (
    "tenant, name, task, payload, cron, timezone, missed, paused, next_run_at, last_run_at, "
    "last_job_id, created_at"
)

_INSERT = f"""
INSERT INTO tornado_schedules ({_SCHEDULE_COLUMNS}, updated_at)
VALUES (%(tenant)s, %(name)s, %(task)s, %(payload)s, %(cron)s, %(timezone)s, %(missed)s, %(paused)s,
        %(next_run_at)s, NULL, NULL, clock_timestamp(), clock_timestamp())
"""

_REPLACE = """
ON CONFLICT (tenant, name) DO UPDATE SET
    task = EXCLUDED.task, payload = EXCLUDED.payload, cron = EXCLUDED.cron,
    timezone = EXCLUDED.timezone, missed = EXCLUDED.missed, paused = EXCLUDED.paused,
    next_run_at = EXCLUDED.next_run_at, updated_at = EXCLUDED.updated_at
"""

_FIRED = """
UPDATE tornado_schedules SET next_run_at = %(next_run_at)s,
    last_run_at = COALESCE(%(last_run_at)s, last_run_at),
    last_job_id = COALESCE(%(last_job_id)s, last_job_id),
    updated_at = clock_timestamp()
WHERE tenant = %(tenant)s AND name = %(name)s
"""


class PostgresSchedules:
    """:class:`~tornado_core.ports.schedules.SchedulesPort` on the job store's database.

    Args:
        pool: Connections to the job store's database.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    # --- jobs due later ---------------------------------------------------------------------

    def park(self, jobs: Sequence[ParkedJob]) -> None:
        """Record the jobs ``scheduled`` and keep their messages, in one commit (known ids are left)."""
        if not jobs:
            return
        rows = [[p.job.job_id, p.job.tenant, p.job.task, p.job.version, p.job.idempotency_key,
                 float(p.job.submitted_at)] for p in jobs]  # fmt: skip
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_PARK_ROWS, {"rows": orjson.dumps(rows).decode()})
            new = {str(row[0]) for row in cur.fetchall()}
            fresh = [p for p in jobs if p.job.job_id in new]
            cur.execute(_PARK_MESSAGES, {
                "job_ids": [p.job.job_id for p in fresh], "queues": [p.queue for p in fresh],
                "bodies": [p.body for p in fresh], "due": [p.due_at for p in fresh],
            })  # fmt: skip

    def release_due(self, *, until: datetime, limit: int, send: SendDue) -> int:
        """Send due jobs under their row locks, then forget them (see the port)."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_DUE, {"until": until, "limit": limit})
            rows = cur.fetchall()
            dropped = [str(r[0]) for r in rows if r[4] == "cancelled"]
            due = [
                DueJob(job_id=r[0], queue=r[1], body=r[2], due_at=r[3], tenant=r[5])
                for r in rows
                if r[4] != "cancelled"
            ]
            sent = list(send(due)) if due else []
            if sent or dropped:
                cur.execute(_RELEASED, {"job_ids": sent + dropped})
        return len(sent)

    def parked(self) -> int:
        """How many jobs wait for their time."""
        return int(self._one("SELECT count(*) FROM tornado_scheduled_jobs", {})[0])

    # --- periodic schedules -----------------------------------------------------------------

    def save(self, schedule: Schedule, *, replace: bool = False) -> Schedule:
        """Create (or replace) a schedule."""
        params = _params(schedule)
        sql = _INSERT + (_REPLACE if replace else "")
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute(sql, params)
        except psycopg2.errors.UniqueViolation:
            raise ScheduleExists(schedule.tenant, schedule.name) from None
        stored = self.get(schedule.tenant, schedule.name)
        assert stored is not None
        return stored

    def get(self, tenant: str, name: str) -> Schedule | None:
        """The schedule, or ``None``."""
        sql = (
            f"SELECT {_SCHEDULE_COLUMNS} FROM tornado_schedules WHERE tenant = %(tenant)s AND name = %(name)s"
        )
        row = self._one(sql, {"tenant": tenant, "name": name})
        return _schedule(row) if row else None

    def list(self, tenant: str | None = None) -> list[Schedule]:
        """Schedules by tenant and name."""
        where = "WHERE tenant = %(tenant)s" if tenant is not None else ""
        sql = f"SELECT {_SCHEDULE_COLUMNS} FROM tornado_schedules {where} ORDER BY tenant, name"
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, {"tenant": tenant})
            return [_schedule(row) for row in cur.fetchall()]

    def set_paused(self, tenant: str, name: str, *, paused: bool, next_run_at: datetime) -> Schedule | None:
        """Pause or resume."""
        sql = (
            "UPDATE tornado_schedules SET paused = %(paused)s, updated_at = clock_timestamp(),"
            " next_run_at = CASE WHEN %(paused)s THEN next_run_at ELSE %(next_run_at)s END"
            f" WHERE tenant = %(tenant)s AND name = %(name)s RETURNING {_SCHEDULE_COLUMNS}"
        )
        row = self._one(sql, {"tenant": tenant, "name": name, "paused": paused, "next_run_at": next_run_at})
        return _schedule(row) if row else None

    def remove(self, tenant: str, name: str) -> bool:
        """Delete a schedule."""
        sql = "DELETE FROM tornado_schedules WHERE tenant = %(tenant)s AND name = %(name)s RETURNING name"
        return self._one(sql, {"tenant": tenant, "name": name}) is not None

    def fire_due(self, *, now: datetime, limit: int, fire: FireSchedule) -> int:
        """Fire due schedules one by one, each in its own transaction under its row lock."""
        fired = 0
        while fired < limit:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute(
                    f"SELECT {_SCHEDULE_COLUMNS} FROM tornado_schedules"
                    " WHERE NOT paused AND next_run_at <= %(now)s ORDER BY next_run_at"
                    " LIMIT 1 FOR UPDATE SKIP LOCKED",
                    {"now": now},
                )
                row = cur.fetchone()
                if row is None:
                    return fired
                schedule = _schedule(row)
                firing = fire(schedule)
                cur.execute(_FIRED, {"tenant": schedule.tenant, "name": schedule.name, **vars(firing)})
            fired += 1
        return fired

    def _one(self, sql: str, params: dict[str, Any]) -> Any:
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()


def _params(s: Schedule) -> dict[str, Any]:
    return {
        "tenant": s.tenant, "name": s.name, "task": s.task, "payload": Json(s.payload), "cron": s.cron,
        "timezone": s.timezone, "missed": str(s.missed), "paused": s.paused, "next_run_at": s.next_run_at,
    }  # fmt: skip


def _schedule(row: Sequence[Any]) -> Schedule:
    return Schedule(
        tenant=row[0], name=row[1], task=row[2], payload=row[3], cron=row[4], timezone=row[5],
        missed=MissedPolicy(row[6]), paused=row[7], next_run_at=row[8], last_run_at=row[9],
        last_job_id=row[10], created_at=row[11],
    )  # fmt: skip
