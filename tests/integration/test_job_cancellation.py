"""Cancellation in both job stores: what request_cancel does in each state, and what claims do after."""

from __future__ import annotations

import pytest

from tests.integration.test_job_claims import claim, job
from tornado_core.ports.jobs import CancelOutcome, ClaimOutcome, Failure, JobStatus, JobStorePort

pytestmark = pytest.mark.integration


def tenant(prefix: str) -> str:
    return f"{prefix}-acme"


def test_a_queued_job_is_cancelled_and_its_message_is_then_dropped(store: JobStorePort, prefix: str) -> None:
    store.record_queued([job(prefix, 1)])
    outcome, status = store.request_cancel(job(prefix, 1).job_id, tenant=tenant(prefix))
    assert (outcome, status) == (CancelOutcome.CANCELLED, JobStatus.CANCELLED)
    assert store.claim_many([claim(prefix, 1, "w1")], lease_seconds=60) == [ClaimOutcome.ALREADY_DONE]
    record = store.get(job(prefix, 1).job_id)
    assert record is not None and record.status is JobStatus.CANCELLED and record.attempts == 0
    assert record.finished_at is not None


def test_a_retrying_job_is_cancelled_like_a_queued_one(store: JobStorePort, prefix: str) -> None:
    store.claim_many([claim(prefix, 2, "w1")], lease_seconds=60)
    store.record_failure(
        job(prefix, 2).job_id, status=JobStatus.RETRYING, failure=Failure(error_type="Boom", message="boom")
    )
    assert store.request_cancel(job(prefix, 2).job_id, tenant=tenant(prefix))[0] is CancelOutcome.CANCELLED
    assert store.claim_many([claim(prefix, 2, "w2", attempt=2)], lease_seconds=60) == [
        ClaimOutcome.ALREADY_DONE
    ]


def test_a_running_job_hears_of_it_through_its_lease_and_ends_cancelled(
    store: JobStorePort, prefix: str
) -> None:
    store.claim_many([claim(prefix, 3, "w1")], lease_seconds=60)
    job_id = job(prefix, 3).job_id
    assert store.extend_lease(job_id, lease_seconds=60) is False
    assert store.request_cancel(job_id, tenant=tenant(prefix)) == (CancelOutcome.REQUESTED, JobStatus.RUNNING)
    assert store.extend_lease(job_id, lease_seconds=60) is True
    # Another delivery of it while the worker still holds it waits, as for any running job.
    assert store.claim_many([claim(prefix, 3, "w2", attempt=2)], lease_seconds=60) == [ClaimOutcome.BUSY]
    store.record_failure(
        job_id, status=JobStatus.CANCELLED, failure=Failure(error_type="JobCancelled", message="cancelled")
    )
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.CANCELLED and record.finished_at is not None


def test_a_job_cancelled_while_running_whose_worker_died_ends_cancelled_at_its_next_claim(
    store: JobStorePort, prefix: str
) -> None:
    store.claim_many([claim(prefix, 4, "w1")], lease_seconds=0)  # the lease is over at once
    job_id = job(prefix, 4).job_id
    assert store.request_cancel(job_id, tenant=tenant(prefix))[0] is CancelOutcome.REQUESTED
    assert store.claim_many([claim(prefix, 4, "w2", attempt=2)], lease_seconds=60) == [
        ClaimOutcome.ALREADY_DONE
    ]
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.CANCELLED and record.attempts == 1


def test_a_finished_job_and_another_tenants_job_are_left_alone(store: JobStorePort, prefix: str) -> None:
    store.claim_many([claim(prefix, 5, "w1")], lease_seconds=60)
    job_id = job(prefix, 5).job_id
    store.record_success(job_id, result={"ok": True}, result_ref=None)
    assert store.request_cancel(job_id, tenant=tenant(prefix)) == (
        CancelOutcome.FINISHED,
        JobStatus.SUCCEEDED,
    )
    store.record_queued([job(prefix, 6)])
    other = job(prefix, 6).job_id
    assert store.request_cancel(other, tenant=f"{prefix}-globex") == (CancelOutcome.UNKNOWN, None)
    assert store.request_cancel(f"{prefix}-missing", tenant=tenant(prefix)) == (CancelOutcome.UNKNOWN, None)
    record = store.get(other)
    assert record is not None and record.status is JobStatus.QUEUED


def test_a_job_cancelled_before_its_row_was_written_stays_cancelled_and_gets_its_task(
    store: JobStorePort, prefix: str
) -> None:
    # On SQS the queued row is written behind the message: a quick cancel can arrive first.
    job_id = job(prefix, 7).job_id
    assert store.request_cancel(job_id, tenant=tenant(prefix), issued=True) == (
        CancelOutcome.CANCELLED,
        JobStatus.CANCELLED,
    )
    store.record_queued([job(prefix, 7)])
    record = store.get(job_id)
    assert record is not None and record.status is JobStatus.CANCELLED
    assert (record.task, record.version) == ("demo.echo", "1.0.0")
    assert store.claim_many([claim(prefix, 7, "w1")], lease_seconds=60) == [ClaimOutcome.ALREADY_DONE]
