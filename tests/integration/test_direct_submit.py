"""Queueing a job by its key again after a crash, on SQS (the job's row is written after its message)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg2
import pytest

from tornado_core.bootstrap import build_services
from tornado_core.naming import queue_spec
from tornado_core.ports.jobs import NewJob, Success
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.producer.direct import DirectSubmitter
from tornado_core.services import Services
from tornado_core.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def services(stack_env: dict[str, str]) -> Iterator[Services]:
    """Services on SQS, with queues of this test only."""
    env = {**stack_env, "TORNADO_QUEUE": "sqs", "TORNADO_QUEUE_PREFIX": f"ds{uuid.uuid4().hex[:6]}"}
    built, close = build_services(Settings.load(env))
    yield built
    close()


def row_of(postgres_url: str, job_id: str) -> tuple[str | None, str]:
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT idempotency_key, status FROM tornado_jobs WHERE job_id = %s", (job_id,))
        row = cur.fetchone()
    conn.close()
    assert row is not None, f"no row for job {job_id}"
    return row[0], row[1]


def test_a_job_run_before_its_row_was_written_gets_its_key_when_queued_again(
    services: Services, postgres_url: str
) -> None:
    """A scheduler sent an occurrence's message and was killed before it wrote the job's row; a worker
    ran the job (its claim wrote a row without the key). The next scheduler queues the occurrence
    again: the job is not sent twice, and its row now says which occurrence it is."""
    direct = DirectSubmitter(services)
    tenant, key = f"acme-{uuid.uuid4().hex[:6]}", f"schedule:nightly:{uuid.uuid4()}"
    prepared = direct.prepare(task="demo.echo", tenant=tenant, payload={"message": "tick"}, key=key)
    envelope = prepared.envelope
    services.queue.ensure_queue(
        queue_spec(services.settings.queue_prefix, services.registry.get("demo.echo"))
    )
    assert services.queue.send_batch(prepared.queue, [OutgoingMessage(prepared.body)]) == [None]
    # The worker's side: claimed from the message alone (no key in it), then succeeded.
    job = NewJob(envelope.job_id, envelope.tenant, envelope.task, envelope.version, envelope.submitted_at)
    services.jobs.claim(job, attempt=1, lease_seconds=30, worker="worker-1")
    services.jobs.record_successes([Success(job_id=envelope.job_id, result={"message": "tick"})])
    assert row_of(postgres_url, envelope.job_id) == (None, "succeeded")

    job_id = direct.submit(
        task="demo.echo", tenant=tenant, payload={"message": "tick"}, key=key, record_key=True
    )

    assert job_id == envelope.job_id
    assert row_of(postgres_url, job_id) == (key, "succeeded")  # its key, and still done
    assert services.queue.depth(prepared.queue).total == 1  # the message the first scheduler sent, only
