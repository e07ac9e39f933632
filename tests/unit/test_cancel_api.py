"""POST /v1/jobs/{id}:cancel on the in-memory stores: each outcome, its status code and what GET shows."""

from __future__ import annotations

from tests.unit.test_web_api import ApiTestCase
from tornado_core.ports.jobs import ClaimOutcome, NewJob


class TestCancel(ApiTestCase):
    def submit(self, message: str = "hi") -> str:
        status, body, _ = self.call(
            "POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": message}}
        )
        assert status == 202, body
        self.settle()
        return str(body["id"])

    def claim(self, job_id: str) -> None:
        job = NewJob(job_id=job_id, tenant="acme", task="demo.echo", version="0", submitted_at=1.0)
        assert self.store.claim(job, attempt=1, lease_seconds=60, worker="w1") is ClaimOutcome.CLAIMED

    def test_a_queued_job_is_cancelled_at_once_and_never_claimed(self) -> None:
        job_id = self.submit()
        status, body, _ = self.call("POST", f"/v1/jobs/{job_id}:cancel")
        assert (status, body) == (200, {"id": job_id, "status": "cancelled", "cancel_requested": False})
        assert self.call("GET", f"/v1/jobs/{job_id}")[1]["status"] == "cancelled"
        job = NewJob(job_id=job_id, tenant="acme", task="demo.echo", version="0", submitted_at=1.0)
        assert self.store.claim(job, attempt=1, lease_seconds=60, worker="w1") is ClaimOutcome.ALREADY_DONE
        assert self.store.get(job_id).attempts == 0  # type: ignore[union-attr]

    def test_a_running_job_gets_the_request_through_its_lease(self) -> None:
        job_id = self.submit()
        self.claim(job_id)
        assert self.store.extend_lease(job_id, lease_seconds=60) is False
        status, body, _ = self.call("POST", f"/v1/jobs/{job_id}:cancel")
        assert (status, body) == (202, {"id": job_id, "status": "running", "cancel_requested": True})
        assert self.store.extend_lease(job_id, lease_seconds=60) is True
        status, body, _ = self.call("POST", f"/v1/jobs/{job_id}:cancel")  # asking twice changes nothing
        assert (status, body["status"]) == (202, "running")

    def test_a_finished_job_is_409_and_stays_as_it_was(self) -> None:
        job_id = self.submit()
        self.claim(job_id)
        self.store.record_success(job_id, result={"message": "hi"}, result_ref=None)
        status, body, _ = self.call("POST", f"/v1/jobs/{job_id}:cancel")
        assert status == 409
        self.assert_error(status, body, "job_finished")
        assert "succeeded" in body["error"]["message"]
        assert self.call("GET", f"/v1/jobs/{job_id}")[1]["status"] == "succeeded"

    def test_cancelling_twice_is_409_the_second_time(self) -> None:
        job_id = self.submit()
        assert self.call("POST", f"/v1/jobs/{job_id}:cancel")[0] == 200
        status, body, _ = self.call("POST", f"/v1/jobs/{job_id}:cancel")
        assert status == 409 and "cancelled" in body["error"]["message"]

    def test_another_tenants_job_or_an_unknown_id_is_404_and_nothing_changes(self) -> None:
        job_id = self.submit()
        status, body, _ = self.call("POST", f"/v1/jobs/{job_id}:cancel", token="b")
        assert status == 404
        self.assert_error(status, body, "job_not_found")
        assert self.call("POST", "/v1/jobs/not-an-id:cancel")[0] == 404
        assert self.call("GET", f"/v1/jobs/{job_id}")[1]["status"] == "queued"

    def test_cancel_needs_a_token_and_post(self) -> None:
        job_id = self.submit()
        assert self.call("POST", f"/v1/jobs/{job_id}:cancel", token=None)[0] == 401
        status, _, response = self.call("GET", f"/v1/jobs/{job_id}:cancel")
        assert status == 405 and response.headers["Allow"] == "POST"
        assert self.call("GET", f"/v1/jobs/{job_id}")[1]["status"] == "queued"

    def test_the_openapi_document_describes_cancel(self) -> None:
        document = self.call("GET", "/openapi.json")[1]
        operation = document["paths"]["/v1/jobs/{id}:cancel"]["post"]
        assert set(operation["responses"]) >= {"200", "202", "404", "409"}
        assert "cancelled" in document["components"]["schemas"]["JobStatus"]["enum"]
