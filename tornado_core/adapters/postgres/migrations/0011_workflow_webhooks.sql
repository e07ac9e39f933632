-- Completion webhooks of workflows: a workflow that ends (succeeded, failed or cancelled) becomes one
-- delivery per active endpoint of its tenant, in the transaction that ends it. The delivery's job_id
-- holds the workflow's id and its document the workflow as it ended.
CREATE FUNCTION tornado_webhook_workflow_finished() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tornado_webhook_deliveries
        (delivery_id, endpoint_id, tenant, job_id, event, job, next_attempt_at, created_at, updated_at)
    SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), e.endpoint_id, NEW.tenant, NEW.workflow_id,
           'workflow.' || NEW.status,
           jsonb_build_object(
               'id', NEW.workflow_id, 'tenant', NEW.tenant, 'name', NEW.name, 'status', NEW.status,
               'failed_step', NEW.failed_step, 'error', NEW.error,
               'created_at', tornado_webhook_utc(NEW.created_at),
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

CREATE TRIGGER tornado_webhooks_workflow_finished
    AFTER UPDATE OF status ON tornado_workflows
    FOR EACH ROW
    WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION tornado_webhook_workflow_finished();
