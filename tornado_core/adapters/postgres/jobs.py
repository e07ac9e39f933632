"""The job store in PostgreSQL (table ``tornado_jobs``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg2.extensions import cursor as Cursor
from psycopg2.extras import execute_values

from tornado_core.adapters.postgres.job_control_sql import CANCEL, CANCEL_UNRECORDED, DONE, HOLD_UNIQUE
from tornado_core.adapters.postgres.job_queries import newest_first, waiting_split
from tornado_core.adapters.postgres.pool import PostgresPool, without_flush_wait
from tornado_core.adapters.postgres.prepared import Prepared
from tornado_core.jsontext import compact
from tornado_core.ports.jobs import (
    FINISHED_STATUSES,
    CancelOutcome,
    Claim,
    ClaimOutcome,
    Failure,
    JobCount,
    JobPage,
    JobRecord,
    JobStatus,
    NewJob,
    Success,
    cancel_outcome,
)

_COLUMNS = (
    "job_id, tenant, task, version, status, attempts, progress, progress_note, result, "
    "result_ref, error_type, error_message, error_traceback, created_at, started_at, "
    "finished_at, updated_at"
)

# The rows travel as one JSON array of ``[job_id, tenant, task, version, key, submitted_at]``:
# one parameter to adapt instead of six arrays of a hundred values each (the API's hot path).
_INSERT_QUEUED = """
INSERT INTO tornado_jobs
    (job_id, tenant, task, version, idempotency_key, status, created_at, updated_at)
SELECT v.job_id, v.tenant, v.task, v.version, v.idempotency_key, 'queued', v.created_at,
       v.created_at
FROM (
    SELECT r->>0 AS job_id, r->>1 AS tenant, r->>2 AS task, r->>3 AS version,
           r->>4 AS idempotency_key,
           COALESCE(to_timestamp(NULLIF((r->>5)::float8, 0)), clock_timestamp()) AS created_at
    FROM jsonb_array_elements(%(rows)s) AS r
) AS v
"""

#: Rows of new ids only: a plain insert skips the upsert's speculative insertion (a quarter of
#: the row's cost on the server) and fails with a unique violation on a known id.
_INSERT_NEW_PREPARED = Prepared("tornado_insert_new_json", _INSERT_QUEUED, {"rows": "jsonb"})

_RECORD_QUEUED = (
    _INSERT_QUEUED
    + """-- A job cancelled before its row was written gets its task and version; one a worker claimed
-- before its row was written (SQS: the row comes behind the message) gets its idempotency key.
ON CONFLICT (job_id) DO UPDATE SET
    task = CASE WHEN tornado_jobs.task = '' THEN EXCLUDED.task ELSE tornado_jobs.task END,
    version = CASE WHEN tornado_jobs.task = '' THEN EXCLUDED.version ELSE tornado_jobs.version END,
    created_at = CASE WHEN tornado_jobs.task = '' THEN EXCLUDED.created_at ELSE tornado_jobs.created_at END,
    idempotency_key = COALESCE(tornado_jobs.idempotency_key, EXCLUDED.idempotency_key)
WHERE tornado_jobs.task = ''
   OR (tornado_jobs.idempotency_key IS NULL AND EXCLUDED.idempotency_key IS NOT NULL)
"""
)

_RECORD_QUEUED_PREPARED = Prepared("tornado_record_queued_json", _RECORD_QUEUED, {"rows": "jsonb"})

# One atomic statement per receive: insert each job as running, or take it over unless it
# succeeded or another worker holds an unexpired lease. A job whose row does not come back was
# refused. Rows go in job-id order, so that workers claiming overlapping batches cannot deadlock.
_CLAIM = """
INSERT INTO tornado_jobs AS j
    (job_id, tenant, task, version, idempotency_key, status, attempts, worker,
     lease_expires_at, created_at, started_at, updated_at)
SELECT v.job_id, v.tenant, v.task, v.version, v.key, 'running', 1, v.worker,
       clock_timestamp() + %(lease)s * interval '1 second',
       COALESCE(to_timestamp(NULLIF(v.submitted_at, 0)), clock_timestamp()),
       clock_timestamp(), clock_timestamp()
FROM unnest(%(job_ids)s, %(tenants)s, %(tasks)s, %(versions)s, %(keys)s, %(workers)s, %(submitted)s)
    AS v (job_id, tenant, task, version, key, worker, submitted_at)
ORDER BY v.job_id
ON CONFLICT (job_id) DO UPDATE SET
    status = 'running',
    attempts = j.attempts + 1,
    worker = EXCLUDED.worker,
    lease_expires_at = EXCLUDED.lease_expires_at,
    started_at = COALESCE(j.started_at, EXCLUDED.started_at),
    updated_at = EXCLUDED.updated_at
