"""Composition root: settings -> adapters. The only module that picks them.

Adapters are imported here lazily, so that a process only loads the
technologies its settings name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tornado_core.job_ids import JobIds
from tornado_core.naming import queue_spec
from tornado_core.ports.database import DatabasePort
from tornado_core.ports.queue import QueuePort
from tornado_core.registry import TaskRegistry
from tornado_core.services import Services
from tornado_core.settings import Settings

if TYPE_CHECKING:
    from tornado_core.adapters.postgres import PostgresPool


@dataclass
class _Closers:
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    def add(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def close(self) -> None:
        for callback in reversed(self.callbacks):
            callback()


def build_services(
    settings: Settings, *, registry: TaskRegistry | None = None, pool_size: int = 16
) -> tuple[Services, Callable[[], None]]:
    """Wire the adapters the settings name.

    Args:
        settings: Loaded settings.
        registry: Known tasks; defaults to the ``tornado.tasks`` entry points.
        pool_size: Largest number of PostgreSQL connections per pool.

    Returns:
        The services and a function that closes their connections.
    """
    from tornado_core.adapters.aws import make_client
    from tornado_core.adapters.postgres import PostgresJobStore, PostgresLimiter, PostgresTenantStore
    from tornado_core.adapters.s3 import S3ObjectStore

    closers = _Closers()
    pool = _pool(settings.database_url, pool_size, closers)
    rds: DatabasePort = (
        pool if not settings.erp_database_url else _pool(settings.erp_database_url, pool_size, closers)
    )
    redshift = _pool(settings.redshift_url, 4, closers) if settings.redshift_url else None
    s3 = make_client("s3", region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
    services = Services(
        settings=settings,
        registry=registry if registry is not None else TaskRegistry.from_entry_points(),
        queue=_queue(settings, pool),
        objects=S3ObjectStore(s3, settings.bucket),
        jobs=PostgresJobStore(pool),
        limiter=PostgresLimiter(settings.database_url),
        tenants=PostgresTenantStore(pool),
        rds=rds,
        redshift=redshift,
        job_ids=JobIds(settings.secret_key),
    )
    return services, closers.close


def _pool(dsn: str, size: int, closers: _Closers) -> PostgresPool:
    from tornado_core.adapters.postgres import PostgresPool

    pool = PostgresPool(dsn, min_size=0, max_size=size)
    closers.add(pool.close)
    return pool


def _queue(settings: Settings, pool: PostgresPool) -> QueuePort:
    if settings.queue_backend == "sqs":
        from tornado_core.adapters.aws import make_client
        from tornado_core.adapters.sqs import SqsQueue

        return SqsQueue(
            make_client("sqs", region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
        )
    from tornado_core.adapters.postgres import PostgresQueue

    return PostgresQueue(pool)


@contextmanager
def services_from(settings: Settings, *, registry: TaskRegistry | None = None) -> Iterator[Services]:
    """``with services_from(settings) as services:`` builds and closes them."""
    services, close = build_services(settings, registry=registry)
    try:
        yield services
    finally:
        close()


def provision_queues(services: Services) -> list[str]:
    """Create the queue and DLQ of every registered task version; returns their names."""
    names = []
    for spec in services.registry:
        qspec = queue_spec(services.settings.queue_prefix, spec)
        services.queue.ensure_queue(qspec)
        names.append(qspec.name)
    return names


def migrate(settings: Settings) -> list[str]:
    """Apply pending SQL migrations to the job-store database; returns their names."""
    from tornado_core.adapters.postgres import PostgresPool
    from tornado_core.adapters.postgres.migrations import apply_migrations

    pool = PostgresPool(settings.database_url, min_size=0, max_size=1)
    try:
        return apply_migrations(pool)
    finally:
        pool.close()
