"""Fair dispatch with two real worker processes on the PostgreSQL queue: a tenant's burst does not
hold back another tenant's jobs (on SQS the jobs carry their tenant as MessageGroupId, for SQS fair
queues, which the local endpoint does not emulate)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from tests.e2e.helpers import results_of, start_workers
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.services import Services
from tornado_core.tokens import hash_token, new_token


@pytest.fixture(scope="module")
def backend() -> str:
    """Fair dispatch is the PostgreSQL queue's (see the module docstring)."""
    return "postgres"


@pytest.fixture(scope="module", autouse=True)
def fair_workers(module_cluster: LocalCluster, api_launch: Future[str]) -> None:
    start_workers(module_cluster, ("demo.fair", "demo.fair"), extra=["--poll-wait", "1"])


@pytest.fixture
def big_and_small(services: Services, api_url: str) -> Iterator[tuple[TornadoClient, TornadoClient]]:
    clients = []
    for size in ("big", "small"):
        token = new_token()
        services.tenants.create(f"{size}-{uuid.uuid4().hex[:8]}", hash_token(token))
        clients.append(TornadoClient(api_url, token))
    yield clients[0], clients[1]


def test_a_tenants_burst_does_not_hold_back_another_tenant(
    big_and_small: tuple[TornadoClient, TornadoClient],
) -> None:
    big, small = big_and_small
    burst = big.submit_many([{"task": "demo.fair", "payload": {"seconds": 0.02}}] * 400)
    few = small.submit_many([{"task": "demo.fair", "payload": {"seconds": 0.02}}] * 20)
    big_runs = results_of(big, [r["id"] for r in burst])
    small_runs = results_of(small, [r["id"] for r in few])
    # Submitted after the whole burst, the small tenant's jobs are all done while most of the
    # burst still waits (first come, first served, they would come after all of it).
    small_done = max(r["ended"] for r in small_runs)
    left = [r for r in big_runs if r["ended"] > small_done]
    assert len(left) >= len(big_runs) // 2, (len(left), len(big_runs))