WHERE j.status NOT IN ('succeeded', 'cancelled')
  AND j.cancel_requested_at IS NULL
  AND NOT (j.status = 'running'
           AND j.worker IS DISTINCT FROM EXCLUDED.worker
           AND j.lease_expires_at > clock_timestamp())
RETURNING j.job_id
"""


_CLAIM_PREPARED = Prepared(
    "tornado_claim",
    _CLAIM,
    {
        "lease": "float8", "job_ids": "text[]", "tenants": "text[]", "tasks": "text[]", "versions": "text[]",
        "keys": "text[]", "workers": "text[]", "submitted": "float8[]",
    },
)  # fmt: skip

# A claimed job that never started goes back as it was before the claim.
_RELEASE = """
UPDATE tornado_jobs AS j SET
    status = CASE WHEN j.attempts > 1 THEN 'retrying' ELSE 'queued' END,
    attempts = j.attempts - 1,
    started_at = CASE WHEN j.attempts > 1 THEN j.started_at END,
    worker = NULL, lease_expires_at = NULL, updated_at = clock_timestamp()
FROM (VALUES %s) AS v (job_id, worker)
WHERE j.job_id = v.job_id AND j.worker = v.worker AND j.status = 'running'
"""

_SUCCESSES = """
UPDATE tornado_jobs AS j SET status = 'succeeded', result = v.result::jsonb, result_ref = v.ref, progress = 1,
    finished_at = clock_timestamp(), error_type = NULL, error_message = NULL, error_traceback = NULL,
    lease_expires_at = NULL, updated_at = clock_timestamp()
FROM unnest(%(job_ids)s, %(results)s, %(refs)s) AS v (job_id, result, ref)
WHERE j.job_id = ANY(%(job_ids)s) AND j.job_id = v.job_id
"""

# Each job by primary key: planned while the table was nearly empty, a hash join would read the whole
# job history at every commit once it has grown.
_SUCCESSES_PREPARED = Prepared(
    "tornado_successes",
    _SUCCESSES,
    {"job_ids": "text[]", "results": "text[]", "refs": "text[]"},
    by_index=True,
)

_FAILURE = """
UPDATE tornado_jobs SET status = %(status)s, error_type = %(type)s, error_message = %(message)s,
    error_traceback = %(traceback)s, lease_expires_at = NULL, updated_at = clock_timestamp(),
    finished_at = CASE WHEN %(final)s THEN clock_timestamp() END
WHERE job_id = %(job_id)s
"""


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _record(row: Sequence[Any]) -> JobRecord:
    created, started, finished, updated = (_utc(v) for v in row[13:17])
    assert created is not None and updated is not None
    return JobRecord(
        job_id=row[0],
        tenant=row[1],
        task=row[2],
        version=row[3],
        status=JobStatus(row[4]),
        attempts=row[5],
        progress=row[6],
        progress_note=row[7],
        result=row[8],
        result_ref=row[9],
        error_type=row[10],
        error_message=row[11],
        error_traceback=row[12],
        created_at=created,
        started_at=started,
        finished_at=finished,
        updated_at=updated,
    )


def insert_queued(cur: Cursor, jobs: Sequence[NewJob], *, all_new: bool = False) -> None:
    """Insert accepted jobs as ``queued`` in the cursor's transaction; known ids are left as they are.

    Args:
        cur: A cursor whose transaction the caller commits.
        jobs: The jobs.
        all_new: Assume no id is known yet: a plain, cheaper insert that raises
            ``psycopg2.errors.UniqueViolation`` (aborting the transaction) if one is.
    """
    statement, params = queued_statement(jobs, all_new=all_new)
    statement.execute(cur, params)


def queued_statement(jobs: Sequence[NewJob], *, all_new: bool = False) -> tuple[Prepared, dict[str, Any]]:
    """The statement of :func:`insert_queued` and its parameters, to send with others."""
    rows = [[j.job_id, j.tenant, j.task, j.version, j.idempotency_key, float(j.submitted_at)] for j in jobs]
    statement = _INSERT_NEW_PREPARED if all_new else _RECORD_QUEUED_PREPARED
    return statement, {"rows": orjson.dumps(rows).decode()}


def hold_unique_key(cur: Cursor, task: str, tenant: str, key: str, job_id: str, *, window: float) -> str:
    """Let ``job_id`` hold the key unless its holder still answers for it, in the cursor's transaction.

    Returns:
        The key's holder: ``job_id`` if it took the key.
    """
    params = {"task": task, "tenant": tenant, "key": key, "job_id": job_id, "window": float(window)}
    cur.execute(HOLD_UNIQUE, params)
    if cur.fetchone() is not None:
        return job_id
    cur.execute(
        "SELECT job_id FROM tornado_unique_jobs WHERE task = %(task)s AND tenant = %(tenant)s"
        " AND unique_key = %(key)s",
        params,
    )
    row = cur.fetchone()
    return str(row[0]) if row else job_id


def write_successes(cur: Cursor, successes: Sequence[Success]) -> None:
    """Mark jobs succeeded with one statement, in the cursor's transaction (committed by the caller)."""
    if successes:
        params = {
            "job_ids": [s.job_id for s in successes],
            "results": [s.result_json if s.result_json is not None else compact(s.result) for s in successes],
            "refs": [s.result_ref for s in successes],
        }
        _SUCCESSES_PREPARED.execute(cur, params)


