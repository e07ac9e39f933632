"""Uniqueness keys in both job stores: one holder among concurrent callers, and when a key frees up."""

from __future__ import annotations

import threading

import pytest

from tests.integration.test_job_claims import claim, job
from tornado_core.ports.jobs import JobStatus, JobStorePort

pytestmark = pytest.mark.integration


def test_of_concurrent_callers_with_one_key_one_holds_it(store: JobStorePort, prefix: str) -> None:
    holders: list[str] = []
    gate = threading.Barrier(8)

    def take(n: int) -> None:
        gate.wait()
        holders.append(store.hold_unique("demo.report", prefix, "k", f"{prefix}-{n}", window=0))

    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(holders) == 8 and len(set(holders)) == 1


def test_a_key_frees_up_when_its_job_finishes_or_is_given_back(store: JobStorePort, prefix: str) -> None:
    first = job(prefix, 1)
    assert store.hold_unique("demo.echo", first.tenant, "k", first.job_id, window=0) == first.job_id
    store.record_queued([first])
    assert store.hold_unique("demo.echo", first.tenant, "k", f"{prefix}-x", window=0) == first.job_id
    store.claim_many([claim(prefix, 1, "w1")], lease_seconds=60)
    assert store.hold_unique("demo.echo", first.tenant, "k", f"{prefix}-x", window=0) == first.job_id
    store.record_success(first.job_id, result={}, result_ref=None)
    assert store.hold_unique("demo.echo", first.tenant, "k", f"{prefix}-2", window=3600) == first.job_id
    assert store.hold_unique("demo.echo", first.tenant, "k", f"{prefix}-2", window=0) == f"{prefix}-2"
    store.release_unique("demo.echo", first.tenant, "k", f"{prefix}-2")  # its message was refused
    assert store.hold_unique("demo.echo", first.tenant, "k", f"{prefix}-3", window=0) == f"{prefix}-3"
    record = store.get(first.job_id)
    assert record is not None and record.status is JobStatus.SUCCEEDED
