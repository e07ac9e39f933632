"""Hostile and malformed requests get a clear 4xx with the one error shape, never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import select
import socket
from typing import Any

import pytest
from tornado.testing import gen_test

from tests.unit.test_web_api import MAX_BODY, ApiTestCase
from tornado_core.client import TornadoClient
from tornado_core.errors import ApiError
from tornado_core.local_machine import free_port
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


def mixed(depth: int) -> Any:
    """``depth`` levels of objects and lists taking turns, each beside shallow siblings."""
    value: Any = "leaf"
    for level in range(depth):
        value = {"next": value, "wide": [1, 2, {"x": 3}]} if level % 2 else [value, {"y": [4]}]
    return value


def outcome(body: bytes) -> str:
    try:
        parse_json_object(body)
    except ApiError as exc:
        return f"{exc.status} {exc.fields}"
    return "accepted"


def test_the_quick_depth_check_agrees_with_the_full_walk_around_the_limit() -> None:
    answers = set()
    for depth in range(MAX_JSON_DEPTH - 6, MAX_JSON_DEPTH + 1):
        jobs = [{"payload": mixed(depth)}] * 3
        quick = json.dumps({"jobs": jobs}).encode()
        # An escaped surrogate pair (a valid emoji) makes the parser walk every string and level.
        walked = json.dumps({"jobs": jobs, "note": "\U0001f600"}).encode()
        assert b"\\ud83d" in walked
        assert outcome(quick) == outcome(walked), depth
        answers.add(outcome(quick))
    assert "accepted" in answers and len(answers) == 2  # the range spans the limit


def send_chunked_reading_early(port: int, token: str, total: int) -> bytes:
    """POST a chunked body of ``total`` bytes the way curl does: stop and read once the API answers."""
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * 16384
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        sent = 0
        with contextlib.suppress(OSError):  # the API may hang up once it has answered
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += len(piece)
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                answer += data
    return answer


class TestOversizedStreams(ApiTestCase):
    @gen_test(timeout=60)
    async def test_an_endless_chunked_body_gets_the_json_413_not_a_bare_400(self) -> None:
        port, total = self.get_http_port(), 50 * MAX_BODY
        send = functools.partial(send_chunked_reading_early, port, self.token_a, total)
        answer = await asyncio.get_running_loop().run_in_executor(None, send)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 "), head
        assert json.loads(body)["error"]["code"] == "body_too_large"
        assert self.queued() == 0


def test_the_client_refuses_a_body_over_the_limit_before_sending_it() -> None:
    port = free_port()  # nothing listens there: a request that went out would be "unreachable"
    client = TornadoClient(f"http://127.0.0.1:{port}", "tnd_token", max_body_bytes=1_000)
    with pytest.raises(ApiError) as caught:
        client.submit("demo.echo", {"message": "x" * 2_000})
    assert (caught.value.status, caught.value.code) == (413, "body_too_large")
    with pytest.raises(ApiError) as small:
        client.submit("demo.echo", {"message": "x"})
    assert small.value.status == 0  # a small body is sent (and finds nobody)


class TestUndeclaredMethods(ApiTestCase):
    def test_an_undeclared_method_is_405_before_the_body_or_the_token_is_looked_at(self) -> None:
        for method, path in (("PUT", "/v1/jobs"), ("PATCH", "/v1/jobs:batch"), ("PUT", "/v1/punches")):
            status, body, response = self.call(method, path, raw=b"x", content_type="text/plain", token=None)
            assert status == 405, (method, path, body)
            self.assert_error(status, body, "method_not_allowed")
            assert "POST" in response.headers["Allow"]


TRICKY_TEXT = ["a", '"', "\\", ":", " :", '":', '\\"', "é", "\U0001f600", "\n", "{", "]", ",", "\\u"]
TRICKY_NUMBERS = [0, -1, 2**63 - 1, -(2**63), 2**64, -(2**63) - 1, 10**19, 1.5, -0.0, 1e300, 1e-300]


def tricky(random: Any, depth: int) -> Any:
    """A random value whose strings hold quotes, backslashes and colons, and whose numbers sit
    around the 64-bit limits."""
    kind = random.randrange(6 if depth else 3)
    if kind == 0:
        return "".join(random.choice(TRICKY_TEXT) for _ in range(random.randrange(4)))
    if kind == 1:
        return random.choice(TRICKY_NUMBERS)
    if kind == 2:
        return random.choice([True, False, None])
    if kind == 3:
        return [tricky(random, depth - 1) for _ in range(random.randrange(3))]
    return {tricky(random, 0) if random.random() < 0.5 else "k": tricky(random, depth - 1) for _ in range(3)}


def test_the_quick_decoder_reads_every_body_as_the_strict_one_or_leaves_it_to_it() -> None:
    """orjson reads most bodies; where it answers, the answer is the standard library's, types
    included. A repeated key, a lone surrogate or a long integer is left to the strict decoder."""
    import random

    from tornado_core.web.requests import _UNSURE, _quick_decode, _strict_decode  # the two paths

    rng = random.Random(20261130)
    bodies = []
    for n in range(600):
        value = {"jobs": [tricky(rng, 3) for _ in range(3)]}
        bodies.append(json.dumps(value, ensure_ascii=n % 2 == 0, indent=None if n % 3 else 1).encode())
    bodies += [b'{"a":1,"a":1}', b'{"a":{"k":[{"b":2, "b" :2}]}}', b'{"a\\"":1,"a\\"":1}', b'{"a":"\\udc00"}']
    quick = 0
    for body in bodies:
        fast = _quick_decode(body)
        try:
            strict = repr(_strict_decode(body))
        except ApiError as exc:
            strict = f"refused {exc.status}"
        if fast is not _UNSURE:
            quick += 1
            assert repr(fast) == strict, body
    assert quick >= len(bodies) // 4  # taken by every body without a long number or a repeated key
    for body in bodies[-4:]:
        with pytest.raises(ApiError) as caught:
            parse_json_object(body)
        assert caught.value.status == 400, body