def _claim_outcome(claim: Claim, first: dict[str, Claim], claimed: set[str], done: set[str]) -> ClaimOutcome:
    job_id = claim.job.job_id
    if job_id in done:
        return ClaimOutcome.ALREADY_DONE
    # A later claim of a job in the same call is refused, as the store would refuse it after the first.
    return ClaimOutcome.CLAIMED if job_id in claimed and first[job_id] is claim else ClaimOutcome.BUSY


class PostgresJobStore:
    """Persistent job state with the claim and lease rules of the worker loop.

    Args:
        pool: Pool of the database holding ``tornado_jobs`` (see ``apply_migrations``).

    Every method raises ``StoreUnavailable`` when PostgreSQL cannot be reached.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def _execute(self, sql: str, params: Any, *, durable: bool = True) -> None:
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql if durable else without_flush_wait(sql), params)

    def record_queued(self, jobs: Sequence[NewJob]) -> None:
        """Insert accepted jobs in one statement; known ids are left as they are."""
        if jobs:
            with self._pool.connection() as conn, conn.cursor() as cur:
                insert_queued(cur, jobs)

    def claim(self, job: NewJob, *, attempt: int, lease_seconds: float, worker: str) -> ClaimOutcome:
        """Atomically take a delivered job (see :class:`JobStorePort`)."""
        claims = [Claim(job=job, attempt=attempt, worker=worker)]
        return self.claim_many(claims, lease_seconds=lease_seconds)[0]

    def claim_many(self, claims: Sequence[Claim], *, lease_seconds: float) -> list[ClaimOutcome]:
        """Take the jobs of a whole receive in one statement and one transaction."""
        first = {c.job.job_id: c for c in reversed(claims)}  # the first claim of each job
        if not first:
            return []
        jobs = [c.job for c in first.values()]
        params = {
            "lease": float(lease_seconds), "job_ids": [j.job_id for j in jobs],
            "tenants": [j.tenant for j in jobs], "tasks": [j.task for j in jobs],
            "versions": [j.version for j in jobs],
            "keys": [j.idempotency_key for j in jobs], "workers": [c.worker for c in first.values()],
            "submitted": [float(j.submitted_at) for j in jobs],
        }  # fmt: skip
        with self._pool.connection() as conn, conn.cursor() as cur:
            # Losing claims in a server crash only lets their jobs run again; the success
            # record (durable) is what makes a redelivery a no-op.
            _CLAIM_PREPARED.execute(cur, params, prefix=without_flush_wait(""))
            taken = cur.fetchall()
            claimed = {row[0] for row in taken}
            refused = [job_id for job_id in first if job_id not in claimed]
            done: set[str] = set()
            if refused:  # their rows are locked by the upsert, so this read is consistent
                cur.execute(DONE, {"job_ids": refused})
                done = {row[0] for row in cur.fetchall()}
        return [_claim_outcome(c, first, claimed, done) for c in claims]

    def release(self, claims: Sequence[Claim]) -> None:
        """Give back claimed jobs that never started; this attempt is not counted."""
        if claims:
            with self._pool.connection() as conn, conn.cursor() as cur:
                execute_values(
                    cur,
                    without_flush_wait(_RELEASE),
                    [(c.job.job_id, c.worker) for c in claims],
                    page_size=len(claims),
                )

    def extend_lease(self, job_id: str, *, lease_seconds: float) -> bool:
        """Push the lease of a running job ``lease_seconds`` from now; whether it was cancelled."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                without_flush_wait(  # a heartbeat: the next one repeats it
                    "UPDATE tornado_jobs SET lease_expires_at = clock_timestamp() + %s * interval '1 second'"
                    " WHERE job_id = %s AND lease_expires_at IS NOT NULL"
                    " RETURNING cancel_requested_at IS NOT NULL"
                ),
                (lease_seconds, job_id),
            )
            row = cur.fetchone()
        return bool(row and row[0])

    def request_cancel(
        self, job_id: str, *, tenant: str, issued: bool = False
    ) -> tuple[CancelOutcome, JobStatus | None]:
        """Cancel a waiting job, or ask a running one's worker to stop it (see :class:`JobStorePort`)."""
        params = {"job_id": job_id, "tenant": tenant}
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(CANCEL, params)
            row = cur.fetchone()
            if row is None and issued:
                cur.execute(CANCEL_UNRECORDED, params)
                if cur.fetchone() is not None:
                    return CancelOutcome.CANCELLED, JobStatus.CANCELLED
                cur.execute(CANCEL, params)  # its row was written meanwhile
                row = cur.fetchone()
        return cancel_outcome(row[0] if row else None, row[1] if row else None)

    def hold_unique(self, task: str, tenant: str, key: str, job_id: str, *, window: float) -> str:
        """Let ``job_id`` hold the key unless its holder still answers for it (see :class:`JobStorePort`)."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            return hold_unique_key(cur, task, tenant, key, job_id, window=window)

    def release_unique(self, task: str, tenant: str, key: str, job_id: str) -> None:
        """Give the key back if ``job_id`` holds it."""
        self._execute(
            "DELETE FROM tornado_unique_jobs"
            " WHERE task = %s AND tenant = %s AND unique_key = %s AND job_id = %s",
            (task, tenant, key, job_id),
        )

    def record_progress(self, job_id: str, *, fraction: float, note: str | None) -> None:
        """Store progress (0..1) and an optional note."""
        self._execute(
            "UPDATE tornado_jobs SET progress = %s, progress_note = %s,"
            " updated_at = clock_timestamp() WHERE job_id = %s",
            (fraction, note, job_id),
            durable=False,  # progress is advisory; the next report repeats it
        )

    def record_success(self, job_id: str, *, result: Any, result_ref: str | None) -> None:
        """Mark succeeded with its JSON result (or the key it was stored under)."""
        self.record_successes([Success(job_id=job_id, result=result, result_ref=result_ref)])

    def record_successes(self, successes: Sequence[Success]) -> None:
        """Mark several jobs succeeded in one statement and one durable commit."""
        if not successes:
            return
        with self._pool.connection() as conn, conn.cursor() as cur:
            write_successes(cur, successes)

    def record_failure(self, job_id: str, *, status: JobStatus, failure: Failure) -> None:
        """Mark ``retrying``, ``dead`` or ``failed`` with the error."""
        self._execute(
            _FAILURE,
            {
                "job_id": job_id,
                "status": str(status),
                "type": failure.error_type,
                "message": failure.message,
                "traceback": failure.traceback,
                "final": status in FINISHED_STATUSES,
            },
        )

    def mark(self, job_ids: Sequence[str], *, status: JobStatus) -> None:
        """Set the status of jobs moved by an operator."""
        if job_ids:
            self._execute(
                "UPDATE tornado_jobs SET status = %s, updated_at = clock_timestamp() WHERE job_id = ANY(%s)",
                (str(status), list(job_ids)),
            )

    def get(self, job_id: str) -> JobRecord | None:
        """One job, or ``None``."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM tornado_jobs WHERE job_id = %s", (job_id,))
            row = cur.fetchone()
        return _record(row) if row is not None else None

    def list(
        self,
        *,
        tenant: str | None,
        task: str | None = None,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """Jobs newest first (by id), filtered, paged by keyset on ``job_id``."""
        filters = {"tenant": tenant, "task": task, "status": str(status) if status else None}
        where = [f"{column} = %({column})s" for column, value in filters.items() if value is not None]
        if cursor:
            where.append("job_id < %(cursor)s")
        condition = " AND ".join(where) or "TRUE"
        parts = waiting_split(condition, by_task=task is not None, by_status=status is not None)
        sql = newest_first(_COLUMNS, "tornado_jobs", parts)
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, {**filters, "cursor": cursor, "limit": limit + 1})
            rows = cur.fetchall()
        page = [_record(row) for row in rows[:limit]]
        next_cursor = page[-1].job_id if len(rows) > limit and page else None
        return JobPage(page, next_cursor)

    def count_jobs(self) -> Sequence[JobCount]:
        """Jobs by task, version and status (one scan of ``tornado_jobs``)."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT task, version, status, count(*) FROM tornado_jobs GROUP BY 1, 2, 3")
            return [JobCount(task, version, status, int(n)) for task, version, status, n in cur.fetchall()]

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless PostgreSQL answers."""
        self._execute("SELECT 1", None)
