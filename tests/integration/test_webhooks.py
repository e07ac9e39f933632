"""The PostgreSQL webhook store: deliveries made by the trigger on finished jobs only, claims that
skip locked rows, attempts, dead letters and redelivery, on a fresh migrated database each."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest

from tornado_core.adapters.postgres import PostgresJobStore, PostgresPool, PostgresTenantStore
from tornado_core.adapters.postgres.webhooks import PostgresWebhookStore
from tornado_core.errors import ConfigError
from tornado_core.ports.jobs import Failure, JobStatus, NewJob
from tornado_core.ports.webhooks import AttemptResult, DeliveryStatus, RedeliverOutcome
from tornado_core.tokens import hash_token, new_token
from tornado_core.webhooks.events import delivery_body

pytestmark = pytest.mark.integration

OK = AttemptResult(status_code=200, error=None, duration_ms=5)
FAILED = AttemptResult(status_code=None, error="ConnectionRefusedError", duration_ms=1)


@dataclass
class Db:
    url: str
    jobs: PostgresJobStore
    hooks: PostgresWebhookStore
    tenants: PostgresTenantStore

    def tenant(self, name: str) -> str:
        self.tenants.create(name, hash_token(new_token()))
        return name

    def endpoint(self, tenant: str, url: str = "http://127.0.0.1:9/hook") -> str:
        return self.hooks.add_endpoint(tenant=tenant, url=url, description="", secret="whsec_x").endpoint_id

    def deliveries(self, tenant: str | None = None, status: DeliveryStatus | None = None) -> list:  # type: ignore[type-arg]
        return self.hooks.list_deliveries(tenant=tenant, status=status, limit=100)


@pytest.fixture
def db(fresh_database_url: str) -> Iterator[Db]:
    pool = PostgresPool(fresh_database_url, min_size=0, max_size=4)
    hooks = PostgresWebhookStore(pool)
    yield Db(fresh_database_url, PostgresJobStore(pool), hooks, PostgresTenantStore(pool))
    hooks.close()
    pool.close()


def new_job(tenant: str, n: int) -> NewJob:
    return NewJob(
        job_id=f"job-{tenant}-{n}", tenant=tenant, task="demo.echo", version="1.0.0", submitted_at=0.0
    )


def run(db: Db, job: NewJob) -> None:
    db.jobs.record_queued([job])
    db.jobs.claim(job, attempt=1, lease_seconds=60, worker="w1")


def test_only_a_finished_job_of_a_tenant_with_endpoints_makes_deliveries(db: Db) -> None:
    acme, other = db.tenant("acme"), db.tenant("other")
    db.endpoint(acme, "http://127.0.0.1:9/a")
    db.endpoint(acme, "http://127.0.0.1:9/b")
    job, quiet = new_job(acme, 1), new_job(other, 1)
    run(db, job)
    run(db, quiet)
    db.jobs.record_progress(job.job_id, fraction=0.5, note="half")
    db.jobs.record_failure(
        job.job_id, status=JobStatus.RETRYING, failure=Failure(error_type="E", message="m")
    )
    db.jobs.claim(job, attempt=2, lease_seconds=60, worker="w2")
    assert db.deliveries() == []
    db.jobs.record_success(job.job_id, result={"total": 3}, result_ref=None)
    db.jobs.record_success(quiet.job_id, result=None, result_ref=None)
    db.jobs.record_success(job.job_id, result={"total": 3}, result_ref=None)  # a repeat is not a change
    found = db.deliveries()
    assert sorted(d.url for d in found) == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    assert {(d.event, d.job_id, d.status, d.attempts) for d in found} == {
        ("job.succeeded", job.job_id, DeliveryStatus.PENDING, 0)
    }
    (claimed, _) = db.hooks.claim_due(limit=10, lease_seconds=30)
    assert claimed.job["result"] == {"total": 3} and claimed.job["status"] == "succeeded"
    assert (
        claimed.job["task"] == "demo.echo" and claimed.job["attempts"] == 2 and claimed.job["error"] is None
    )
    assert claimed.job["finished_at"].endswith("+00:00") and claimed.secret == "whsec_x"


def test_dead_and_cancelled_jobs_make_their_events_also_when_inserted_so(db: Db) -> None:
    acme = db.tenant("acme")
    db.endpoint(acme)
    dead, waiting = new_job(acme, 1), new_job(acme, 2)
    run(db, dead)
    db.jobs.record_failure(
        dead.job_id, status=JobStatus.DEAD, failure=Failure(error_type="Boom", message="no")
    )
    db.jobs.record_queued([waiting])
    db.jobs.request_cancel(waiting.job_id, tenant=acme)
    db.jobs.request_cancel("job-acme-unrecorded", tenant=acme, issued=True)  # inserted as cancelled
    events = sorted((d.job_id, d.event) for d in db.deliveries(acme))
    assert events == [
        ("job-acme-1", "job.dead"), ("job-acme-2", "job.cancelled"), ("job-acme-unrecorded", "job.cancelled"),
    ]  # fmt: skip
    claimed = {c.job["id"]: c for c in db.hooks.claim_due(limit=10, lease_seconds=30)}
    assert claimed[dead.job_id].job["error"] == {"type": "Boom", "message": "no"}


def test_endpoints_belong_to_existing_tenants_and_list_without_their_secret(db: Db) -> None:
    acme = db.tenant("acme")
    with pytest.raises(ConfigError, match="no tenant 'ghost'"):
        db.hooks.add_endpoint(tenant="ghost", url="http://127.0.0.1:9/", description="", secret="whsec_x")
    endpoint = db.hooks.add_endpoint(
        tenant=acme, url="http://127.0.0.1:9/", description="ERP", secret="whsec_abcdefgh"
    )
    (listed,) = db.hooks.list_endpoints(tenant=acme)
    assert listed == endpoint and listed.secret_prefix == "whsec_abcd" and listed.description == "ERP"
    assert db.hooks.list_endpoints(tenant="other") == []


def test_claims_skip_deliveries_another_dispatcher_holds_and_never_overlap(db: Db) -> None:
    acme = db.tenant("acme")
    db.endpoint(acme)
    for n in range(20):
        run(db, new_job(acme, n))
        db.jobs.record_success(new_job(acme, n).job_id, result=n, result_ref=None)
    locked = db.deliveries()[0].delivery_id
    with psycopg2.connect(db.url) as holder, holder.cursor() as cur:  # another dispatcher mid-claim
        cur.execute("SELECT 1 FROM tornado_webhook_deliveries WHERE delivery_id = %s FOR UPDATE", (locked,))
        first = db.hooks.claim_due(limit=100, lease_seconds=30)
    assert len(first) == 19 and locked not in {c.delivery_id for c in first}
    second = db.hooks.claim_due(limit=100, lease_seconds=30)
    assert [c.delivery_id for c in second] == [locked]
    assert db.hooks.claim_due(limit=100, lease_seconds=30) == []  # all leased


def test_concurrent_dispatchers_take_each_delivery_once(db: Db) -> None:
    acme = db.tenant("acme")
    db.endpoint(acme)
    for n in range(40):
        run(db, new_job(acme, n))
        db.jobs.record_success(new_job(acme, n).job_id, result=n, result_ref=None)
    taken: list[str] = []
    lock = threading.Lock()

    def dispatcher() -> None:
        while batch := db.hooks.claim_due(limit=3, lease_seconds=30):
            with lock:
                taken.extend(c.delivery_id for c in batch)

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(taken) == 40 and len(set(taken)) == 40


def test_attempts_end_delivered_retried_or_dead_and_dead_ones_are_redelivered_under_their_id(db: Db) -> None:
    acme, other = db.tenant("acme"), db.tenant("other")
    db.endpoint(acme)
    for n in range(3):
        run(db, new_job(acme, n))
        db.jobs.record_success(new_job(acme, n).job_id, result=n, result_ref=None)
    ok, retried, dead = db.hooks.claim_due(limit=10, lease_seconds=30)
    db.hooks.record_attempt(ok, OK, retry_in=None)
    db.hooks.record_attempt(retried, FAILED, retry_in=3600)
    db.hooks.record_attempt(dead, FAILED, retry_in=None)
    db.hooks.record_attempt(ok, FAILED, retry_in=None)  # a second record of one claim changes nothing
    by_id = {d.delivery_id: d for d in db.deliveries(acme)}
    assert (
        by_id[ok.delivery_id].status is DeliveryStatus.DELIVERED
        and by_id[ok.delivery_id].last_status_code == 200
    )
    assert by_id[retried.delivery_id].status is DeliveryStatus.PENDING
    assert by_id[retried.delivery_id].last_error == "ConnectionRefusedError"
    assert db.hooks.claim_due(limit=10, lease_seconds=30) == []  # the retry is an hour away
    assert [d.delivery_id for d in db.deliveries(acme, DeliveryStatus.DEAD)] == [dead.delivery_id]

    assert db.hooks.redeliver(dead.delivery_id, tenant=other) is RedeliverOutcome.UNKNOWN
    assert db.hooks.redeliver("whd_nope", tenant=acme) is RedeliverOutcome.UNKNOWN
    assert db.hooks.redeliver(retried.delivery_id, tenant=acme) is RedeliverOutcome.PENDING
    assert db.hooks.redeliver(dead.delivery_id, tenant=acme) is RedeliverOutcome.SCHEDULED
    assert db.hooks.redeliver(ok.delivery_id, tenant=None) is RedeliverOutcome.SCHEDULED
    again = {c.delivery_id: c for c in db.hooks.claim_due(limit=10, lease_seconds=30)}
    assert set(again) == {dead.delivery_id, ok.delivery_id}
    assert {c.attempt for c in again.values()} == {1}


def test_removing_an_endpoint_ends_its_pending_deliveries_and_stops_new_ones(db: Db) -> None:
    acme = db.tenant("acme")
    endpoint = db.endpoint(acme)
    run(db, new_job(acme, 1))
    db.jobs.record_success(new_job(acme, 1).job_id, result=1, result_ref=None)
    assert db.hooks.remove_endpoint(endpoint, tenant="other") is False
    assert db.hooks.remove_endpoint(endpoint, tenant=acme) is True
    assert db.hooks.remove_endpoint(endpoint, tenant=acme) is False
    (dead,) = db.deliveries(acme, DeliveryStatus.DEAD)
    assert dead.last_error == "endpoint removed"
    assert db.hooks.redeliver(dead.delivery_id, tenant=acme) is RedeliverOutcome.ENDPOINT_REMOVED
    run(db, new_job(acme, 2))
    db.jobs.record_success(new_job(acme, 2).job_id, result=2, result_ref=None)
    assert len(db.deliveries(acme)) == 1 and db.hooks.list_endpoints(tenant=acme) == []


def test_a_finished_job_wakes_a_waiting_dispatcher(db: Db) -> None:
    acme = db.tenant("acme")
    db.endpoint(acme)
    deadline = time.monotonic() + 30
    while not db.hooks.listening:  # the first wait starts listening
        assert time.monotonic() < deadline, "the store never listened"
        db.hooks.wait_for_work(0.05)
    woke = threading.Event()

    def wait() -> None:
        db.hooks.wait_for_work(120)
        woke.set()

    thread = threading.Thread(target=wait)
    thread.start()
    run(db, new_job(acme, 1))
    db.jobs.record_success(new_job(acme, 1).job_id, result=1, result_ref=None)
    assert woke.wait(60), "the trigger's NOTIFY did not wake the dispatcher"
    thread.join()


def test_a_workflow_that_ends_makes_its_event_with_the_workflow_in_the_body(db: Db) -> None:
    acme = db.tenant("acme")
    db.endpoint(acme)
    with psycopg2.connect(db.url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO tornado_workflows (workflow_id, tenant, name, scope, status)"
            " VALUES ('wf_1', %s, 'invoice-42', 'test', 'running')",
            (acme,),
        )
        cur.execute("UPDATE tornado_workflows SET updated_at = clock_timestamp() WHERE workflow_id = 'wf_1'")
    assert db.deliveries() == []  # still running
    with psycopg2.connect(db.url) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE tornado_workflows SET status = 'failed', failed_step = 'emit', error = 'rejected',"
            " finished_at = clock_timestamp() WHERE workflow_id = 'wf_1'"
        )
    (delivery,) = db.deliveries()
    assert (delivery.event, delivery.job_id) == ("workflow.failed", "wf_1")
    (claimed,) = db.hooks.claim_due(limit=10, lease_seconds=30)
    body = json.loads(delivery_body(claimed))
    assert body["workflow"]["name"] == "invoice-42" and body["workflow"]["failed_step"] == "emit"
    assert "job" not in body
