"""Scheduled jobs and periodic schedules in memory, for unit tests (one process, no durability)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace as changed
from datetime import UTC, datetime

from tornado_core.errors import ScheduleExists
from tornado_core.ports.jobs import JobStatus, JobStorePort
from tornado_core.ports.schedules import DueJob, FireSchedule, ParkedJob, Schedule, SendDue


class MemorySchedules:
    """:class:`~tornado_core.ports.schedules.SchedulesPort` beside a job store in memory.

    Args:
        jobs: The job store whose rows say ``scheduled`` and then ``queued``.
    """

    def __init__(self, jobs: JobStorePort) -> None:
        self._jobs = jobs
        self._parked: dict[str, ParkedJob] = {}
        self._schedules: dict[tuple[str, str], Schedule] = {}
        self._lock = threading.RLock()

    def park(self, jobs: Sequence[ParkedJob]) -> None:
        with self._lock:
            fresh = [p for p in jobs if self._jobs.get(p.job.job_id) is None]
            self._jobs.record_queued([p.job for p in fresh])
            self._jobs.mark([p.job.job_id for p in fresh], status=JobStatus.SCHEDULED)
            self._parked.update((p.job.job_id, p) for p in fresh)

    def release_due(self, *, until: datetime, limit: int, send: SendDue) -> int:
        with self._lock:
            ready = sorted((p for p in self._parked.values() if p.due_at <= until), key=lambda p: p.due_at)
            due, dropped = [], []
            for p in ready[:limit]:
                record = self._jobs.get(p.job.job_id)
                if record is not None and record.status is JobStatus.CANCELLED:
                    dropped.append(p.job.job_id)
                else:
                    due.append(
                        DueJob(
                            job_id=p.job.job_id,
                            queue=p.queue,
                            body=p.body,
                            due_at=p.due_at,
                            tenant=p.job.tenant,
                        )
                    )
            sent = list(send(due)) if due else []
            for job_id in sent + dropped:
                del self._parked[job_id]
            records = [self._jobs.get(job_id) for job_id in sent]
            waiting = [r.job_id for r in records if r is not None and r.status is JobStatus.SCHEDULED]
            self._jobs.mark(waiting, status=JobStatus.QUEUED)
            return len(sent)

    def parked(self) -> int:
        with self._lock:
            return len(self._parked)

    def save(self, schedule: Schedule, *, replace: bool = False) -> Schedule:
        key = (schedule.tenant, schedule.name)
        with self._lock:
            known = self._schedules.get(key)
            if known is not None and not replace:
                raise ScheduleExists(schedule.tenant, schedule.name)
            created = known.created_at if known is not None else datetime.now(UTC)
            stored = self._schedules[key] = changed(schedule, created_at=created)
            return stored

    def get(self, tenant: str, name: str) -> Schedule | None:
        with self._lock:
            return self._schedules.get((tenant, name))

    def list(self, tenant: str | None = None) -> list[Schedule]:
        with self._lock:
            return [s for _, s in sorted(self._schedules.items()) if tenant is None or s.tenant == tenant]

    def set_paused(self, tenant: str, name: str, *, paused: bool, next_run_at: datetime) -> Schedule | None:
        with self._lock:
            known = self._schedules.get((tenant, name))
            if known is None:
                return None
            after = known.next_run_at if paused else next_run_at
            stored = self._schedules[(tenant, name)] = changed(known, paused=paused, next_run_at=after)
            return stored

    def remove(self, tenant: str, name: str) -> bool:
        with self._lock:
            return self._schedules.pop((tenant, name), None) is not None

    def fire_due(self, *, now: datetime, limit: int, fire: FireSchedule) -> int:
        fired = 0
        with self._lock:
            while fired < limit:
                due = [s for s in self._schedules.values() if not s.paused and s.next_run_at <= now]
                if not due:
                    break
                schedule = min(due, key=lambda s: s.next_run_at)
                firing = fire(schedule)
                self._schedules[(schedule.tenant, schedule.name)] = changed(
                    schedule,
                    next_run_at=firing.next_run_at,
                    last_run_at=firing.last_run_at or schedule.last_run_at,
                    last_job_id=firing.last_job_id or schedule.last_job_id,
                )
                fired += 1
        return fired
