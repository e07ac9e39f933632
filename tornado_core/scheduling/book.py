"""The book of periodic schedules: create, list, pause, resume and remove them, each change checked first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tornado_core.errors import ScheduleNotFound
from tornado_core.ports.schedules import MissedPolicy, Schedule, SchedulesPort
from tornado_core.producer.submission import Submitter
from tornado_core.scheduling.occurrences import check_definition, next_occurrence
from tornado_core.scheduling.scheduler import utc_now


class ScheduleBook:
    """What the API and the CLI do with schedules; every change is checked before it is stored.

    Args:
        schedules: Where schedules are kept.
        submitter: Checks a schedule's task and payload as a submission would be checked.
        clock: The current time (UTC), from which next occurrences are counted.
    """

    def __init__(
        self, schedules: SchedulesPort, submitter: Submitter, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._schedules = schedules
        self._submitter = submitter
        self._clock = clock

    def add(
        self,
        *,
        tenant: str,
        name: str,
        task: str,
        payload: dict[str, Any],
        cron: str,
        timezone: str = "UTC",
        missed: MissedPolicy = MissedPolicy.SKIP,
        paused: bool = False,
        replace: bool = False,
    ) -> Schedule:
        """Create a schedule (or replace the tenant's schedule of that name when ``replace``).

        Raises:
            ScheduleInvalid: Bad name, cron expression or time zone.
            TaskNotFound, TaskNotSubmittable, PayloadInvalid: The job it would queue is refused.
            ScheduleExists: The name is taken and ``replace`` is false.
        """
        check_definition(name, cron, timezone)
        self._submitter.check(task=task, tenant=tenant, payload=payload)
        schedule = Schedule(
            tenant=tenant, name=name, task=task, payload=payload, cron=cron, timezone=timezone,
            missed=missed, paused=paused, next_run_at=next_occurrence(cron, timezone, self._clock()),
        )  # fmt: skip
        return self._schedules.save(schedule, replace=replace)

    def get(self, tenant: str, name: str) -> Schedule:
        """The tenant's schedule ``name``.

        Raises:
            ScheduleNotFound: There is none.
        """
        found = self._schedules.get(tenant, name)
        if found is None:
            raise ScheduleNotFound(tenant, name)
        return found

    def list(self, tenant: str | None = None) -> list[Schedule]:
        """The tenant's schedules (every tenant's when ``None``), by name."""
        return self._schedules.list(tenant)

    def pause(self, tenant: str, name: str) -> Schedule:
        """Stop a schedule from queueing anything until it is resumed.

        Raises:
            ScheduleNotFound: There is none.
        """
        return self._set_paused(tenant, name, paused=True)

    def resume(self, tenant: str, name: str) -> Schedule:
        """Let a paused schedule run again, from its next occurrence (what it missed is not run).

        Raises:
            ScheduleNotFound: There is none.
        """
        return self._set_paused(tenant, name, paused=False)

    def remove(self, tenant: str, name: str) -> None:
        """Delete a schedule (the jobs it queued stay).

        Raises:
            ScheduleNotFound: There is none.
        """
        if not self._schedules.remove(tenant, name):
            raise ScheduleNotFound(tenant, name)

    def _set_paused(self, tenant: str, name: str, *, paused: bool) -> Schedule:
        current = self.get(tenant, name)
        after = next_occurrence(current.cron, current.timezone, self._clock())
        changed = self._schedules.set_paused(tenant, name, paused=paused, next_run_at=after)
        if changed is None:
            raise ScheduleNotFound(tenant, name)
        return changed
