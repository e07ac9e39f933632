-- Scheduled jobs: a job due later than the queue can delay it (SQS: 15 minutes) waits here, fully
-- prepared, until a scheduler sends its message. Its row in tornado_jobs says 'scheduled'.
CREATE TABLE tornado_scheduled_jobs (
    job_id  text PRIMARY KEY,
    queue   text NOT NULL,
    body    text NOT NULL,
    due_at  timestamptz NOT NULL
);
CREATE INDEX tornado_scheduled_jobs_due_idx ON tornado_scheduled_jobs (due_at);

-- Periodic schedules: a cron expression in a time zone queues one job of a task per occurrence.
CREATE TABLE tornado_schedules (
    tenant       text NOT NULL,
    name         text NOT NULL,
    task         text NOT NULL,
    payload      jsonb NOT NULL,
    cron         text NOT NULL,
    timezone     text NOT NULL,
    missed       text NOT NULL CHECK (missed IN ('skip', 'catch_up')),
    paused       boolean NOT NULL DEFAULT false,
    next_run_at  timestamptz NOT NULL,
    last_run_at  timestamptz,
    last_job_id  text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX tornado_schedules_due_idx ON tornado_schedules (next_run_at) WHERE NOT paused;
