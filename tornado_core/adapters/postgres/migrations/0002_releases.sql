-- Releases: version routes (with change notifications), task-version contracts, release states.

CREATE TABLE tornado_routes (
    task            text PRIMARY KEY,
    current_version text NOT NULL,
    ramping_version text,
    ramp_percent    integer NOT NULL DEFAULT 0 CHECK (ramp_percent BETWEEN 0 AND 100),
    pins            jsonb NOT NULL DEFAULT '{}',     -- tenant -> version
    revision        bigint NOT NULL DEFAULT 1,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- What the API needs to accept jobs of a version whose code it does not have.
CREATE TABLE tornado_task_versions (
    task               text NOT NULL,
    version            text NOT NULL,
    payload_schema     jsonb NOT NULL,
    max_attempts       integer NOT NULL,
    visibility_timeout double precision NOT NULL,
    timeout            double precision NOT NULL,
    description        text NOT NULL DEFAULT '',
    registered_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (task, version)
);

CREATE TABLE tornado_releases (
    task         text NOT NULL,
    version      text NOT NULL,
    state        text NOT NULL,
    runtime      text NOT NULL,
    replicas     integer NOT NULL,
    concurrency  integer NOT NULL,
    grace_period double precision NOT NULL,
    image        text,
    python_path  text,
    tasks_module text,
    previous     text,                 -- the version that was current when this one was promoted
    smoke_job_id text,
    detail       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (task, version)
);

CREATE TABLE tornado_release_events (
    id        bigserial PRIMARY KEY,
    task      text NOT NULL,
    version   text NOT NULL,
    operation text NOT NULL,
    state     text NOT NULL,
    detail    text NOT NULL DEFAULT '',
    at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX tornado_release_events_task_idx ON tornado_release_events (task, id);

-- Per-version figures of releases (error rates over a window, running jobs while draining).
CREATE INDEX tornado_jobs_task_version_idx ON tornado_jobs (task, version, created_at);

-- Route caches LISTEN on this channel and reload routes and versions on any change.
CREATE FUNCTION tornado_routes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tornado_routes', 'changed');
    RETURN NULL;
END
$$;

CREATE TRIGGER tornado_routes_changed AFTER INSERT OR UPDATE OR DELETE ON tornado_routes
    FOR EACH ROW EXECUTE FUNCTION tornado_routes_notify();
CREATE TRIGGER tornado_task_versions_changed AFTER INSERT OR UPDATE OR DELETE ON tornado_task_versions
    FOR EACH ROW EXECUTE FUNCTION tornado_routes_notify();
