-- Completion webhooks: tenants' endpoints, and one delivery per endpoint for each job that reaches
-- succeeded, dead or cancelled, created by a trigger in the transaction that finishes the job.

CREATE TABLE tornado_webhook_endpoints (
    endpoint_id text PRIMARY KEY,
    tenant      text NOT NULL,
    url         text NOT NULL,
    description text NOT NULL DEFAULT '',
    secret      text NOT NULL,             -- needed in clear to sign; shown once, at registration
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    removed_at  timestamptz                -- removed endpoints keep their deliveries' history
);

CREATE INDEX tornado_webhook_endpoints_tenant_idx
    ON tornado_webhook_endpoints (tenant) WHERE removed_at IS NULL;

CREATE TABLE tornado_webhook_deliveries (
    delivery_id      text PRIMARY KEY,     -- the receivers' idempotency key (Tornado-Delivery)
    endpoint_id      text NOT NULL REFERENCES tornado_webhook_endpoints (endpoint_id),
    tenant           text NOT NULL,
    job_id           text NOT NULL,
    event            text NOT NULL,        -- job.succeeded, job.dead, job.cancelled
    job              jsonb NOT NULL,       -- the job as it was when it finished
    status           text NOT NULL DEFAULT 'pending',  -- pending, delivered, dead
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    claim            uuid,                 -- the current attempt's claim (its lease: next_attempt_at)
    last_status_code integer,
    last_error       text,
    last_duration_ms integer,
    created_at       timestamptz NOT NULL,
    delivered_at     timestamptz,
    updated_at       timestamptz NOT NULL
);

-- Dispatchers' claim: due pending deliveries, earliest first.
CREATE INDEX tornado_webhook_deliveries_due_idx
    ON tornado_webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- Listings: a tenant's deliveries, newest first.
CREATE INDEX tornado_webhook_deliveries_tenant_idx ON tornado_webhook_deliveries (tenant, created_at);

CREATE FUNCTION tornado_webhook_utc(ts timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
$$;

CREATE FUNCTION tornado_webhook_job_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tornado_webhook_deliveries
        (delivery_id, endpoint_id, tenant, job_id, event, job, next_attempt_at, created_at, updated_at)
    SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), e.endpoint_id, NEW.tenant, NEW.job_id,
           'job.' || NEW.status,
           jsonb_build_object(
               'id', NEW.job_id, 'tenant', NEW.tenant, 'task', NEW.task, 'version', NEW.version,
               'status', NEW.status, 'attempts', NEW.attempts,
               'result', NEW.result, 'result_ref', NEW.result_ref,
               'error', CASE WHEN NEW.error_type IS NOT NULL OR NEW.error_message IS NOT NULL
                             THEN jsonb_build_object('type', NEW.error_type, 'message', NEW.error_message)
                        END,
               'created_at', tornado_webhook_utc(NEW.created_at),
               'started_at', tornado_webhook_utc(NEW.started_at),
               'finished_at', tornado_webhook_utc(COALESCE(NEW.finished_at, clock_timestamp()))
           ),
           clock_timestamp(), clock_timestamp(), clock_timestamp()
    FROM tornado_webhook_endpoints AS e
    WHERE e.tenant = NEW.tenant AND e.removed_at IS NULL;
    IF FOUND THEN
        PERFORM pg_notify('tornado_webhooks', 'due');
    END IF;
    RETURN NULL;
END
$$;

-- Row triggers whose WHEN clause skips every other change without calling the function.
CREATE TRIGGER tornado_webhooks_job_updated
    AFTER UPDATE OF status ON tornado_jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'dead', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION tornado_webhook_job_finished();

CREATE TRIGGER tornado_webhooks_job_inserted
    AFTER INSERT ON tornado_jobs
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'dead', 'cancelled'))
    EXECUTE FUNCTION tornado_webhook_job_finished();
