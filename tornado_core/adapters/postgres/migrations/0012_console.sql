-- The operations console: operator accounts and their sessions, the audit log, bulk actions over a
-- job filter, and queue samples kept for the console's charts.

-- Operators are people, separate from tenants: they sign in to the console with a password.
CREATE TABLE tornado_operators (
    name          text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text NOT NULL,            -- Argon2id, encoded with its parameters
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A signed-in browser: the cookie carries a random token, the table only its SHA-256.
CREATE TABLE tornado_console_sessions (
    token_hash   text PRIMARY KEY,
    operator     text NOT NULL REFERENCES tornado_operators (name) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX tornado_console_sessions_operator_idx ON tornado_console_sessions (operator);

-- Who did what: every console action, operator change and sign-in, newest read first.
CREATE TABLE tornado_audit_log (
    id     bigserial PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor  text NOT NULL,                   -- an operator's name, or "cli:<os user>"
    action text NOT NULL,                   -- e.g. "release.promote", "jobs.bulk_cancel", "login"
    target text,                            -- what it acted on, e.g. "demo.sleep 1.1.0", a job id
    detail jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX tornado_audit_log_actor_idx ON tornado_audit_log (actor, id);
CREATE INDEX tornado_audit_log_action_idx ON tornado_audit_log (action, id);

-- An action over every job a filter matches, done server-side in batches; resumable by keyset.
CREATE TABLE tornado_bulk_actions (
    id               bigserial PRIMARY KEY,
    action           text NOT NULL CHECK (action IN ('retry', 'cancel', 'redrive', 'purge')),
    filter           jsonb NOT NULL,
    operator         text NOT NULL,
    status           text NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'succeeded', 'failed')),
    matched          bigint,                -- jobs the filter matched when the action started
    done             bigint NOT NULL DEFAULT 0,   -- jobs the action changed
    skipped          bigint NOT NULL DEFAULT 0,   -- matched, but no longer in a state it applies to
    position         text,                  -- the last job id handled, or a DLQ sweep's stage and place
    error            text,
    runner           text,                  -- the process running it
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz
);
CREATE INDEX tornado_bulk_actions_running_idx ON tornado_bulk_actions (id) WHERE status = 'running';

-- A queue's counts over time, one row per queue per sampling (the console's charts).
CREATE TABLE tornado_queue_samples (
    queue        text NOT NULL,
    task         text NOT NULL,
    version      text NOT NULL,
    at           timestamptz NOT NULL,
    visible      integer NOT NULL,
    in_flight    integer NOT NULL,
    delayed      integer NOT NULL,
    dead_letters integer NOT NULL,
    oldest_age   double precision,          -- seconds the oldest waiting job has waited
    PRIMARY KEY (queue, at)
);
CREATE INDEX tornado_queue_samples_at_idx ON tornado_queue_samples (at);

-- The console's figures per version and per tenant read recently finished jobs.
CREATE INDEX tornado_jobs_finished_idx ON tornado_jobs (finished_at) WHERE finished_at IS NOT NULL;
