"""The schedules store in PostgreSQL: schedules per tenant, firing under row locks, parked jobs."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from tornado_core.adapters.postgres import PostgresJobStore, PostgresPool
from tornado_core.adapters.postgres.schedules import PostgresSchedules
from tornado_core.errors import ScheduleExists
from tornado_core.ports.jobs import JobStatus, NewJob
from tornado_core.ports.schedules import DueJob, Firing, MissedPolicy, ParkedJob, Schedule

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
#: Due long ago: only this module's parked jobs are due by then (other tests park jobs too).
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def pool(postgres_url: str) -> Iterator[PostgresPool]:
    built = PostgresPool(postgres_url, max_size=4)
    yield built
    built.close()


def schedule(tenant: str, name: str = "nightly", at: datetime = T0) -> Schedule:
    return Schedule(tenant=tenant, name=name, task="demo.echo", payload={"message": "x"}, cron="0 2 * * *",
                    timezone="UTC", missed=MissedPolicy.SKIP, next_run_at=at)  # fmt: skip


def test_each_tenant_sees_its_own_schedules(pool: PostgresPool) -> None:
    store = PostgresSchedules(pool)
    acme, globex = f"acme-{uuid.uuid4().hex[:6]}", f"globex-{uuid.uuid4().hex[:6]}"
    store.save(schedule(globex))
    stored = store.save(schedule(acme))
    assert (stored.tenant, stored.name, stored.created_at is not None) == (acme, "nightly", True)
    fetched = store.get(acme, "nightly")
    assert fetched is not None and fetched.tenant == acme
    assert store.get(acme, "weekly") is None
    assert [s.tenant for s in store.list(acme)] == [acme]
    with pytest.raises(ScheduleExists):
        store.save(schedule(acme))
    paused = store.set_paused(acme, "nightly", paused=True, next_run_at=T0)
    assert paused is not None and paused.paused and paused.tenant == acme
    assert store.remove(acme, "nightly") and not store.remove(acme, "nightly")
    assert store.get(globex, "nightly") is not None


def test_two_firing_at_once_fire_each_due_schedule_once(pool: PostgresPool) -> None:
    store = PostgresSchedules(pool)
    tenant = f"fire-{uuid.uuid4().hex[:6]}"
    for n in range(6):
        store.save(schedule(tenant, f"s{n}", at=LONG_AGO - timedelta(days=3650)))
    fired: list[str] = []
    both_in = threading.Barrier(2, timeout=30)  # each holds a row lock while the other takes one
    seen: set[int] = set()
    lock = threading.Lock()

    def fire(found: Schedule) -> Firing:
        with lock:
            first = threading.get_ident() not in seen
            seen.add(threading.get_ident())
            fired.append(found.name)
        if first:
            both_in.wait()
        return Firing(T0 + timedelta(days=3650), found.next_run_at, None)

    threads = [
        threading.Thread(target=store.fire_due, kwargs={"now": LONG_AGO, "limit": 100, "fire": fire})
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mine = [name for name in fired if name.startswith("s")]
    assert sorted(mine) == [f"s{n}" for n in range(6)]  # every one, none twice
    assert all(s.next_run_at == T0 + timedelta(days=3650) for s in store.list(tenant))


def recorder(into: list[str]) -> Callable[[Sequence[DueJob]], list[str]]:
    """A send that takes every due job and notes its id."""

    def send(due: Sequence[DueJob]) -> list[str]:
        into.extend(job.job_id for job in due)
        return [job.job_id for job in due]

    return send


def test_parked_jobs_are_released_once_and_a_cancelled_one_never(pool: PostgresPool) -> None:
    store, jobs = PostgresSchedules(pool), PostgresJobStore(pool)
    tenant = f"park-{uuid.uuid4().hex[:6]}"
    parked = [
        ParkedJob(job=NewJob(job_id=f"{tenant}-{n}", tenant=tenant, task="demo.echo", version="1.0.0",
                             submitted_at=time.time()), queue="q", body=f"body-{n}", due_at=LONG_AGO)
        for n in range(3)
    ]  # fmt: skip
    store.park(parked)
    assert [status(jobs, p.job.job_id) for p in parked] == [JobStatus.SCHEDULED] * 3
    jobs.request_cancel(parked[0].job.job_id, tenant=tenant)
    sent: list[str] = []
    store.release_due(until=LONG_AGO, limit=1000, send=recorder(sent))
    assert sorted(i for i in sent if i.startswith(tenant)) == [parked[1].job.job_id, parked[2].job.job_id]
    assert status(jobs, parked[1].job.job_id) is JobStatus.QUEUED
    assert status(jobs, parked[0].job.job_id) is JobStatus.CANCELLED
    again: list[str] = []
    store.release_due(until=LONG_AGO, limit=1000, send=recorder(again))
    assert not [i for i in again if i.startswith(tenant)]


def status(jobs: PostgresJobStore, job_id: str) -> JobStatus | None:
    record = jobs.get(job_id)
    return record.status if record is not None else None
