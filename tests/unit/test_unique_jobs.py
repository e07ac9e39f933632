"""Unique jobs through the API on the in-memory stores: one job in flight per tenant, task and key."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tests.unit.test_web_api import ApiTestCase
from tornado_core import UniqueJobs, task
from tornado_core.ports.jobs import ClaimOutcome, NewJob


def report(company: str = "acme-sa", period: str = "2026-10") -> dict[str, object]:
    return {"task": "demo.report", "payload": {"company": company, "period": period}}


class TestUniqueJobs(ApiTestCase):
    def submit(self, body: dict[str, object], token: str = "a") -> tuple[int, dict[str, object]]:
        status, answer, _ = self.call("POST", "/v1/jobs", body, token=token)
        self.settle()
        return status, answer

    def test_a_second_submission_gets_the_job_in_flight_back(self) -> None:
        status, first = self.submit(report())
        assert status == 202 and first["status"] == "queued" and "existing" not in first
        status, again = self.submit(report())
        assert status == 200
        expected = {"id": first["id"], "task": "demo.report", "version": first["version"], "status": "queued"}
        assert again == {**expected, "existing": True}
        assert self.queued() == 1

    def test_other_values_and_other_tenants_get_their_own_job(self) -> None:
        _, first = self.submit(report())
        assert self.submit(report(period="2026-11"))[1]["id"] != first["id"]
        assert self.submit(report(company="globex-sa"))[1]["id"] != first["id"]
        status, theirs = self.submit(report(), token="b")
        assert status == 202 and theirs["id"] != first["id"]
        assert self.queued() == 4

    def test_once_the_job_finished_the_next_submission_queues_a_new_one(self) -> None:
        _, first = self.submit(report())
        job_id = str(first["id"])
        job = NewJob(job_id=job_id, tenant="acme", task="demo.report", version="0", submitted_at=1.0)
        assert self.store.claim(job, attempt=1, lease_seconds=60, worker="w") is ClaimOutcome.CLAIMED
        assert self.submit(report())[1]["status"] == "running"  # still in flight: the same job
        self.store.record_success(job_id, result={}, result_ref=None)
        status, second = self.submit(report())
        assert status == 202 and second["id"] != job_id

    def test_a_batch_holding_the_same_key_twice_queues_it_once(self) -> None:
        status, answer, _ = self.call("POST", "/v1/jobs:batch", {"jobs": [report(), report(), report("x")]})
        assert status == 200 and answer["accepted"] == 3
        first, second, other = answer["results"]
        assert second["id"] == first["id"] and second["existing"] is True and "existing" not in first
        assert other["id"] != first["id"]
        self.settle()
        assert self.queued() == 2

    def test_a_job_the_queue_refused_gives_its_key_back(self) -> None:
        self.queue.down = True
        assert self.submit(report())[0] == 503
        self.queue.down = False
        status, answer = self.submit(report())
        assert status == 202 and "existing" not in answer
        assert self.queued() == 1


class Period(BaseModel):
    cnpj: str
    period: str


def test_a_uniqueness_rule_names_fields_of_the_payload() -> None:
    with pytest.raises(ValueError, match=r"unique fields \['month'\]"):
        task(name="acme.sped", payload=Period, unique=UniqueJobs(fields=("cnpj", "month")))
    with pytest.raises(ValueError, match="at least one payload field"):
        UniqueJobs(fields=())
    with pytest.raises(ValueError, match="not negative"):
        UniqueJobs(fields=("cnpj",), window=-1)


def test_the_key_is_the_same_whatever_the_order_of_nested_values() -> None:
    rule = UniqueJobs(fields=("cnpj", "period"))
    assert rule.key({"period": {"y": 2026, "m": 10}, "cnpj": "1"}) == rule.key(
        {"cnpj": "1", "period": {"m": 10, "y": 2026}}
    )
    assert rule.key({"cnpj": "1", "period": "2026-10"}) != rule.key({"cnpj": "1", "period": "2026-11"})
