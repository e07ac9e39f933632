"""Per-key limits: declaring them, their keys, token buckets, and admission of received jobs."""

from __future__ import annotations

import time

import pytest
from pydantic import BaseModel

from tasks.demo.handlers import capped, rated
from tornado_core import ConcurrencyLimit, RateLimit, task
from tornado_core.adapters.memory.stores import MemoryRateLimiter
from tornado_core.key_limits import limit_key
from tornado_core.message import Envelope
from tornado_core.naming import queue_spec
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.services import Services
from tornado_core.toolchain.testing import memory_services
from tornado_core.worker.admission import Admission
from tornado_core.worker.runner import Delivery


class Invoice(BaseModel):
    cnpj: str
    uf: str


def test_a_limit_on_a_field_the_payload_lacks_is_refused_when_declared() -> None:
    with pytest.raises(ValueError, match=r"limit fields \['branch'\]"):
        task(
            name="acme.emit", payload=Invoice, version="1.0.0", limits=[RateLimit(5, per=("cnpj", "branch"))]
        )


@pytest.mark.parametrize(
    "make",
    [lambda: ConcurrencyLimit(0), lambda: ConcurrencyLimit(2, per=()),
     lambda: ConcurrencyLimit(2, retry_after=0), lambda: RateLimit(0), lambda: RateLimit(5, period=0),
     lambda: RateLimit(5, burst=0.5)],
)  # fmt: skip
def test_impossible_limits_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_the_key_is_the_tenant_and_the_named_fields() -> None:
    per_cnpj = RateLimit(5, per=("cnpj", "uf"))
    assert limit_key(per_cnpj, "acme", {"cnpj": "1", "uf": "SP"}) == limit_key(
        per_cnpj, "globex", {"cnpj": "1", "uf": "SP"}
    )
    assert limit_key(per_cnpj, "acme", {"cnpj": "1", "uf": "SP"}) != limit_key(
        per_cnpj, "acme", {"cnpj": "1", "uf": "RJ"}
    )
    per_tenant = ConcurrencyLimit(2)
    assert limit_key(per_tenant, "acme", None) != limit_key(per_tenant, "globex", None)


def test_a_token_bucket_allows_its_burst_then_its_rate() -> None:
    now = [100.0]
    bucket = MemoryRateLimiter(clock=lambda: now[0])
    taken = [bucket.try_take("k", per_second=5, capacity=5) for _ in range(6)]
    assert taken[:5] == [0.0] * 5 and taken[5] == pytest.approx(0.2)
    now[0] += 0.2
    assert bucket.try_take("k", per_second=5, capacity=5) == 0.0
    assert bucket.try_take("other", per_second=5, capacity=5) == 0.0  # each key its own bucket


@pytest.fixture
def services() -> Services:
    return memory_services([capped, rated])


def deliveries(
    services: Services, queue: str, tenants: list[str], payload: dict[str, object]
) -> list[Delivery]:
    bodies = [
        Envelope(job_id=f"job-{n}", task="demo.capped", version=capped.version, tenant=tenant,
                 payload=payload, submitted_at=time.time()).to_json()
        for n, tenant in enumerate(tenants)
    ]  # fmt: skip
    services.queue.send_batch(queue, [OutgoingMessage(body) for body in bodies])
    received = services.queue.receive(queue, max_messages=10, wait_seconds=0, visibility_timeout=30)
    return [Delivery.received(queue, message, started=time.monotonic()) for message in received]


def test_a_tenant_at_its_cap_goes_to_the_back_of_the_queue_and_others_are_admitted(
    services: Services,
) -> None:
    queue = queue_spec(services.settings.queue_prefix, capped)
    services.queue.ensure_queue(queue)
    admission = Admission(services, capped)
    received = deliveries(services, queue.name, ["big", "big", "big", "small"], {"seconds": 0})
    admitted = admission.admit(queue.name, received)
    assert sorted(d.envelope.tenant for d, _ in admitted if d.envelope) == ["big", "big", "small"]
    depth = services.queue.depth(queue.name)
    assert (depth.delayed, depth.in_flight) == (1, 3)  # the third of big waits; its received copy is gone
    admitted[0][1].close()  # a big job's outcome is durable: its slot is free again
    again = deliveries(services, queue.name, ["big"], {"seconds": 0})
    assert len(admission.admit(queue.name, again)) == 1


def test_without_limits_admission_is_inactive(services: Services) -> None:
    plain = task(name="acme.plain", payload=Invoice, version="1.0.0")(lambda ctx, payload: None)
    assert not Admission(services, plain).active and Admission(services, rated).active
