"""What the worker loop guarantees when jobs run long and processes die, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.celery_support import CORE_BACKENDS
from tests.e2e.helpers import effect_rows, wait_for_job, wait_until
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services

#: The core guarantees hold on every queue backend, the Celery engine's Redis included.
pytestmark = pytest.mark.parametrize("backend", CORE_BACKENDS, indirect=True)


def test_job_outliving_its_visibility_timeout_is_not_redelivered_while_its_worker_lives(
    client: TornadoClient, services: Services, cluster: LocalCluster
) -> None:
    visibility = services.registry.get("demo.sleep").visibility_timeout
    cluster.start_worker("demo.sleep", concurrency=2, extra=["--poll-wait", "1"])
    cluster.start_worker("demo.sleep", concurrency=2, extra=["--poll-wait", "1"])  # a rival poller
    receipt = client.submit("demo.sleep", {"seconds": visibility * 1.7, "steps": 10})
    record = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=60)
    assert record.attempts == 1  # it ran all along, 1.7 visibility timeouts, and was never taken over
    assert record.progress == 1.0


def test_kill_9_mid_job_the_job_completes_later_exactly_once_in_effect(
    client: TornadoClient, services: Services, cluster: LocalCluster, e2e_env: dict[str, str]
) -> None:
    doomed = cluster.start_worker("demo.sleep", concurrency=1, extra=["--poll-wait", "1"])
    receipt = client.submit("demo.sleep", {"seconds": 3, "steps": 30, "record_effect": True})
    wait_until(
        lambda: (services.jobs.get(receipt["id"]) or _nothing()).progress > 0.1,
        what="the job to make progress",
    )
    doomed.kill()
    cluster.start_worker("demo.sleep", concurrency=1, extra=["--poll-wait", "1"])
    record = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=60)
    assert record.attempts == 2
    assert effect_rows(e2e_env["TORNADO_ERP_DATABASE_URL"], receipt["id"]) == 1


def test_sigterm_mid_job_finishes_it_exits_0_and_loses_nothing(
    client: TornadoClient, services: Services, cluster: LocalCluster, queue_of: Callable[[str], str]
) -> None:
    worker = cluster.start_worker("demo.sleep", concurrency=1, extra=["--poll-wait", "1"])
    running = client.submit("demo.sleep", {"seconds": 2, "steps": 20})
    wait_for_job(services, running["id"], JobStatus.RUNNING)
    waiting = [client.submit("demo.sleep", {"seconds": 0.1, "steps": 1})["id"] for _ in range(3)]
    assert worker.terminate(grace=30) == 0  # it exits by itself (a kill after the grace would be -9)
    record = wait_for_job(services, running["id"], JobStatus.SUCCEEDED, timeout=1)
    assert record.attempts == 1
    assert services.queue.depth(queue_of("demo.sleep")).total == 3  # the others wait, visible at once
    cluster.start_worker("demo.sleep", concurrency=3, extra=["--poll-wait", "1"])
    for job_id in waiting:
        assert wait_for_job(services, job_id, JobStatus.SUCCEEDED, timeout=30).attempts == 1


def test_concurrency_cap_holds_across_two_worker_processes(
    client: TornadoClient, services: Services, cluster: LocalCluster
) -> None:
    cap = services.registry.get("demo.throttled").max_concurrency
    assert cap == 2
    for _ in range(2):
        cluster.start_worker("demo.throttled", concurrency=4, extra=["--poll-wait", "1"])
    ids = [client.submit("demo.throttled", {"seconds": 0.6, "steps": 2})["id"] for _ in range(8)]
    records = [wait_for_job(services, job_id, JobStatus.SUCCEEDED, timeout=60) for job_id in ids]
    intervals = [(r.started_at, r.finished_at) for r in records]
    peak = max(sum(1 for s, f in intervals if s <= start < f) for start, _ in intervals)  # type: ignore[operator]
    assert peak == cap


def _nothing() -> Any:
    class Nothing:
        progress = 0.0
        attempts = 0

    return Nothing()
