-- Unique jobs: which job holds each (task, tenant, key) of a task declared unique.
CREATE TABLE tornado_unique_jobs (
    task       text NOT NULL,
    tenant     text NOT NULL,
    unique_key text NOT NULL,
    job_id     text NOT NULL,
    taken_at   timestamptz NOT NULL,
    PRIMARY KEY (task, tenant, unique_key)
);
