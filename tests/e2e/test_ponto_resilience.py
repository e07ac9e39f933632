"""Punches survive a worker killed mid-batch (PostgreSQL queue): nothing lost, nothing doubled."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from tornado_tasks.ponto.devices import DeviceRun, make_punches

from tests.e2e.helpers import wait_until
from tests.e2e.ponto_support import (
    PontoTenant,
    assert_exactly_once_gap_free_and_chained,
    create_ponto_tenant,
    post,
    recorded,
    wait_recorded,
)
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.services import Services


@pytest.fixture(scope="module")
def backend() -> str:
    return "postgres"


def test_worker_killed_mid_batch_loses_and_doubles_no_punch(
    api_url: str, services: Services, cluster: LocalCluster
) -> None:
    tenant: PontoTenant = create_ponto_tenant(services, reps=4)
    punches = make_punches(tenant.reps, 4000, now=datetime.now(UTC), seed=9)
    doomed = cluster.start_worker("ponto.record", concurrency=8, extra=["--poll-wait", "1"])
    runs: list[DeviceRun] = []
    sender = threading.Thread(target=lambda: runs.append(post(api_url, tenant, punches, devices=100)))
    sender.start()
    wait_until(lambda: recorded(services, tenant) >= 600, timeout=120, what="the worker to be busy")
    doomed.kill()  # SIGKILL: transactions in flight roll back, their messages reappear
    at_kill = recorded(services, tenant)
    cluster.start_worker("ponto.record", concurrency=8, extra=["--poll-wait", "1"])
    sender.join(timeout=300)
    assert runs and len(runs[0].accepted) == len(punches)
    wait_recorded(services, tenant, len(punches))
    assert at_kill < len(punches)
    assert_exactly_once_gap_free_and_chained(services, tenant, {p["id"] for p in punches})
