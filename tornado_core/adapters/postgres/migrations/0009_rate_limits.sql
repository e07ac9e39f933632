-- Rate limits per key (a task's RateLimit): one token bucket per key, shared by every worker.
CREATE TABLE tornado_rate_buckets (
    key          text PRIMARY KEY,
    tokens       double precision NOT NULL,
    refreshed_at timestamptz NOT NULL
);
