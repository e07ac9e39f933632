"""Claiming a whole receive at once, and giving back what never ran: both job stores.

``memory`` is the in-process store of the unit tests, ``postgres`` the real one. The worker
claims the jobs of each receive with one ``claim_many`` call and releases the claims of the
prefetched messages it returns on stop; these are the rules it relies on.
"""

from __future__ import annotations

import pytest

from tornado_core.ports.jobs import Claim, ClaimOutcome, Failure, JobStatus, JobStorePort, NewJob

pytestmark = pytest.mark.integration


def job(prefix: str, n: int) -> NewJob:
    return NewJob(
        job_id=f"{prefix}-{n:04d}",
        tenant=f"{prefix}-acme",
        task="demo.echo",
        version="1.0.0",
        submitted_at=1_700_000_000.0 + n,
    )


def claim(prefix: str, n: int, worker: str, attempt: int = 1) -> Claim:
    return Claim(job=job(prefix, n), attempt=attempt, worker=worker)


def test_one_call_claims_new_jobs_and_refuses_done_busy_and_duplicate_ones(
    store: JobStorePort, prefix: str
) -> None:
    store.record_queued([job(prefix, 1)])
    assert store.claim(job(prefix, 2), attempt=1, lease_seconds=30, worker="other/m2") is ClaimOutcome.CLAIMED
    assert store.claim(job(prefix, 3), attempt=1, lease_seconds=30, worker="other/m3") is ClaimOutcome.CLAIMED
    store.record_success(job(prefix, 3).job_id, result={"n": 3}, result_ref=None)

    answers = store.claim_many(
        [
            claim(prefix, 4, "w/m4"),  # never recorded as queued: inserted as running
            claim(prefix, 1, "w/m1"),  # queued
            claim(prefix, 2, "w/m2"),  # another worker's unexpired lease
            claim(prefix, 3, "w/m3"),  # succeeded earlier
            claim(prefix, 1, "w/m1b"),  # a second message of job 1 in the same receive
        ],
        lease_seconds=30,
    )

    assert answers == [
        ClaimOutcome.CLAIMED, ClaimOutcome.CLAIMED, ClaimOutcome.BUSY, ClaimOutcome.ALREADY_DONE,
        ClaimOutcome.BUSY,
    ]  # fmt: skip
    for n in (1, 4):
        record = store.get(job(prefix, n).job_id)
        assert record is not None and (record.status, record.attempts) == (JobStatus.RUNNING, 1)
        assert record.created_at.timestamp() == job(prefix, n).submitted_at
    done = store.get(job(prefix, 3).job_id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.result == {"n": 3}
    assert store.claim_many([], lease_seconds=30) == []


def test_a_released_claim_is_as_if_it_never_happened(store: JobStorePort, prefix: str) -> None:
    store.record_queued([job(prefix, 1), job(prefix, 2)])
    first = [claim(prefix, 1, "w/m1"), claim(prefix, 2, "w/m2")]
    assert store.claim_many(first, lease_seconds=300) == [ClaimOutcome.CLAIMED] * 2
    failure = Failure(error_type="ValueError", message="bad input")
    store.record_failure(job(prefix, 2).job_id, status=JobStatus.RETRYING, failure=failure)
    retry = claim(prefix, 2, "w/m2", attempt=2)
    assert store.claim_many([retry], lease_seconds=300) == [ClaimOutcome.CLAIMED]

    store.release([first[0], retry])

    fresh, retried = store.get(job(prefix, 1).job_id), store.get(job(prefix, 2).job_id)
    assert fresh is not None
    assert (fresh.status, fresh.attempts, fresh.started_at) == (JobStatus.QUEUED, 0, None)
    assert retried is not None and (retried.status, retried.attempts) == (JobStatus.RETRYING, 1)
    assert retried.started_at is not None  # its first attempt did start
    # No lease is left: another worker takes both at once instead of waiting 300 s.
    again = [claim(prefix, 1, "x/m1"), claim(prefix, 2, "x/m2", attempt=3)]
    assert store.claim_many(again, lease_seconds=30) == [ClaimOutcome.CLAIMED] * 2


def test_release_leaves_a_job_another_worker_has_taken_over(store: JobStorePort, prefix: str) -> None:
    assert store.claim(job(prefix, 1), attempt=1, lease_seconds=0, worker="w/m1") is ClaimOutcome.CLAIMED
    assert store.claim(job(prefix, 1), attempt=2, lease_seconds=30, worker="x/m1") is ClaimOutcome.CLAIMED

    store.release([claim(prefix, 1, "w/m1")])  # w's lease had expired and x holds the job now

    record = store.get(job(prefix, 1).job_id)
    assert record is not None and (record.status, record.attempts) == (JobStatus.RUNNING, 2)
    assert store.claim(job(prefix, 1), attempt=3, lease_seconds=30, worker="y/m1") is ClaimOutcome.BUSY
