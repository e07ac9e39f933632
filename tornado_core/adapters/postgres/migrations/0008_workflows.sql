-- Workflows: DAGs of steps, each step an ordinary job in tornado_jobs once submitted. Advancers
-- ('tornado scheduler') lock a running workflow (SKIP LOCKED), read its steps' job statuses,
-- submit the steps that may run and finish it.

CREATE TABLE tornado_workflows (
    workflow_id text PRIMARY KEY,          -- 'wf_' and a time-ordered id: newest sorts last
    tenant      text NOT NULL,
    name        text NOT NULL DEFAULT '',
    scope       text NOT NULL,             -- the queue prefix of the deployment that runs it
    status      text NOT NULL,             -- running, succeeded, failed, cancelled
    failed_step text,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);

-- Advancers: the running workflows of one deployment.
CREATE INDEX tornado_workflows_running_idx ON tornado_workflows (scope, workflow_id) WHERE status = 'running';
-- Listings: a tenant's workflows, newest first.
CREATE INDEX tornado_workflows_tenant_idx ON tornado_workflows (tenant, workflow_id);

CREATE TABLE tornado_workflow_steps (
    workflow_id text NOT NULL REFERENCES tornado_workflows (workflow_id) ON DELETE CASCADE,
    position    integer NOT NULL,          -- declaration order: a step comes after earlier ones only
    name        text NOT NULL,
    task        text NOT NULL,
    payload     jsonb NOT NULL,            -- with its {"$result": ...} references, as declared
    after       text[] NOT NULL,
    status      text NOT NULL,             -- waiting, queued, succeeded, failed, skipped, cancelled
    job_id      text,                      -- derived from (workflow_id, name): the same on every try
    error       text,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (workflow_id, position),
    UNIQUE (workflow_id, name)
);
