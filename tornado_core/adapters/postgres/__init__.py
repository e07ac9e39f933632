"""PostgreSQL adapters (psycopg2): pool, migrations, queue, job store, completions, limiter, tenants.

Create the schema once with :func:`apply_migrations` before using the stores.
"""

from tornado_core.adapters.postgres.jobs import PostgresJobStore
from tornado_core.adapters.postgres.limits import PostgresLimiter
from tornado_core.adapters.postgres.migrations import apply_migrations
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.adapters.postgres.queue import PostgresQueue
from tornado_core.adapters.postgres.queue_and_jobs import PostgresQueueAndJobs
from tornado_core.adapters.postgres.tenants import PostgresTenantStore

__all__ = [
    "PostgresJobStore",
    "PostgresLimiter",
    "PostgresPool",
    "PostgresQueue",
    "PostgresQueueAndJobs",
    "PostgresTenantStore",
    "apply_migrations",
]
