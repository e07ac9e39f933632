"""With the SQS queue, PostgreSQL restarted mid-run: the API keeps accepting punches, the backlog drains."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from tornado_tasks.ponto.devices import DeviceRun, make_punches

from tests.e2e.helpers import wait_until
from tests.e2e.ponto_support import (
    assert_exactly_once_gap_free_and_chained,
    create_ponto_tenant,
    post,
    wait_recorded,
)
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.services import Services


@pytest.fixture(scope="module")
def backend() -> str:
    """SQS (moto): its cost grows with queue depth, so this run stays small."""
    return "sqs"


def test_postgres_restart_mid_run_the_api_keeps_accepting_and_the_backlog_drains(
    api_url: str, services: Services, cluster: LocalCluster, dev_stack: object
) -> None:
    tenant = create_ponto_tenant(services, reps=3)
    warm = make_punches(tenant.reps, 30, now=datetime.now(UTC), seed=1)
    cluster.start_worker("ponto.record", concurrency=4, extra=["--poll-wait", "1"])
    post(api_url, tenant, warm, devices=10)  # the API now knows the tenant's token and REPs
    wait_recorded(services, tenant, len(warm))

    punches = make_punches(tenant.reps, 300, now=datetime.now(UTC), seed=2)
    run = DeviceRun()
    sender = threading.Thread(target=post, args=(api_url, tenant, punches, 5, run))
    dev_stack.stop_postgres()  # type: ignore[attr-defined]
    try:
        sender.start()
        # The devices keep punching, and the API keeps accepting, while the database is down.
        wait_until(lambda: len(run.accepted) >= 50, what="punches accepted during the outage", timeout=120)
        accepted_while_down = len(run.accepted)
    finally:
        dev_stack.start_postgres()  # type: ignore[attr-defined]
    assert accepted_while_down > 0
    sender.join(timeout=300)
    assert len(run.accepted) == len(punches) and run.statuses.get(503, 0) == 0
    wait_recorded(services, tenant, len(warm) + len(punches), timeout=240)
    assert_exactly_once_gap_free_and_chained(services, tenant, {p["id"] for p in warm + punches})
