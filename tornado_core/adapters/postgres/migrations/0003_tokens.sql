-- Tokens of their own: several per tenant (rotation), each with an optional expiry, revocable;
-- and a per-tenant request quota. Every change is notified on 'tornado_tokens' (the token hash as
-- payload), so each API process's token cache follows at once.
CREATE TABLE tornado_tokens (
    token_hash text PRIMARY KEY,
    tenant     text NOT NULL REFERENCES tornado_tenants (name) ON DELETE CASCADE ON UPDATE CASCADE,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX tornado_tokens_tenant_idx ON tornado_tokens (tenant);

INSERT INTO tornado_tokens (token_hash, tenant, created_at)
    SELECT token_hash, name, created_at FROM tornado_tenants;
ALTER TABLE tornado_tenants DROP COLUMN token_hash;
ALTER TABLE tornado_tenants ADD COLUMN requests_per_second double precision
    CHECK (requests_per_second > 0);

CREATE FUNCTION tornado_tokens_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('tornado_tokens', OLD.token_hash);
    ELSE
        PERFORM pg_notify('tornado_tokens', NEW.token_hash);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER tornado_tokens_changed AFTER INSERT OR UPDATE OR DELETE ON tornado_tokens
    FOR EACH ROW EXECUTE FUNCTION tornado_tokens_notify();

CREATE FUNCTION tornado_tenant_tokens_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tornado_tokens', token_hash) FROM tornado_tokens WHERE tenant = NEW.name;
    RETURN NULL;
END $$;

CREATE TRIGGER tornado_tenants_quota_changed AFTER UPDATE OF requests_per_second ON tornado_tenants
    FOR EACH ROW EXECUTE FUNCTION tornado_tenant_tokens_notify();
