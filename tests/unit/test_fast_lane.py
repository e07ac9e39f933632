"""The fast lane of ``POST /v1/jobs`` answers as its handler does and leaves it the rest."""

from __future__ import annotations

import json
from typing import Any

from tornado.httpclient import HTTPResponse

from tests.unit.test_web_api import ApiTestCase

Answer = tuple[int, Any, HTTPResponse]

ECHO = {"task": "demo.echo", "payload": {"message": "hi"}}
#: Bodies from the ordinary to the wrong, as raw bytes (some are not JSON at all).
BODIES = {
    "valid": json.dumps(ECHO).encode(),
    "not JSON": b'{"task": ',
    "a repeated key": b'{"task": "demo.echo", "task": "demo.fail", "payload": {"message": "hi"}}',
    "not an object": b"[1, 2]",
    "NaN": b'{"task": "demo.echo", "payload": {"message": NaN}}',
    "an unknown task": json.dumps({"task": "no.such", "payload": {}}).encode(),
    "an invalid payload": json.dumps({"task": "demo.echo", "payload": {"message": 3}}).encode(),
    "an internal task": json.dumps({"task": "shop.restock", "payload": {"sku": "A1"}}).encode(),
    "an unknown field": json.dumps({**ECHO, "colour": "red"}).encode(),
    "a negative delay": json.dumps({**ECHO, "delay": -1}).encode(),
}


#: Batch bodies from the ordinary to the wrong.
BATCHES = {
    "valid": json.dumps({"jobs": [ECHO] * 3}).encode(),
    "one invalid item": json.dumps(
        {"jobs": [ECHO, {"task": "demo.echo", "payload": {"message": 3}}]}
    ).encode(),
    "an unknown task among others": json.dumps({"jobs": [ECHO, {"task": "no.such", "payload": {}}]}).encode(),
    "keyed items": json.dumps({"jobs": [{**ECHO, "idempotency_key": f"k-{n}"} for n in range(2)]}).encode(),
    "no jobs": json.dumps({"jobs": []}).encode(),
    "not a list": json.dumps({"jobs": ECHO}).encode(),
    "an unknown field": json.dumps({"jobs": [ECHO], "colour": "red"}).encode(),
    "too many": json.dumps({"jobs": [ECHO] * 501}).encode(),
    "not JSON": b'{"jobs": [',
}


def without_ids(answer: Any) -> Any:
    """A batch's answer with each accepted job's id left out (the lane and the handler make their own)."""
    results = [{k: v for k, v in item.items() if k != "id"} for item in answer.get("results", [])]
    return {**answer, "results": results} if "results" in answer else answer


class TestFastLane(ApiTestCase):
    def post(self, raw: bytes, *, path: str = "/v1/jobs", **headers: str) -> Answer:
        sent = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token_a}", **headers}
        response = self.fetch(path, method="POST", body=raw, headers=sent, raise_error=False)
        return response.code, json.loads(response.body) if response.body else None, response

    def lane_answers(self, raw: bytes, *, path: str = "/v1/jobs", **headers: str) -> Answer:
        """The answer, checking that the lane gave it."""
        before = self.app.lane.answered
        answer = self.post(raw, path=path, **headers)
        assert self.app.lane.answered == before + 1, f"the routes answered {raw!r}"
        return answer

    def routes_answer(self, raw: bytes, *, path: str = "/v1/jobs", **headers: str) -> Answer:
        """The answer, checking that the ordinary handler gave it."""
        before = self.app.lane.answered
        answer = self.post(raw, path=path, **headers)
        assert self.app.lane.answered == before, f"the lane answered {raw!r}"
        return answer

    def test_every_body_gets_the_same_answer_from_the_lane_and_from_the_handler(self) -> None:
        self.routes_answer(BODIES["valid"], Authorization="Bearer not-cached-yet")  # 401, tokens now loaded
        for name, raw in BODIES.items():
            lane_status, lane_body, lane_response = self.lane_answers(raw)
            # A query string is not the lane's: the same request, answered by JobsHandler.
            status, body, response = self.routes_answer(raw, path="/v1/jobs?via=handler")
            assert lane_status == status, name
            if "error" in body:
                assert lane_body == body, name
            else:
                assert lane_status == 202 and set(lane_body) == set(body), name
                assert lane_body["id"] != body["id"] and lane_body["status"] == "queued", name
            for header in ("Content-Type", "Cache-Control"):
                assert lane_response.headers[header] == response.headers[header], (name, header)
            assert lane_response.headers["Date"], name
        envelopes = self.bodies()
        assert len(envelopes) == 2 and {e.tenant for e in envelopes} == {"acme"}

    def test_an_idempotency_key_gets_the_same_job_from_the_lane(self) -> None:
        self.routes_answer(BODIES["valid"])  # the first request loads the tokens
        keyed = json.dumps({**ECHO, "idempotency_key": "order-1"}).encode()
        first_status, first, _ = self.lane_answers(keyed)
        again_status, again, _ = self.lane_answers(keyed)
        assert (first_status, again_status) == (202, 202)
        assert first["id"] == again["id"]  # same key, same job id

    def test_the_handler_answers_what_the_lane_leaves(self) -> None:
        self.routes_answer(BODIES["valid"])
        raw = BODIES["valid"]
        status, body, _ = self.routes_answer(raw, Authorization="Bearer nobody")
        assert status == 401 and body["error"]["code"] == "unauthorized"
        status, body, _ = self.routes_answer(raw, **{"Content-Type": "text/plain"})
        assert status == 415 and body["error"]["code"] == "unsupported_media_type"
        too_large = json.dumps({"task": "demo.echo", "payload": {"message": "x" * 70_000}}).encode()
        status, body, _ = self.routes_answer(too_large)
        assert status == 413 and body["error"]["code"] == "body_too_large"

    def test_a_tenant_over_its_quota_goes_to_the_handler_and_gets_429(self) -> None:
        self.services.tenants.set_quota("acme", 2)
        self.routes_answer(BODIES["valid"])  # loads the tokens, with the quota
        answered = self.app.lane.answered
        statuses = [self.post(BODIES["valid"])[0] for _ in range(12)]
        assert 429 in statuses, statuses
        assert self.app.lane.answered - answered == statuses.count(202)  # every 429 came from the handler
        assert self.queued() == statuses.count(202) + 1

    def test_a_stalled_queue_gets_a_503_from_the_lane_and_nothing_stays_in_flight(self) -> None:
        self.routes_answer(BODIES["valid"])
        self.app.api.request_deadline = 0.2
        self.queue.delay = 0.6
        status, body, response = self.lane_answers(BODIES["valid"])
        assert status == 503 and body["error"]["code"] == "backend_timeout"
        assert int(response.headers["Retry-After"]) >= 1
        assert self.app.api.in_flight == 0

    def test_every_batch_gets_the_same_answer_from_the_lane_and_from_the_handler(self) -> None:
        self.routes_answer(BATCHES["valid"], path="/v1/jobs:batch", Authorization="Bearer not-cached-yet")
        accepted = 0
        for name, raw in BATCHES.items():
            lane_status, lane_body, lane_response = self.lane_answers(raw, path="/v1/jobs:batch")
            status, body, response = self.routes_answer(raw, path="/v1/jobs:batch?via=handler")
            assert (lane_status, without_ids(lane_body)) == (status, without_ids(body)), name
            assert lane_response.headers["Content-Type"] == response.headers["Content-Type"], name
            accepted += lane_body.get("accepted", 0)
        assert accepted == 7  # the valid batch's 3, one of each mixed batch, and the 2 keyed items
        assert self.queued() == 2 * accepted  # the lane's and the handler's
