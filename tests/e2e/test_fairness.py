"""Per-key limits with two real worker processes, on both queue backends: a tenant's burst does not
starve another tenant, a per-tenant cap and a per-field rate limit hold across the workers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.services import Services
from tornado_core.tokens import hash_token, new_token


@pytest.fixture(scope="module", autouse=True)
def limited_workers(module_cluster: LocalCluster, api_url: str) -> None:
    for task in ("demo.fair", "demo.fair", "demo.rated", "demo.rated"):
        module_cluster.start_worker(task, concurrency=4, extra=["--poll-wait", "1"])


@pytest.fixture
def big_and_small(services: Services, api_url: str) -> Iterator[tuple[TornadoClient, TornadoClient]]:
    clients = []
    for size in ("big", "small"):
        token = new_token()
        services.tenants.create(f"{size}-{uuid.uuid4().hex[:8]}", hash_token(token))
        clients.append(TornadoClient(api_url, token))
    yield clients[0], clients[1]


def results(client: TornadoClient, ids: list[str]) -> list[dict[str, float]]:
    return [client.wait(job_id, timeout=180)["result"] for job_id in ids]


def most_at_once(intervals: list[dict[str, float]]) -> int:
    events = sorted([(r["started"], 1) for r in intervals] + [(r["ended"], -1) for r in intervals])
    running = peak = 0
    for _, change in events:  # an end sorts before a start at the same instant
        running += change
        peak = max(peak, running)
    return peak


def test_a_tenants_burst_waits_its_turn_and_its_cap_holds_across_workers(
    big_and_small: tuple[TornadoClient, TornadoClient],
) -> None:
    big, small = big_and_small
    burst = big.submit_many([{"task": "demo.fair", "payload": {"seconds": 0.05}}] * 240)
    few = small.submit_many([{"task": "demo.fair", "payload": {"seconds": 0.05}}] * 10)
    big_runs = results(big, [r["id"] for r in burst])
    small_runs = results(small, [r["id"] for r in few])
    # Submitted after the whole burst, the small tenant's jobs are all done while a good part of
    # the burst still waits (in a first-come queue they would come after all of it).
    small_done = max(r["ended"] for r in small_runs)
    left = [r for r in big_runs if r["ended"] > small_done]
    assert len(left) >= len(big_runs) // 5, (len(left), len(big_runs))
    # demo.fair allows 2 jobs at once per tenant; the two workers have 8 threads between them.
    assert most_at_once(big_runs) <= 2 and most_at_once(small_runs) <= 2


def test_a_rate_limit_per_account_holds_across_workers(client: TornadoClient) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    submitted = time.time()
    receipts = client.submit_many([{"task": "demo.rated", "payload": {"account": account}}] * 20)
    other = client.submit("demo.rated", {"account": f"{account}-other"})
    starts = sorted(r["started"] for r in results(client, [r["id"] for r in receipts]))
    # 5 per second with a burst of 5: the k-th start (1-based) comes no earlier than (k - 5) / 5 s
    # after the bucket was first used, which is after the submission.
    for k, started in enumerate(starts, start=1):
        assert started >= submitted + (k - 5) / 5, (k, started - submitted)
    assert client.wait(other["id"], timeout=60)["status"] == "succeeded"  # another key is not held
