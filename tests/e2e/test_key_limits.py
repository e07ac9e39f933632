"""Per-key limits with two real worker processes, on both queue backends: a per-tenant cap and a
per-field rate limit hold across the workers."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import Future

import pytest

from tests.e2e.helpers import most_at_once, results_of, start_workers
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient


@pytest.fixture(scope="module", autouse=True)
def limited_workers(module_cluster: LocalCluster, api_launch: Future[str]) -> None:
    start_workers(
        module_cluster, ("demo.capped", "demo.capped", "demo.rated", "demo.rated"), extra=["--poll-wait", "1"]
    )


def test_a_per_tenant_cap_holds_across_workers(client: TornadoClient) -> None:
    receipts = client.submit_many([{"task": "demo.capped", "payload": {"seconds": 0.05}}] * 20)
    runs = results_of(client, [r["id"] for r in receipts])
    # demo.capped allows 2 jobs at once per tenant; the two workers have 8 threads between them.
    assert most_at_once(runs) == 2


def test_a_rate_limit_per_account_holds_across_workers(client: TornadoClient) -> None:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    submitted = time.time()
    receipts = client.submit_many([{"task": "demo.rated", "payload": {"account": account}}] * 20)
    other = client.submit("demo.rated", {"account": f"{account}-other"})
    starts = sorted(r["started"] for r in results_of(client, [r["id"] for r in receipts]))
    # 5 per second with a burst of 5: the k-th start (1-based) comes no earlier than (k - 5) / 5 s
    # after the bucket was first used, which is after the submission.
    for k, started in enumerate(starts, start=1):
        assert started >= submitted + (k - 5) / 5, (k, started - submitted)
    assert client.wait(other["id"], timeout=60)["status"] == "succeeded"  # another key is not held
