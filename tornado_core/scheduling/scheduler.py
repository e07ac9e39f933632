"""The scheduler: sends parked jobs when they fall due and queues the occurrences of periodic schedules.

Any number of scheduler processes may run (``tornado scheduler``): each parked job and each
schedule is handled under a PostgreSQL row lock that the others skip, and the job of an
occurrence has an id derived from its schedule and its time, so a scheduler killed halfway
through leaves nothing the next one doubles.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tornado_core.errors import (
    BackendError,
    PayloadInvalid,
    TaskNotFound,
    TaskNotSubmittable,
    VersionNotFound,
)
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.schedules import QUEUE_DELAY_LIMIT, DueJob, Firing, Schedule, SchedulesPort
from tornado_core.producer.batching import chunks_of
from tornado_core.producer.direct import DirectSubmitter
from tornado_core.scheduling.occurrences import due_occurrences
from tornado_core.services import Services

_log = logging.getLogger(__name__)

#: Errors after which an occurrence can never be queued: it is logged and skipped.
_HOPELESS = (TaskNotFound, TaskNotSubmittable, PayloadInvalid, VersionNotFound)


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def occurrence_key(schedule: Schedule, occurrence: datetime) -> str:
    """The idempotency key of one occurrence's job: the same for every scheduler, every time.

    It is kept in the job's row (``schedule:<name>:<occurrence in UTC>``), so each job says
    which occurrence it is.
    """
    return f"schedule:{schedule.name}:{occurrence.astimezone(UTC).isoformat()}"


@dataclass(frozen=True)
class TickReport:
    """What one pass did: parked jobs sent, schedules fired, and what the extra passes counted."""

    released: int
    fired: int
    passes: int = 0


class Scheduler:
    """Sends due parked jobs and fires due schedules.

    Args:
        services: The process's services (queue, job store).
        schedules: Where parked jobs and schedules are kept.
        direct: Queues the occurrences' jobs (validation and routing as the API's).
        clock: The current time; tests and rehearsals may move it.
        lookahead: Seconds ahead a parked job is sent, with the rest of its wait as the message's
            own delay, so it becomes visible on time whatever the tick.
        batch: Parked jobs (and schedules) handled per transaction.
        passes: More work run at the end of each tick (the workflow advancer), each returning
            how much it did.
    """

    def __init__(
        self,
        services: Services,
        schedules: SchedulesPort,
        *,
        direct: DirectSubmitter | None = None,
        clock: Callable[[], datetime] = utc_now,
        lookahead: float = 30.0,
        batch: int = 500,
        passes: Sequence[Callable[[], int]] = (),
    ) -> None:
        self._services = services
        self._passes = tuple(passes)
        self._schedules = schedules
        self._direct = direct or DirectSubmitter(services)
        self._clock = clock
        self._lookahead = timedelta(seconds=min(lookahead, QUEUE_DELAY_LIMIT))
        self._batch = batch

    def tick(self) -> TickReport:
        """One pass: every parked job due within the look-ahead, then every due schedule.

        Raises:
            BackendError: The store or the queue failed; what was done so far stays done.
        """
        now = self._clock()
        released = 0
        while True:
            sent = self._schedules.release_due(
                until=now + self._lookahead, limit=self._batch, send=lambda due: self._send_due(due, now)
            )
            released += sent
            if sent < self._batch:
                break
        fired = self._schedules.fire_due(now=now, limit=self._batch, fire=lambda s: self._fire(s, now))
        return TickReport(released, fired, sum(run() for run in self._passes))

    def run(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set; a backend outage is logged and retried."""
        while not stop.is_set():
            try:
                report = self.tick()
            except BackendError as exc:
                _log.warning("scheduler: %s; retrying in %.0fs", exc, interval)
            else:
                if report.released or report.fired:
                    _log.info(
                        "scheduler: %d parked jobs sent, %d schedules fired", report.released, report.fired
                    )
            stop.wait(interval)

    def _send_due(self, due: Sequence[DueJob], now: datetime) -> list[str]:
        """Send due jobs, queue by queue, in the queue's batches; the ids it took."""
        by_queue: dict[str, list[DueJob]] = defaultdict(list)
        for job in due:
            by_queue[job.queue].append(job)
        queue = self._services.queue
        sent: list[str] = []
        for name, jobs in by_queue.items():
            for chunk in chunks_of(jobs, _body, max(1, queue.max_send_batch), queue.max_send_batch_bytes):
                messages = [OutgoingMessage(job.body, _remaining(job, now), job.tenant) for job in chunk]
                try:
                    errors = queue.send_batch(name, messages)
                except BackendError as exc:
                    _log.warning("scheduler: queue %s refused %d due jobs: %s", name, len(chunk), exc)
                    continue
                sent.extend(job.job_id for job, error in zip(chunk, errors, strict=False) if error is None)
        return sent

    def _fire(self, schedule: Schedule, now: datetime) -> Firing:
        """Queue the schedule's due occurrences; where it stands after them."""
        due = due_occurrences(schedule, now)
        last_at, last_job = None, None
        for occurrence in due.run:
            key = occurrence_key(schedule, occurrence)
            try:
                last_job = self._direct.submit(
                    task=schedule.task,
                    tenant=schedule.tenant,
                    payload=schedule.payload,
                    key=key,
                    record_key=True,
                )
            except _HOPELESS as exc:
                _log.error("schedule %s/%s: occurrence %s skipped: %s", schedule.tenant, schedule.name,
                           occurrence.isoformat(), exc)  # fmt: skip
            last_at = occurrence
        return Firing(due.next_run_at, last_at, last_job)


def _body(job: DueJob) -> str:
    return job.body


def _remaining(job: DueJob, now: datetime) -> float:
    """Seconds the message should stay hidden: the rest of the job's wait."""
    return min(float(QUEUE_DELAY_LIMIT), max(0.0, (job.due_at - now).total_seconds()))
