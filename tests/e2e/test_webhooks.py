"""Completion webhooks end to end: real API, worker and ``tornado webhooks deliver`` processes, and
receivers on 127.0.0.1 that fail, die and verify signatures, on both queue backends."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.helpers import wait_until
from tornado_core.adapters.runtimes.process.cluster import LocalCluster, ManagedProcess, free_port
from tornado_core.client import TornadoClient
from tornado_core.services import Services
from tornado_core.tokens import hash_token, new_token
from tornado_core.webhooks import verify_signature

pytestmark = pytest.mark.e2e

ATTEMPTS = 4
Request = tuple[dict[str, str], bytes, int]


@dataclass
class Receiver:
    """What an HTTP receiver on 127.0.0.1 saw; it answers 500 to its first ``failures`` requests."""

    failures: int = 0
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tornado"

    def answered(self, status: int) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r[2] == status]

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = 500 if len(self.requests) < self.failures else 200
            self.requests.append((headers, body, status))
        return status


@contextmanager
def receiving(receiver: Receiver) -> Iterator[Receiver]:
    """Serve ``receiver`` on its port (a free one if 0) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.handle(dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Tenant:
    name: str
    token: str


@pytest.fixture
def tenant(services: Services, api_url: str) -> Tenant:
    """A tenant of this test alone (endpoints are per tenant), once the API knows its token."""
    token = new_token()
    name = f"hooks-{uuid.uuid4().hex[:8]}"
    services.tenants.create(name, hash_token(token))
    wait_until(
        lambda: call(api_url, token, "GET", "/v1/webhooks")[0] == 200, what="the API to know the token"
    )
    return Tenant(name, token)


@pytest.fixture(scope="module")
def dispatcher(
    module_cluster: LocalCluster, e2e_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    """``tornado webhooks deliver`` with a short back-off, so that four attempts take a second or so."""
    args = [
        "webhooks", "deliver", "--attempts", str(ATTEMPTS), "--backoff-base", "0.1", "--backoff-max", "1",
        "--timeout", "2", "--poll-interval", "0.2", "--concurrency", "4",
    ]  # fmt: skip
    log = tmp_path_factory.mktemp("webhooks") / "deliver.log"
    process = ManagedProcess("webhooks-deliver", args, e2e_env, log).start()
    yield process
    assert process.terminate(grace=20) == 0, process.log_tail()


@pytest.fixture(scope="module")
def echo_worker(module_cluster: LocalCluster, api_url: str) -> ManagedProcess:
    return module_cluster.start_worker("demo.echo")


def call(api_url: str, token: str, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
         content_type: str = "application/json") -> tuple[int, dict[str, Any]]:  # fmt: skip
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(api_url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def register(api_url: str, tenant: Tenant, url: str) -> dict[str, Any]:
    status, answer = call(api_url, tenant.token, "POST", "/v1/webhooks", {"url": url, "description": "ERP"})
    assert status == 201, answer
    return answer


def deliveries(api_url: str, tenant: Tenant, status: str) -> list[dict[str, Any]]:
    code, answer = call(api_url, tenant.token, "GET", f"/v1/webhooks/deliveries?status={status}")
    assert code == 200, answer
    return list(answer["deliveries"])


def listed_once(api_url: str, tenant: Tenant, status: str, *, what: str) -> dict[str, Any]:
    """Wait until the tenant's deliveries of ``status`` hold exactly one; returns it."""
    found = wait_until(lambda: deliveries(api_url, tenant, status), timeout=60, what=what)
    assert isinstance(found, list) and len(found) == 1, found
    return dict(found[0])


def finish_a_job(api_url: str, tenant: Tenant) -> str:
    client = TornadoClient(api_url, tenant.token)
    job = client.submit("demo.echo", {"message": "hooked"})
    assert client.wait(job["id"], timeout=60)["status"] == "succeeded"
    return str(job["id"])


def test_a_receiver_failing_three_times_gets_one_signed_delivery_under_one_id(
    api_url: str, tenant: Tenant, echo_worker: ManagedProcess, dispatcher: ManagedProcess
) -> None:
    with receiving(Receiver(failures=3)) as receiver:
        endpoint = register(api_url, tenant, receiver.url)
        assert endpoint["secret"].startswith("whsec_") and endpoint["tenant"] == tenant.name
        job_id = finish_a_job(api_url, tenant)
        wait_until(lambda: receiver.answered(200), timeout=60, what="a successful delivery")
        delivered = listed_once(api_url, tenant, "delivered", what="delivered listed")
    assert len(receiver.requests) == 4 and len(receiver.answered(200)) == 1
    assert {headers["Tornado-Delivery"] for headers, _, _ in receiver.requests} == {delivered["id"]}
    for headers, body, _ in receiver.requests:
        verify_signature(endpoint["secret"], headers["Tornado-Signature"], body)
        assert headers["Tornado-Event"] == "job.succeeded"
    document = json.loads(receiver.requests[-1][1])
    assert document["delivery_id"] == delivered["id"] and document["event"] == "job.succeeded"
    assert document["job"]["id"] == job_id and document["job"]["result"] == {"message": "hooked"}
    assert document["job"]["tenant"] == tenant.name and document["job"]["status"] == "succeeded"
    assert (delivered["attempts"], delivered["last_status_code"], delivered["job_id"]) == (4, 200, job_id)
    _, listed = call(api_url, tenant.token, "GET", "/v1/webhooks")
    assert [e["id"] for e in listed["endpoints"]] == [endpoint["id"]]
    assert (
        "secret" not in listed["endpoints"][0]
        and listed["endpoints"][0]["secret_prefix"] == endpoint["secret"][:10]
    )


def test_a_dead_receiver_ends_in_the_dead_letter_list_and_is_redelivered_under_the_same_id(
    api_url: str,
    tenant: Tenant,
    echo_worker: ManagedProcess,
    dispatcher: ManagedProcess,
    tornado_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    port = free_port()  # nothing listens there: every attempt is refused
    endpoint = register(api_url, tenant, f"http://127.0.0.1:{port}/hooks/tornado")
    job_id = finish_a_job(api_url, tenant)
    dead = listed_once(api_url, tenant, "dead", what="a dead delivery")
    assert (dead["job_id"], dead["attempts"], dead["last_status_code"]) == (job_id, ATTEMPTS, None)
    assert "Connection" in dead["last_error"] and dead["endpoint_id"] == endpoint["id"]
    listing = tornado_cli("webhooks", "deliveries", "--tenant", tenant.name, "--status", "dead").stdout
    assert dead["id"] in listing and "job.succeeded" in listing and f"attempts={ATTEMPTS}" in listing

    with receiving(Receiver(port=port)) as receiver:
        code, answer = call(api_url, tenant.token, "POST", f"/v1/webhooks/deliveries/{dead['id']}:redeliver")
        assert (code, answer) == (202, {"id": dead["id"], "status": "pending"})
        wait_until(lambda: receiver.answered(200), timeout=60, what="the redelivery")
        wait_until(
            lambda: deliveries(api_url, tenant, "delivered"), what="the redelivery listed as delivered"
        )
    assert [headers["Tornado-Delivery"] for headers, _, _ in receiver.requests] == [dead["id"]]
    assert deliveries(api_url, tenant, "dead") == []
    again = tornado_cli("webhooks", "redeliver", dead["id"]).stdout
    assert f"scheduled {dead['id']}" in again


BAD_REGISTRATIONS = [
    pytest.param({}, 422, "url", id="missing-url"),
    pytest.param({"url": "ftp://127.0.0.1/x"}, 422, "url", id="ftp"),
    pytest.param({"url": "127.0.0.1/hook"}, 422, "url", id="no-scheme"),
    pytest.param({"url": "http://u:p@127.0.0.1/"}, 422, "url", id="credentials"),
    pytest.param({"url": "http://127.0.0.1/" + "a" * 2100}, 422, "url", id="too-long"),
    pytest.param({"url": 5}, 422, "url", id="not-a-string"),
    pytest.param({"url": "http://127.0.0.1/", "secret": "mine"}, 422, "secret", id="unknown-field"),
    pytest.param(
        {"url": "http://127.0.0.1/", "description": "x" * 501}, 422, "description", id="description"
    ),
]


@pytest.mark.parametrize(("body", "status", "field_name"), BAD_REGISTRATIONS)
def test_bad_registrations_get_a_clear_4xx_naming_the_field_and_create_nothing(
    api_url: str, tenant: Tenant, body: dict[str, Any], status: int, field_name: str
) -> None:
    code, answer = call(api_url, tenant.token, "POST", "/v1/webhooks", body)
    assert code == status and answer["error"]["message"]
    assert [f["field"] for f in answer["error"]["fields"]] == [field_name]
    assert call(api_url, tenant.token, "GET", "/v1/webhooks")[1] == {"endpoints": []}


def test_other_bad_requests_get_a_clear_4xx_and_change_nothing(api_url: str, tenant: Tenant) -> None:
    assert call(api_url, tenant.token, "POST", "/v1/webhooks", raw=b'{"url": ')[0] == 400
    assert call(api_url, tenant.token, "POST", "/v1/webhooks", raw=b"{}", content_type="text/plain")[0] == 415
    assert call(api_url, "wrong-token", "POST", "/v1/webhooks", {"url": "http://127.0.0.1/"})[0] == 401
    for query, name in [("status=lost", "status"), ("limit=0", "limit"), ("limit=many", "limit")]:
        code, answer = call(api_url, tenant.token, "GET", f"/v1/webhooks/deliveries?{query}")
        assert (code, answer["error"]["fields"][0]["field"]) == (400, name)
    code, answer = call(api_url, tenant.token, "DELETE", "/v1/webhooks/whe_0123")
    assert (code, answer["error"]["code"]) == (404, "webhook_not_found")
    code, answer = call(api_url, tenant.token, "POST", "/v1/webhooks/deliveries/whd_0123:redeliver")
    assert (code, answer["error"]["code"]) == (404, "delivery_not_found")
    assert call(api_url, tenant.token, "GET", "/v1/webhooks")[1] == {"endpoints": []}
    assert deliveries(api_url, tenant, "pending") == []


def test_another_tenants_endpoint_is_not_found(api_url: str, tenant: Tenant, other_tenant_token: str) -> None:
    endpoint = register(api_url, tenant, "http://127.0.0.1:9/hook")
    code, _ = call(api_url, other_tenant_token, "DELETE", f"/v1/webhooks/{endpoint['id']}")
    assert code == 404
    assert call(api_url, tenant.token, "DELETE", f"/v1/webhooks/{endpoint['id']}") == (
        200, {"id": endpoint["id"], "removed": True},
    )  # fmt: skip
    assert call(api_url, tenant.token, "DELETE", f"/v1/webhooks/{endpoint['id']}")[0] == 404


def test_the_cli_adds_lists_and_removes_endpoints_and_refuses_bad_input_clearly(
    tenant: Tenant, tornado_cli: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    bad = tornado_cli("webhooks", "add", "--tenant", tenant.name, "ftp://127.0.0.1/x", check=False)
    assert bad.returncode == 2 and "must start with http:// or https://" in bad.stderr
    ghost = tornado_cli("webhooks", "add", "--tenant", "ghost-tenant", "http://127.0.0.1:9/", check=False)
    assert ghost.returncode == 1 and "no tenant 'ghost-tenant'" in ghost.stderr
    assert tornado_cli("webhooks", "list", "--tenant", tenant.name).stdout == ""
    added = tornado_cli("webhooks", "add", "--tenant", tenant.name, "http://127.0.0.1:9/hook").stdout
    endpoint_id, secret = added.split()
    assert endpoint_id.startswith("whe_") and secret.startswith("whsec_")
    listed = tornado_cli("webhooks", "list", "--tenant", tenant.name).stdout
    assert endpoint_id in listed and secret not in listed and secret[:10] in listed
    assert "removed" in tornado_cli("webhooks", "remove", endpoint_id).stdout
    missing = tornado_cli("webhooks", "remove", endpoint_id, check=False)
    assert missing.returncode == 1 and "no webhook endpoint" in missing.stderr
    unknown = tornado_cli("webhooks", "redeliver", "whd_nope", check=False)
    assert unknown.returncode == 1 and "no webhook delivery" in unknown.stderr


def test_the_openapi_document_describes_the_webhook_endpoints(api_url: str) -> None:
    with urllib.request.urlopen(api_url + "/openapi.json", timeout=30) as response:
        document = json.loads(response.read())
    assert {"/v1/webhooks", "/v1/webhooks/{id}", "/v1/webhooks/deliveries"} <= set(document["paths"])
    assert "/v1/webhooks/deliveries/{id}:redeliver" in document["paths"]
    from openapi_spec_validator import validate

    validate(document)
