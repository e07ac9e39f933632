-- Core tables of the PostgreSQL adapters: queues, messages, jobs, tenants.

CREATE TABLE tornado_queues (
    name               text PRIMARY KEY,
    dead_letter_name   text,               -- NULL for a queue without redrive (a DLQ)
    max_receive_count  integer,
    visibility_timeout double precision NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE tornado_messages (
    id            bigserial PRIMARY KEY,
    queue         text NOT NULL,
    message_id    uuid NOT NULL DEFAULT gen_random_uuid(),
    body          text NOT NULL,
    visible_at    timestamptz NOT NULL,
    receive_count integer NOT NULL DEFAULT 0,
    receipt       uuid                     -- token of the latest delivery
);

-- The receive query: visible messages of one queue, oldest first.
CREATE INDEX tornado_messages_receive_idx ON tornado_messages (queue, visible_at, id);

CREATE TABLE tornado_jobs (
    job_id           text PRIMARY KEY,     -- time-ordered: newest sorts last
    tenant           text NOT NULL,
    task             text NOT NULL,
    version          text NOT NULL,
    idempotency_key  text,
    status           text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    progress         double precision NOT NULL DEFAULT 0,
    progress_note    text,
    result           jsonb,
    result_ref       text,
    error_type       text,
    error_message    text,
    error_traceback  text,
    worker           text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL,
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL
);

-- Listings are newest first by job_id, filtered by tenant, task and/or status.
CREATE INDEX tornado_jobs_tenant_idx ON tornado_jobs (tenant, job_id);
CREATE INDEX tornado_jobs_tenant_task_idx ON tornado_jobs (tenant, task, job_id);
CREATE INDEX tornado_jobs_task_idx ON tornado_jobs (task, job_id);
CREATE INDEX tornado_jobs_status_idx ON tornado_jobs (status, job_id);

CREATE TABLE tornado_tenants (
    name       text PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
