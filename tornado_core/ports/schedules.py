"""The schedules port: jobs due later than a queue can hold them, and periodic schedules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from tornado_core.ports.jobs import NewJob

#: Longest delay a queue applies by itself, in seconds (SQS's 15 minutes); a job due later waits
#: in the schedules store until a scheduler sends it.
QUEUE_DELAY_LIMIT = 900

#: Furthest ahead a job may be scheduled, in seconds (a year and a day).
MAX_SCHEDULE_AHEAD = 366 * 86_400


class MissedPolicy(StrEnum):
    """What a periodic schedule does with the occurrences that passed while no scheduler ran.

    ``skip``: they are dropped; the schedule goes on with its next occurrence (an occurrence less
    than :data:`~tornado_core.scheduling.occurrences.LATE_GRACE` late still runs). ``catch_up``:
    each of them runs, oldest first, then the schedule goes on.
    """

    SKIP = "skip"
    CATCH_UP = "catch_up"


@dataclass(frozen=True, kw_only=True)
class ParkedJob:
    """A prepared job kept until it is due.

    Attributes:
        job: Its ``scheduled`` row.
        queue: The queue its message goes to.
        body: The message body, ready to send.
        due_at: When it may run.
    """

    job: NewJob
    queue: str
    body: str
    due_at: datetime


@dataclass(frozen=True, kw_only=True)
class DueJob:
    """A parked job whose time has come (or comes within the look-ahead), and its tenant."""

    job_id: str
    queue: str
    body: str
    due_at: datetime
    tenant: str | None = None


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """A periodic schedule: one job of ``task`` per occurrence of ``cron`` in ``timezone``.

    Attributes:
        tenant: Whose jobs it queues.
        name: Its name, unique per tenant.
        task: The task it queues.
        payload: The payload of every job it queues.
        cron: A cron expression: five fields, or six with seconds first.
        timezone: An IANA time zone name (``America/Sao_Paulo``).
        missed: What happens to occurrences missed while no scheduler ran.
        paused: A paused schedule queues nothing.
        next_run_at: Its next occurrence.
        last_run_at: The occurrence it queued last, if any.
        last_job_id: The job it queued last, if any.
        created_at: When it was created (set by the store).
    """

    tenant: str
    name: str
    task: str
    payload: dict[str, Any]
    cron: str
    timezone: str
    missed: MissedPolicy
    next_run_at: datetime
    paused: bool = False
    last_run_at: datetime | None = None
    last_job_id: str | None = None
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The schedule as the API shows it."""

        def stamp(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "name": self.name,
            "task": self.task,
            "payload": self.payload,
            "cron": self.cron,
            "timezone": self.timezone,
            "missed": str(self.missed),
            "paused": self.paused,
            "next_run_at": self.next_run_at.isoformat(),
            "last_run_at": stamp(self.last_run_at),
            "last_job_id": self.last_job_id,
            "created_at": stamp(self.created_at),
        }


#: Sends due jobs to their queues; returns the ids of those the queue took.
SendDue = Callable[[Sequence[DueJob]], Sequence[str]]


@dataclass(frozen=True)
class Firing:
    """What firing a schedule did: its next occurrence and the job it queued last (if any)."""

    next_run_at: datetime
    last_run_at: datetime | None
    last_job_id: str | None


#: Queues a due schedule's occurrences; returns where the schedule stands after them.
FireSchedule = Callable[[Schedule], Firing]


class SchedulesPort(Protocol):
    """Scheduled jobs and periodic schedules, shared by every API and scheduler process.

    Every method raises ``StoreUnavailable`` when the store cannot be reached (then nothing changed).
    """

    def park(self, jobs: Sequence[ParkedJob]) -> None:
        """Record jobs as ``scheduled`` and keep their messages until due, in one durable commit."""

    def release_due(self, *, until: datetime, limit: int, send: SendDue) -> int:
        """Hand jobs due by ``until`` to ``send`` and forget those it sent; how many it sent.

        The jobs stay locked while ``send`` runs, so two schedulers never send the same job at
        once; a scheduler that dies before its commit leaves them to the next (whose copy the
        worker's effectively-once gate collapses). A sent job's row becomes ``queued``. A job
        cancelled while parked is never handed out.
        """

    def parked(self) -> int:
        """How many jobs wait for their time."""

    def save(self, schedule: Schedule, *, replace: bool = False) -> Schedule:
        """Create a schedule (or replace the one of that tenant and name); the stored schedule.

        Raises:
            ScheduleExists: It exists and ``replace`` is false.
        """

    def get(self, tenant: str, name: str) -> Schedule | None:
        """The schedule, or ``None``."""

    def list(self, tenant: str | None = None) -> list[Schedule]:
        """Schedules by tenant and name; every tenant's when ``tenant`` is ``None``."""

    def set_paused(self, tenant: str, name: str, *, paused: bool, next_run_at: datetime) -> Schedule | None:
        """Pause or resume a schedule (resuming sets its next occurrence); ``None`` if unknown."""

    def remove(self, tenant: str, name: str) -> bool:
        """Delete a schedule; whether it existed."""

    def fire_due(self, *, now: datetime, limit: int, fire: FireSchedule) -> int:
        """Call ``fire`` for each unpaused schedule due by ``now``, each under a row lock held
        until its new position is committed; how many fired.

        Two schedulers never fire the same schedule at once; one that dies mid-fire leaves the
        schedule as it was, and the next fires the same occurrences again (their jobs' ids derive
        from schedule and occurrence, so nothing runs twice).
        """
