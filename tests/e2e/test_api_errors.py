"""The API refuses bad input clearly and accepts nothing it cannot store, on both backends.

No worker runs in this module, so every queue depth it reads is exact.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tornado_core.adapters.runtimes.process.cluster import LocalCluster, free_port
from tornado_core.client import ApiError, TornadoClient
from tornado_core.services import Services


def post(
    url: str, token: str, body: bytes, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url + "/v1/jobs", data=body, method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def echo_depth(services: Services, queue_of: Callable[[str], str], api_url: str) -> Callable[[], int]:
    return lambda: services.queue.depth(queue_of("demo.echo")).total


BAD_REQUESTS = [
    pytest.param(
        b'{"task": "demo.echo", "payload": {"message": "x"', "application/json", 400, None, id="malformed"
    ),
    pytest.param(
        b'{"task": "demo.echo", "payload": {"message": "x"}}', "text/plain", 415, None, id="content-type"
    ),
    pytest.param(b'{"task": "nfe.nope", "payload": {}}', "application/json", 422, "task", id="unknown-task"),
    pytest.param(b'{"payload": {"message": "x"}}', "application/json", 422, "task", id="missing-task"),
    pytest.param(b'{"task": "demo.echo"}', "application/json", 422, "payload", id="missing-payload"),
    pytest.param(
        b'{"task": "demo.echo", "payload": {}}', "application/json", 422, "payload.message", id="schema"
    ),
    pytest.param(
        b'{"task": "demo.echo", "payload": {"message": 5}}',
        "application/json",
        422,
        "payload.message",
        id="type",
    ),
    pytest.param(b'["demo.echo"]', "application/json", 422, None, id="not-an-object"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "field"), BAD_REQUESTS)
def test_bad_input_gets_a_clear_4xx_and_queues_nothing(
    api_url: str,
    tenant_token: str,
    echo_depth: Callable[[], int],
    body: bytes,
    content_type: str,
    status: int,
    field: str | None,
) -> None:
    before = echo_depth()
    code, answer = post(api_url, tenant_token, body, content_type)
    assert code == status
    assert answer["error"]["message"]
    if field is not None:
        assert field in [f["field"] for f in answer["error"]["fields"]]
    assert echo_depth() == before


def test_oversized_body_is_refused_with_413_before_it_is_sent(
    api_url: str, tenant_token: str, services: Services, echo_depth: Callable[[], int]
) -> None:
    """Like ``curl`` with ``Expect: 100-continue``: the headers alone earn the 413."""
    before = echo_depth()
    host, port = urllib.parse.urlsplit(api_url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.putrequest("POST", "/v1/jobs")
    connection.putheader("Authorization", f"Bearer {tenant_token}")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(services.settings.max_body_bytes + 1))
    connection.endheaders()
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    assert response.status == 413
    assert answer["error"]["code"] == "body_too_large"
    assert echo_depth() == before


def test_missing_or_unknown_token_is_401(api_url: str, echo_depth: Callable[[], int]) -> None:
    before = echo_depth()
    code, answer = post(
        api_url, "tnd_not-a-real-token", b'{"task": "demo.echo", "payload": {"message": "x"}}'
    )
    assert code == 401
    assert answer["error"]["code"] == "unauthorized"
    assert echo_depth() == before


def test_a_tenant_never_sees_another_tenants_jobs(
    client: TornadoClient, api_url: str, other_tenant_token: str
) -> None:
    mine = client.submit("demo.echo", {"message": "private"})
    other = TornadoClient(api_url, other_tenant_token)
    with pytest.raises(ApiError) as refused:
        other.get(mine["id"])
    assert refused.value.status == 404
    assert mine["id"] not in [job["id"] for job in other.list(limit=500)["jobs"]]
    assert client.get(mine["id"])["status"] == "queued"


def test_large_payload_travels_by_claim_check(client: TornadoClient, services: Services) -> None:
    big = "x" * (services.settings.claim_check_bytes + 10)
    receipt = client.submit("demo.echo", {"message": big})
    key = f"payloads/demo.echo/{receipt['id']}.json"
    assert services.objects.exists(key)
    assert json.loads(services.objects.get(key)) == {"message": big}


def test_unreachable_queue_answers_503_queue_unavailable_and_accepts_nothing(
    e2e_env: dict[str, str],
    tmp_path: Any,
    tenant_token: str,
    dev_stack: Any,
    services: Services,
    queue_of: Callable[[str], str],
) -> None:
    """Tokens are cached, so the request gets past authentication and fails at the queue itself."""
    env = dict(e2e_env)
    sqs = env["TORNADO_QUEUE"] == "sqs"
    if sqs:  # the SQS endpoint is gone (PostgreSQL, holding the tokens, is fine)
        env["TORNADO_AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    cluster = LocalCluster(env, tmp_path)
    try:
        _process, url = cluster.start_api()
        assert TornadoClient(url, tenant_token).list(limit=1)["jobs"] is not None  # the token cache is warm
        before = services.queue.depth(queue_of("demo.echo")).total
        if not sqs:  # the PostgreSQL queue's server goes away
            dev_stack.stop_postgres()
        try:
            code, answer = post(url, tenant_token, b'{"task": "demo.echo", "payload": {"message": "x"}}')
        finally:
            if not sqs:
                dev_stack.start_postgres()
        assert code == 503, answer
        assert answer["error"]["code"] == "queue_unavailable", answer
        if not sqs:
            assert services.queue.depth(queue_of("demo.echo")).total == before  # nothing was queued
    finally:
        cluster.stop_all(grace=10)


def test_readyz_names_what_a_really_stopped_backend_takes_down(
    e2e_env: dict[str, str], tmp_path: Any, dev_stack: Any
) -> None:
    env = dict(e2e_env)
    sqs = env["TORNADO_QUEUE"] == "sqs"
    if sqs:  # nothing listens where the SQS endpoint should be
        env["TORNADO_AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    cluster = LocalCluster(env, tmp_path)
    try:
        _process, url = cluster.start_api()
        if not sqs:
            assert readyz(url)[0] == 200
            dev_stack.stop_postgres()
        try:
            status, body = readyz(url)
        finally:
            if not sqs:
                dev_stack.start_postgres()
        assert status == 503 and body["status"] == "not_ready", body
        assert body["error"]["code"] == "not_ready"
        assert body["checks"]["queue"]["ok"] is False
        assert body["checks"]["jobs"]["ok"] is sqs  # PostgreSQL is fine when only SQS is gone
    finally:
        cluster.stop_all(grace=10)


def readyz(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
