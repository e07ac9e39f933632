"""Schedules tasks declare in their code (``@task(schedules=[Periodic(...)])``), set up for every tenant."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tornado_core.errors import TornadoError
from tornado_core.periodic import Periodic
from tornado_core.ports.schedules import MissedPolicy, Schedule, SchedulesPort
from tornado_core.ports.tenants import TenantStorePort
from tornado_core.registry import TaskRegistry
from tornado_core.scheduling.book import ScheduleBook

_log = logging.getLogger("tornado.scheduler")


def declared_name(task: str, periodic: Periodic) -> str:
    """The name a declared schedule has in every tenant's list: ``<task>.<name>``."""
    return f"{task}.{periodic.name}"


class DeclaredSchedules:
    """Installs the newest version's declared schedules for every tenant and keeps them in step.

    A schedule missing for a tenant is created; one whose definition differs from the code is
    replaced, keeping whether an operator paused it. Tenants created later get theirs at the next
    sync.

    Args:
        registry: The tasks this scheduler knows.
        tenants: The tenants.
        schedules: Where schedules are kept.
        book: Checks and stores them.
        every: Seconds between two syncs when run as a scheduler pass.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        registry: TaskRegistry,
        tenants: TenantStorePort,
        schedules: SchedulesPort,
        book: ScheduleBook,
        *,
        every: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._tenants = tenants
        self._schedules = schedules
        self._book = book
        self._every = every
        self._clock = clock
        self._last: float | None = None

    def sync(self) -> int:
        """Install or update every declared schedule for every tenant; how many changed."""
        newest = {spec.name: self._registry.get(spec.name) for spec in self._registry}
        declared = [(task, periodic) for task, spec in newest.items() for periodic in spec.schedules]
        if not declared:
            return 0
        changed = 0
        for tenant in self._tenants.list():
            for task, periodic in declared:
                changed += self._install(tenant.name, task, periodic)
        return changed

    def run_due(self) -> int:
        """:meth:`sync` if it has not run for :attr:`every` seconds (a scheduler pass)."""
        now = self._clock()
        if self._last is not None and now - self._last < self._every:
            return 0
        self._last = now
        return self.sync()

    def _install(self, tenant: str, task: str, periodic: Periodic) -> int:
        name = declared_name(task, periodic)
        current = self._schedules.get(tenant, name)
        if current is not None and _same(current, task, periodic):
            return 0
        try:
            self._book.add(
                tenant=tenant, name=name, task=task, payload=periodic.payload, cron=periodic.cron,
                timezone=periodic.timezone, missed=MissedPolicy(periodic.missed),
                paused=current.paused if current is not None else False, replace=True,
            )  # fmt: skip
        except TornadoError as exc:
            _log.error("schedule %s declared by %s cannot be installed for %s: %s", name, task, tenant, exc)
            return 0
        return 1


def _same(current: Schedule, task: str, periodic: Periodic) -> bool:
    return (current.task, current.cron, current.timezone, current.payload, str(current.missed)) == (
        task, periodic.cron, periodic.timezone, periodic.payload, periodic.missed,
    )  # fmt: skip
