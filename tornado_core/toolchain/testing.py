"""Test kit: in-memory services for fast unit tests of tasks and of Tornado itself."""

from __future__ import annotations

from collections.abc import Iterable

from tornado_core.adapters.memory.jobs import MemoryJobStore
from tornado_core.adapters.memory.schedules import MemorySchedules
from tornado_core.adapters.memory.stores import (
    MemoryLimiter,
    MemoryObjectStore,
    MemoryQueue,
    MemoryRateLimiter,
)
from tornado_core.adapters.memory.tenants import MemoryTenantStore
from tornado_core.job_ids import JobIds
from tornado_core.ports.database import DatabasePort
from tornado_core.registry import TaskRegistry
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.task import TaskSpec


class NoDatabase:
    """A database handle for tests of handlers that never touch one."""

    def connection(self):  # type: ignore[no-untyped-def]
        """Raise: this test has no database."""
        raise RuntimeError("this test's services have no database; use the integration fixtures")

    def close(self) -> None:
        """Nothing to close."""


def memory_services(
    tasks: Iterable[TaskSpec] | TaskRegistry,
    *,
    settings: Settings | None = None,
    rds: DatabasePort | None = None,
) -> Services:
    """Services wired to in-memory adapters.

    Args:
        tasks: Task specs (or a registry) the services know.
        settings: Defaults to a minimal test configuration.
        rds: Database handed to handlers; defaults to one that refuses use.
    """
    registry = tasks if isinstance(tasks, TaskRegistry) else TaskRegistry(tasks)
    settings = settings or Settings(database_url="memory://", secret_key="test-secret")
    jobs = MemoryJobStore()
    return Services(
        settings=settings,
        registry=registry,
        queue=MemoryQueue(),
        objects=MemoryObjectStore(settings.bucket),
        jobs=jobs,
        limiter=MemoryLimiter(),
        tenants=MemoryTenantStore(),
        rds=rds or NoDatabase(),
        redshift=None,
        job_ids=JobIds(settings.secret_key),
        schedules=MemorySchedules(jobs),
        rates=MemoryRateLimiter(),
    )
