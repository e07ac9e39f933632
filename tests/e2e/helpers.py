"""Polling helpers of the end-to-end tests, and a look at the effects jobs leave in the ERP database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import psycopg2

from tornado_core.adapters.runtimes.process.cluster import LocalCluster, ManagedProcess
from tornado_core.client import TornadoClient
from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.services import Services


def wait_until(predicate: Callable[[], object], *, timeout: float = 30.0, what: str = "condition") -> object:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def wait_for_job(services: Services, job_id: str, status: JobStatus, *, timeout: float = 30.0) -> JobRecord:
    """Wait until the job store shows ``status`` for the job."""

    def reached() -> JobRecord | None:
        record = services.jobs.get(job_id)
        return record if record is not None and record.status is status else None

    try:
        return wait_until(reached, timeout=timeout, what=f"job {job_id} to be {status}")  # type: ignore[return-value]
    except AssertionError:
        record = services.jobs.get(job_id)
        raise AssertionError(f"job {job_id} is {record and record.status}, not {status}: {record}") from None


def effect_rows(erp_url: str, job_id: str) -> int:
    """Rows ``demo.sleep`` (``record_effect``) left in the ERP table ``demo_effects`` for one job."""
    with psycopg2.connect(erp_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('demo_effects') IS NOT NULL")
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SELECT count(*) FROM demo_effects WHERE job_id = %s", (job_id,))
        return int(cur.fetchone()[0])


def results_of(client: TornadoClient, job_ids: list[str], *, timeout: float = 180.0) -> list[Any]:
    """The results of jobs, once each succeeded."""
    return [client.wait(job_id, timeout=timeout)["result"] for job_id in job_ids]


def most_at_once(runs: list[dict[str, float]]) -> int:
    """Most runs at once, from each run's own ``started`` and ``ended`` times."""
    events = sorted([(r["started"], 1) for r in runs] + [(r["ended"], -1) for r in runs])
    running = peak = 0
    for _, change in events:  # an end sorts before a start at the same instant
        running += change
        peak = max(peak, running)
    return peak


def start_workers(
    cluster: LocalCluster, tasks: Iterable[str], *, concurrency: int = 4, extra: Sequence[str] = ()
) -> list[ManagedProcess]:
    """Start a worker per task (a task named twice gets two) and return once every one polls its queue.

    They boot side by side instead of one after the other (each ``tornado worker`` spends about a
    second starting); the wait is :meth:`ManagedProcess.wait_ready`'s, on each one's health file.
    """
    started = [
        cluster.start_worker(task, concurrency=concurrency, extra=extra, wait_ready=False) for task in tasks
    ]
    for process in started:
        wait_ready(process)
    return started


def wait_ready(worker: ManagedProcess) -> None:
    """Wait until a worker started with ``wait_ready=False`` polls its queue (its health file exists)."""
    arguments = list(worker.args)
    worker.wait_ready(Path(arguments[arguments.index("--health-file") + 1]))
