"""The dispatcher on the in-memory store: retries with back-off, one success, dead letters, redelivery."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from tornado_core.adapters.memory.webhooks import MemoryWebhookStore
from tornado_core.ports.webhooks import AttemptResult, DeliveryStatus, RedeliverOutcome
from tornado_core.webhooks import verify_signature
from tornado_core.webhooks.dispatcher import Dispatcher, DispatchOptions

SECRET = "whsec_unit"
URL = "http://127.0.0.1:9/hook"


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Receiver:
    """A fake receiver: fails the first ``failures`` requests, then answers 200."""

    failures: int = 0
    requests: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> AttemptResult:
        with self.lock:
            self.requests.append((body, dict(headers)))
            failing = len(self.requests) <= self.failures
        if failing:
            return AttemptResult(status_code=500, error="HTTP 500", duration_ms=3)
        return AttemptResult(status_code=200, error=None, duration_ms=2)


def job(tenant: str = "acme", status: str = "succeeded") -> dict[str, object]:
    return {"id": "job-1", "tenant": tenant, "task": "demo.echo", "status": status, "result": {"ok": True}}


def setup(failures: int, attempts: int = 8) -> tuple[MemoryWebhookStore, Receiver, Clock, Dispatcher]:
    clock = Clock()
    store = MemoryWebhookStore(clock=clock)
    store.add_endpoint(tenant="acme", url=URL, description="", secret=SECRET)
    receiver = Receiver(failures=failures)
    options = DispatchOptions(max_attempts=attempts, backoff_base=1.0, backoff_max=60.0, timeout=1.0)
    dispatcher = Dispatcher(store, options, sender=receiver, rng=random.Random(7), clock=clock)
    return store, receiver, clock, dispatcher


def drain(store: MemoryWebhookStore, clock: Clock, dispatcher: Dispatcher, *, rounds: int) -> None:
    """Deliver what is due, then move the clock past the next attempt; ``rounds`` times."""
    for _ in range(rounds):
        dispatcher.deliver_due()
        clock.now += 120.0


def test_a_receiver_failing_three_times_then_succeeding_gets_one_delivery_under_one_id() -> None:
    store, receiver, clock, dispatcher = setup(failures=3)
    (delivery_id,) = store.job_finished(job())
    drain(store, clock, dispatcher, rounds=6)
    assert len(receiver.requests) == 4
    assert {headers["Tornado-Delivery"] for _, headers in receiver.requests} == {delivery_id}
    (delivery,) = store.list_deliveries(tenant="acme", status=None, limit=10)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        DeliveryStatus.DELIVERED,
        4,
        200,
    )
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None


def test_each_attempt_is_signed_with_the_endpoints_secret_at_its_own_time() -> None:
    store, receiver, clock, dispatcher = setup(failures=1)
    store.job_finished(job())
    drain(store, clock, dispatcher, rounds=2)
    stamps = []
    for body, headers in receiver.requests:
        stamps.append(
            verify_signature(SECRET, headers["Tornado-Signature"], body, now=clock.now, tolerance=1000)
        )
        assert headers["Tornado-Event"] == "job.succeeded" and headers["Content-Type"] == "application/json"
    assert stamps[0] < stamps[1]
    document = json.loads(receiver.requests[0][0])
    assert document["event"] == "job.succeeded" and document["job"]["result"] == {"ok": True}
    assert document["delivery_id"] == receiver.requests[0][1]["Tornado-Delivery"]


def test_failed_attempts_wait_longer_each_time() -> None:
    store, _receiver, clock, dispatcher = setup(failures=10)
    store.job_finished(job())
    waits = []
    for _ in range(4):
        assert dispatcher.deliver_due() == 1
        (delivery,) = store.list_deliveries(tenant="acme", status=None, limit=1)
        assert delivery.next_attempt_at is not None
        waits.append(delivery.next_attempt_at.timestamp() - clock.now)
        assert dispatcher.deliver_due() == 0  # not due yet
        clock.now += waits[-1] + 0.001  # datetimes keep microseconds only
    assert waits == sorted(waits) and waits[0] >= 0.5 and waits[-1] <= 8.0


def test_after_the_last_attempt_a_delivery_is_dead_until_redelivered() -> None:
    store, receiver, clock, dispatcher = setup(failures=3, attempts=3)
    (delivery_id,) = store.job_finished(job(status="dead"))
    drain(store, clock, dispatcher, rounds=5)
    (dead,) = store.list_deliveries(tenant="acme", status=DeliveryStatus.DEAD, limit=10)
    assert (dead.delivery_id, dead.attempts, dead.last_error, dead.event) == (
        delivery_id, 3, "HTTP 500", "job.dead",
    )  # fmt: skip
    assert len(receiver.requests) == 3
    assert store.redeliver(delivery_id, tenant="other") is RedeliverOutcome.UNKNOWN
    assert store.redeliver(delivery_id, tenant="acme") is RedeliverOutcome.SCHEDULED
    assert store.redeliver(delivery_id, tenant="acme") is RedeliverOutcome.PENDING
    drain(store, clock, dispatcher, rounds=1)
    (delivered,) = store.list_deliveries(tenant="acme", status=DeliveryStatus.DELIVERED, limit=10)
    assert (delivered.delivery_id, delivered.attempts) == (delivery_id, 1)
    assert receiver.requests[-1][1]["Tornado-Delivery"] == delivery_id


def test_only_finished_statuses_of_tenants_with_endpoints_make_deliveries() -> None:
    store, _receiver, _clock, _dispatcher = setup(failures=0)
    assert store.job_finished(job(status="running")) == []
    assert store.job_finished(job(tenant="nobody")) == []
    assert len(store.job_finished(job(status="cancelled"))) == 1


def test_a_removed_endpoint_ends_its_pending_deliveries_dead_and_refuses_redelivery() -> None:
    store, _receiver, _clock, _dispatcher = setup(failures=0)
    (endpoint,) = store.list_endpoints(tenant="acme")
    (delivery_id,) = store.job_finished(job())
    assert store.remove_endpoint(endpoint.endpoint_id, tenant="other") is False
    assert store.remove_endpoint(endpoint.endpoint_id, tenant="acme") is True
    (dead,) = store.list_deliveries(tenant="acme", status=DeliveryStatus.DEAD, limit=10)
    assert dead.last_error == "endpoint removed"
    assert store.redeliver(delivery_id, tenant="acme") is RedeliverOutcome.ENDPOINT_REMOVED
    assert store.job_finished(job()) == []


def test_an_attempt_whose_claim_was_lost_records_nothing() -> None:
    store, _receiver, clock, _dispatcher = setup(failures=0)
    store.job_finished(job())
    (stale,) = store.claim_due(limit=5, lease_seconds=10)
    clock.now += 11  # its lease ran out: another dispatcher takes it
    (fresh,) = store.claim_due(limit=5, lease_seconds=10)
    store.record_attempt(stale, AttemptResult(status_code=200, error=None, duration_ms=1), retry_in=None)
    assert store.list_deliveries(tenant="acme", status=DeliveryStatus.DELIVERED, limit=5) == []
    store.record_attempt(fresh, AttemptResult(status_code=204, error=None, duration_ms=1), retry_in=None)
    assert len(store.list_deliveries(tenant="acme", status=DeliveryStatus.DELIVERED, limit=5)) == 1


def test_the_running_dispatcher_delivers_on_its_threads_and_stops_when_asked() -> None:
    store = MemoryWebhookStore()
    store.add_endpoint(tenant="acme", url=URL, description="", secret=SECRET)
    receiver = Receiver(failures=0)
    options = DispatchOptions(concurrency=3, poll_interval=0.05, timeout=1.0)
    dispatcher = Dispatcher(store, options, sender=receiver)
    thread = threading.Thread(target=dispatcher.run)
    thread.start()
    try:
        ids = {store.job_finished({**job(), "id": f"job-{n}"})[0] for n in range(10)}
        deadline = time.monotonic() + 10
        while len(store.list_deliveries(tenant="acme", status=DeliveryStatus.DELIVERED, limit=50)) < 10:
            assert time.monotonic() < deadline, "the dispatcher did not deliver everything"
            time.sleep(0.01)
    finally:
        dispatcher.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert {headers["Tornado-Delivery"] for _, headers in receiver.requests} == ids


@pytest.mark.parametrize(
    "options",
    [{"concurrency": 0}, {"max_attempts": 0}, {"timeout": 0}, {"backoff_base": -1}],
    ids=["concurrency", "attempts", "timeout", "backoff"],
)
def test_bad_dispatcher_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DispatchOptions(**options)  # type: ignore[arg-type]
