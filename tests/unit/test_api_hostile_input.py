"""Hostile and malformed requests get a clear 4xx with the one error shape, never a 500."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_web_api import ApiTestCase
from tornado_core.errors import ApiError
from tornado_core.web.requests import MAX_JSON_DEPTH, parse_json_object

ENDPOINTS = ("/v1/jobs", "/v1/jobs:batch", "/v1/punches")


def nested(depth: int) -> str:
    """A JSON value ``depth`` levels deep: ``[[[...]]]``."""
    return "[" * depth + "]" * depth


class TestHostileBodies(ApiTestCase):
    def post_raw(self, path: str, raw: str) -> tuple[int, dict[str, object]]:
        status, body, _ = self.call("POST", path, raw=raw.encode("utf-8", "surrogatepass"))
        return status, body

    def test_deep_nesting_is_refused_on_every_endpoint_and_queues_nothing(self) -> None:
        for path in ENDPOINTS:
            for raw in (nested(20_000), '{"task": "demo.echo", "payload": {"m": ' + nested(5000) + "}}"):
                status, body = self.post_raw(path, raw)
                assert status == 422, (path, body)
                self.assert_error(status, body, "request_invalid", "(body)")
        assert self.queued() == 0

    def test_a_lone_surrogate_is_refused_as_invalid_json(self) -> None:
        payloads = [
            '{"task": "demo.echo", "payload": {"message": "m\\ud800"}}',
            '{"task": "demo.echo", "payload": {"message": "m"}, "idempotency_key": "k\\udfff"}',
            '{"jobs": [{"task": "demo.echo", "payload": {"message": "\\ud800"}}]}',
        ]
        for path, raw in zip(("/v1/jobs", "/v1/jobs", "/v1/jobs:batch"), payloads, strict=True):
            status, body = self.post_raw(path, raw)
            assert status == 400, body
            self.assert_error(status, body, "json_invalid")
            assert "surrogate" in body["error"]["message"]  # type: ignore[index]
        assert self.queued() == 0

    def test_a_repeated_key_is_refused(self) -> None:
        raw = '{"task": "demo.echo", "payload": {"message": "a", "message": "b"}}'
        status, body = self.post_raw("/v1/jobs", raw)
        assert status == 400
        self.assert_error(status, body, "json_invalid")
        assert "'message' appears twice" in body["error"]["message"]  # type: ignore[index]

    def test_a_nul_or_a_null_idempotency_key_is_refused_naming_the_field(self) -> None:
        for key in ("a\0b", None):
            job = {"task": "demo.echo", "payload": {"message": "x"}, "idempotency_key": key}
            status, body, _ = self.call("POST", "/v1/jobs", job)
            self.assert_error(status, body, "request_invalid", "idempotency_key")
            assert status == 422
            jobs = [job, {**job, "idempotency_key": "ok"}]
            _, batch, _ = self.call("POST", "/v1/jobs:batch", {"jobs": jobs})
            assert batch["results"][0]["error"]["code"] == "request_invalid"
            assert batch["results"][1]["status"] == "queued"
        assert self.queued() == 2

    def test_a_job_id_with_non_ascii_characters_is_an_ordinary_404(self) -> None:
        unknown_status, unknown, _ = self.call("GET", "/v1/jobs/" + "0" * 36)
        odd_status, odd, _ = self.call("GET", "/v1/jobs/" + "%C3%A9" * 36)
        assert (unknown_status, odd_status) == (404, 404)
        assert unknown["error"]["code"] == odd["error"]["code"] == "job_not_found"

    def test_an_empty_status_filter_is_refused(self) -> None:
        status, body, _ = self.call("GET", "/v1/jobs?status=")
        assert status == 400
        self.assert_error(status, body, "parameter_invalid", "status")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH])
def test_nesting_up_to_the_limit_is_accepted(depth: int) -> None:
    body = json.dumps({"payload": json.loads(nested(depth - 1))}).encode()
    assert parse_json_object(body)["payload"] is not None


def test_nesting_past_the_limit_is_refused() -> None:
    body = json.dumps({"payload": json.loads(nested(MAX_JSON_DEPTH))}).encode()
    with pytest.raises(ApiError) as caught:
        parse_json_object(body)
    assert caught.value.status == 422 and caught.value.fields[0]["field"] == "(body)"
