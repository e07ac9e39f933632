"""SQL of job control in the PostgreSQL job store: cancellation and unique jobs."""

from __future__ import annotations

from tornado_core.ports.jobs import UNRECORDED_GRACE

# Of the refused jobs, those that are done: succeeded or cancelled, or whose cancellation was
# requested while they ran and whose worker's lease ran out (they end 'cancelled' here).
DONE = """
WITH settled AS (
    UPDATE tornado_jobs SET status = 'cancelled', lease_expires_at = NULL,
        finished_at = clock_timestamp(), updated_at = clock_timestamp()
    WHERE job_id = ANY(%(job_ids)s) AND cancel_requested_at IS NOT NULL
      AND status IN ('queued', 'retrying', 'running')
      AND NOT (status = 'running' AND lease_expires_at > clock_timestamp())
    RETURNING job_id
)
SELECT job_id FROM settled
UNION
SELECT job_id FROM tornado_jobs WHERE job_id = ANY(%(job_ids)s) AND status IN ('succeeded', 'cancelled')
"""


# One statement: a waiting job is cancelled at once (a scheduled one's parked message goes with it);
# a running one gets the request its heartbeat reads; a finished one is left alone. Returns the
# status before and after.
CANCEL = """
WITH target AS (
    SELECT job_id, status FROM tornado_jobs
    WHERE job_id = %(job_id)s AND tenant = %(tenant)s
    FOR UPDATE
),
changed AS (
    UPDATE tornado_jobs AS j SET
        status = CASE WHEN t.status = 'running' THEN j.status ELSE 'cancelled' END,
        finished_at = CASE WHEN t.status = 'running' THEN j.finished_at ELSE clock_timestamp() END,
        cancel_requested_at = COALESCE(j.cancel_requested_at, clock_timestamp()),
        updated_at = clock_timestamp()
    FROM target AS t
    WHERE j.job_id = t.job_id AND t.status IN ('scheduled', 'queued', 'retrying', 'running')
    RETURNING j.status
),
unparked AS (
    DELETE FROM tornado_scheduled_jobs WHERE job_id IN (SELECT job_id FROM target WHERE status = 'scheduled')
)
SELECT t.status, (SELECT status FROM changed) FROM target AS t
"""


# The key goes to the new job unless its holder still answers for it (see JobStorePort.hold_unique).
HOLD_UNIQUE = f"""
INSERT INTO tornado_unique_jobs AS u (task, tenant, unique_key, job_id, taken_at)
VALUES (%(task)s, %(tenant)s, %(key)s, %(job_id)s, clock_timestamp())
ON CONFLICT (task, tenant, unique_key) DO UPDATE SET job_id = EXCLUDED.job_id, taken_at = EXCLUDED.taken_at
WHERE u.job_id = EXCLUDED.job_id OR NOT EXISTS (
    SELECT 1 FROM tornado_jobs AS j
    WHERE j.job_id = u.job_id
      AND (j.status IN ('scheduled', 'queued', 'running', 'retrying')
           OR j.finished_at > clock_timestamp() - %(window)s * interval '1 second')
) AND NOT (
    u.taken_at > clock_timestamp() - interval '{UNRECORDED_GRACE} seconds'
    AND NOT EXISTS (SELECT 1 FROM tornado_jobs AS j WHERE j.job_id = u.job_id)
)
RETURNING u.job_id
"""


# A job cancelled before its queued row was written (SQS, write-behind): recorded cancelled, its
# task and version left for that row to fill in.
CANCEL_UNRECORDED = """
INSERT INTO tornado_jobs (job_id, tenant, task, version, status, created_at, updated_at, finished_at,
                          cancel_requested_at)
VALUES (%(job_id)s, %(tenant)s, '', '', 'cancelled', clock_timestamp(), clock_timestamp(),
        clock_timestamp(), clock_timestamp())
ON CONFLICT (job_id) DO NOTHING
RETURNING job_id
"""
