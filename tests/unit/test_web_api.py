"""The HTTP API over a real tornado server on 127.0.0.1, with in-memory services."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import tornado_tasks.demo.handlers as demo
from pydantic import BaseModel
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.testing import AsyncHTTPTestCase, gen_test

from tornado_core.adapters.memory.jobs import MemoryJobStore
from tornado_core.adapters.memory.schedules import MemorySchedules
from tornado_core.adapters.memory.stores import MemoryQueue
from tornado_core.adapters.memory.tenants import MemoryTenantStore
from tornado_core.errors import ObjectStoreError, StoreUnavailable
from tornado_core.message import Envelope
from tornado_core.naming import queue_spec
from tornado_core.ports.jobs import JobStatus, NewJob
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.tenants import TokenGrant
from tornado_core.registry import TaskRegistry
from tornado_core.settings import Settings
from tornado_core.task import task
from tornado_core.task_context import TaskContext
from tornado_core.tokens import hash_token, new_token
from tornado_core.toolchain.testing import memory_services
from tornado_core.web import ApiApplication, make_app
from tornado_core.web.auth import TokenCache
from tornado_core.web.openapi import openapi_document

MAX_BODY = 64 * 1024
CLAIM_CHECK = 2000


def _raise_object_store_error(*_args: Any, **_kwargs: Any) -> None:
    raise ObjectStoreError("s3 is down")


class CountingQueue(MemoryQueue):
    """Counts send_batch calls; optionally slow."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.delay = 0.0
        self._lock = threading.Lock()

    def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        with self._lock:
            self.calls.append(len(messages))
        time.sleep(self.delay)
        return super().send_batch(queue, messages)


class FlakyStore(MemoryJobStore):
    """A job store that can be down."""

    down = False

    def get(self, job_id: str) -> Any:
        if self.down:
            raise StoreUnavailable("postgres is down")
        return super().get(job_id)

    def ping(self) -> None:
        if self.down:
            raise StoreUnavailable("postgres is down")


class Restock(BaseModel):
    sku: str


@task(name="shop.restock", payload=Restock, version="1.0", internal=True)
def restock(ctx: TaskContext, payload: Restock) -> None:
    """Queued by the shop's own endpoint only."""


class ApiTestCase(AsyncHTTPTestCase):
    """A server with the demo tasks, an internal task, two tenants (acme, globex) and their tokens."""

    def get_app(self) -> ApiApplication:
        registry = TaskRegistry([restock])
        registry.register_module(demo)
        settings = Settings(
            database_url="memory://",
            secret_key="test-secret",
            max_body_bytes=MAX_BODY,
            claim_check_bytes=CLAIM_CHECK,
        )
        base = memory_services(registry, settings=settings)
        self.queue = CountingQueue()
        self.store = FlakyStore()
        self.schedules = MemorySchedules(self.store)
        self.services = type(base)(
            **{**vars(base), "queue": self.queue, "jobs": self.store, "schedules": self.schedules}
        )
        self.queues = {}
        for spec in registry:
            self.queue.ensure_queue(queue_spec(settings.queue_prefix, spec))
            self.queues[spec.name] = queue_spec(settings.queue_prefix, spec).name
        self.token_a, self.token_b = new_token(), new_token()
        self.services.tenants.create("acme", hash_token(self.token_a))
        self.services.tenants.create("globex", hash_token(self.token_b))
        self.executor = ThreadPoolExecutor(8)
        self.app = make_app(self.services, executor=self.executor)
        return self.app

    def get_httpserver_options(self) -> dict[str, Any]:
        return self.app.http_server_options()

    def get_http_client(self) -> AsyncHTTPClient:
        return AsyncHTTPClient(force_instance=True, max_clients=200)

    def tearDown(self) -> None:
        super().tearDown()
        self.executor.shutdown()

    # helpers

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "a",
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any, HTTPResponse]:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {self._token(token)}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if method == "POST" and data is None:
            data = b""
        response = self.fetch(path, method=method, body=data, headers=headers)
        return response.code, json.loads(response.body) if response.body else None, response

    def _token(self, token: str) -> str:
        return {"a": self.token_a, "b": self.token_b}.get(token, token)

    def queued(self) -> int:
        return sum(self.queue.depth(name).total for name in self.queues.values())

    def bodies(self, task: str = "demo.echo") -> list[Envelope]:
        got = self.queue.receive(self.queues[task], max_messages=10, wait_seconds=0, visibility_timeout=60)
        return [Envelope.from_json(m.body) for m in got]

    def settle(self) -> None:
        """Let the write-behind recorder finish."""

        async def wait() -> None:
            while self.app.api.recorder.pending:
                await asyncio.sleep(0.005)

        self.io_loop.run_sync(wait)

    def assert_error(self, status: int, body: Any, code: str, field: str | None = None) -> None:
        assert body["error"]["code"] == code, body
        if field is not None:
            assert field in [f["field"] for f in body["error"]["fields"]], body
        assert "Traceback" not in json.dumps(body)


class TestSubmit(ApiTestCase):
    def test_internal_task_cannot_be_submitted_directly(self) -> None:
        code, body, _ = self.call("POST", "/v1/jobs", {"task": "shop.restock", "payload": {"sku": "A1"}})
        assert code == 422
        assert body["error"]["code"] == "task_internal"
        assert [f["field"] for f in body["error"]["fields"]] == ["task"]
        code, body, _ = self.call(
            "POST", "/v1/jobs:batch", {"jobs": [{"task": "shop.restock", "payload": {"sku": "A1"}}]}
        )
        assert body["results"][0]["error"]["code"] == "task_internal"
        assert self.bodies() == []

    def test_submit_returns_202_after_the_queue_has_it(self) -> None:
        code, body, response = self.call(
            "POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": "hi"}}
        )
        assert code == 202
        assert body["status"] == "queued" and body["task"] == "demo.echo" and body["version"]
        assert response.headers["Content-Type"].startswith("application/json")
        [envelope] = self.bodies()
        assert envelope.job_id == body["id"]
        assert envelope.tenant == "acme" and envelope.payload == {"message": "hi"}
        self.settle()
        record = self.store.get(body["id"])
        assert record is not None and record.status is JobStatus.QUEUED and record.tenant == "acme"

    def test_same_idempotency_key_same_job_id(self) -> None:
        item = {"task": "demo.echo", "payload": {"message": "x"}, "idempotency_key": "order-42"}
        _, first, _ = self.call("POST", "/v1/jobs", item)
        _, second, _ = self.call("POST", "/v1/jobs", item)
        _, other, _ = self.call("POST", "/v1/jobs", {**item, "idempotency_key": "order-43"})
        _, other_tenant, _ = self.call("POST", "/v1/jobs", item, token="b")
        assert first["id"] == second["id"]
        assert other["id"] != first["id"]
        assert other_tenant["id"] != first["id"]

    def test_malformed_json_is_400(self) -> None:
        code, body, _ = self.call("POST", "/v1/jobs", raw=b'{"task": "demo.echo", ')
        assert code == 400
        self.assert_error(code, body, "json_invalid")
        code, body, _ = self.call(
            "POST", "/v1/jobs", raw=b'{"task": "demo.echo", "payload": {"message": NaN}}'
        )
        assert code == 400
        code, _, _ = self.call("POST", "/v1/jobs", raw=b"\xff\xfe")
        assert code == 400
        assert self.queued() == 0

    def test_body_not_an_object_is_422(self) -> None:
        code, body, _ = self.call("POST", "/v1/jobs", [1, 2])
        assert code == 422
        self.assert_error(code, body, "request_invalid")
        assert self.queued() == 0

    def test_wrong_content_type_is_415(self) -> None:
        raw = json.dumps({"task": "demo.echo", "payload": {"message": "hi"}}).encode()
        code, body, _ = self.call("POST", "/v1/jobs", raw=raw, content_type="text/plain")
        assert code == 415
        self.assert_error(code, body, "unsupported_media_type")
        code, _, _ = self.call("POST", "/v1/jobs", raw=raw, content_type="application/json; charset=utf-8")
        assert code == 202
        assert self.queued() == 1

    def test_body_over_the_limit_is_413_json(self) -> None:
        big = {"task": "demo.echo", "payload": {"message": "x" * (MAX_BODY + 10)}}
        code, body, _ = self.call("POST", "/v1/jobs", big)
        assert code == 413
        self.assert_error(code, body, "body_too_large")
        assert self.queued() == 0

    @gen_test
    async def test_a_body_far_over_the_limit_is_refused_from_its_headers(self) -> None:
        def ask() -> bytes:  # as curl does: send the headers, read the early answer, never the body
            with socket.create_connection(("127.0.0.1", self.get_http_port()), timeout=10) as sock:
                sock.sendall(
                    "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Authorization: Bearer {self.token_a}\r\n"
                    f"Content-Length: {3 * MAX_BODY + 1024 * 1024}\r\n\r\n".encode()
                )
                answer = b""
                while data := sock.recv(65536):
                    answer += data
                return answer

        head, _, body = (await asyncio.get_running_loop().run_in_executor(None, ask)).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413 ")
        assert json.loads(body)["error"]["code"] == "body_too_large"
        assert self.queued() == 0

    @gen_test
    async def test_chunked_body_over_the_limit_is_413(self) -> None:
        async def produce(write: Any) -> None:
            for _ in range(4):
                await write(b" " * (MAX_BODY // 2))
            await write(b"{}")

        response = await self.http_client.fetch(
            self.get_url("/v1/jobs"),
            method="POST",
            body_producer=produce,
            headers={"Authorization": f"Bearer {self.token_a}", "Content-Type": "application/json"},
            raise_error=False,
        )
        assert response.code == 413
        assert json.loads(response.body)["error"]["code"] == "body_too_large"

    def test_unknown_task_is_422_on_field_task(self) -> None:
        code, body, _ = self.call("POST", "/v1/jobs", {"task": "nope.nothing", "payload": {}})
        assert code == 422
        self.assert_error(code, body, "task_unknown", "task")
        assert self.queued() == 0

    def test_schema_violation_is_422_with_payload_fields(self) -> None:
        code, body, _ = self.call("POST", "/v1/jobs", {"task": "demo.echo", "payload": {}})
        assert code == 422
        self.assert_error(code, body, "payload_invalid", "payload.message")
        code, body, _ = self.call("POST", "/v1/jobs", {"task": "demo.sleep", "payload": {"seconds": -1}})
        assert code == 422
        self.assert_error(code, body, "payload_invalid", "payload.seconds")
        assert self.queued() == 0

    def test_missing_or_malformed_fields_are_422_naming_them(self) -> None:
        code, body, _ = self.call("POST", "/v1/jobs", {})
        assert code == 422
        self.assert_error(code, body, "request_invalid", "task")
        self.assert_error(code, body, "request_invalid", "payload")
        code, body, _ = self.call("POST", "/v1/jobs", {"task": "demo.echo", "payload": "hi"})
        self.assert_error(code, body, "request_invalid", "payload")
        code, body, _ = self.call("POST", "/v1/jobs", {"task": 3, "payload": {"message": "m"}})
        self.assert_error(code, body, "request_invalid", "task")
        for key in ("", "k" * 201, 7):
            item = {"task": "demo.echo", "payload": {"message": "m"}, "idempotency_key": key}
            code, body, _ = self.call("POST", "/v1/jobs", item)
            assert code == 422
            self.assert_error(code, body, "request_invalid", "idempotency_key")
        code, body, _ = self.call(
            "POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": "m"}, "x": 1}
        )
        self.assert_error(code, body, "request_invalid", "x")
        assert self.queued() == 0

    def test_queue_down_is_503_and_nothing_accepted(self) -> None:
        self.queue.down = True
        code, body, response = self.call(
            "POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": "m"}}
        )
        assert code == 503
        self.assert_error(code, body, "queue_unavailable")
        assert response.headers["Retry-After"]
        self.queue.down = False
        assert self.queued() == 0
        self.settle()
        assert self.store.list(tenant="acme").jobs == []

    def test_claim_check_of_a_large_payload(self) -> None:
        message = "x" * (CLAIM_CHECK + 100)  # prepared off the loop, payload stored in S3
        code, body, _ = self.call("POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": message}})
        assert code == 202
        [envelope] = self.bodies()
        assert envelope.job_id == body["id"] and envelope.payload is None and envelope.payload_ref
        assert json.loads(self.services.objects.get(envelope.payload_ref)) == {"message": message}

    def test_object_store_down_is_503(self) -> None:
        self.services.objects.put = _raise_object_store_error  # type: ignore[method-assign]
        message = "x" * (CLAIM_CHECK + 100)
        code, body, _ = self.call("POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": message}})
        assert code == 503
        self.assert_error(code, body, "object_store_unavailable")
        assert self.queued() == 0


class TestAuth(ApiTestCase):
    def test_missing_and_unknown_tokens_are_401_json(self) -> None:
        item = {"task": "demo.echo", "payload": {"message": "m"}}
        for token in (None, "tnd_unknown"):
            code, body, response = self.call("POST", "/v1/jobs", item, token=token)
            assert code == 401
            self.assert_error(code, body, "unauthorized")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        code, _, _ = self.call("GET", "/v1/jobs", token=None)
        assert code == 401
        response = self.fetch("/v1/jobs", headers={"Authorization": f"Basic {self.token_a}"})
        assert response.code == 401
        assert self.queued() == 0

    def test_known_tokens_survive_a_tenant_store_outage(self) -> None:
        assert self.call("GET", "/v1/jobs")[0] == 200  # loads the cache
        calls: list[int] = []

        def store_down() -> dict[str, Any]:
            calls.append(1)
            raise StoreUnavailable("down")

        self.services.tenants.grants = store_down  # type: ignore[method-assign]
        for _ in range(20):
            assert self.call("GET", "/v1/jobs/" + "x" * 36)[0] == 404  # known token, no store call
            assert self.call("GET", "/v1/jobs", token="tnd_nope")[0] == 401
        assert len(calls) <= 1

    def test_store_down_before_tokens_were_ever_loaded_is_503(self) -> None:
        def store_down() -> dict[str, Any]:
            raise StoreUnavailable("down")

        self.services.tenants.grants = store_down  # type: ignore[method-assign]
        code, body, _ = self.call("GET", "/v1/jobs")
        assert code == 503
        self.assert_error(code, body, "store_unavailable")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingTenants(MemoryTenantStore):
    def __init__(self, *, notifies: bool = True) -> None:
        super().__init__()
        self.loads = 0
        self.notifies = notifies

    def grants(self) -> dict[str, TokenGrant]:
        self.loads += 1
        return super().grants()

    def watch(self, on_change: Any) -> Any:
        return super().watch(on_change) if self.notifies else (lambda: None)


def test_token_cache_reloads_on_unknown_tokens_at_most_once_per_second() -> None:
    tenants, clock = CountingTenants(notifies=False), FakeClock()
    known = new_token()
    tenants.create("acme", hash_token(known))

    async def run() -> None:
        with ThreadPoolExecutor(2) as pool:
            cache = TokenCache(tenants, pool, max_age=30, min_gap=1, clock=clock)
            assert await cache.tenant_for(known) == "acme"
            assert await cache.tenant_for("tnd_other") is None  # within a second of the last load
            assert await cache.tenant_for("tnd_more") is None
            assert tenants.loads == 1
            clock.now += 1.5
            assert await cache.tenant_for("tnd_other") is None  # one reload, then refused
            assert tenants.loads == 2
            results = await asyncio.gather(*(cache.tenant_for(known) for _ in range(50)))
            assert set(results) == {"acme"} and tenants.loads == 2  # never per request

    asyncio.run(run())


def test_a_token_created_a_moment_after_a_load_is_known_at_once() -> None:
    tenants, clock = CountingTenants(), FakeClock()
    tenants.create("acme", hash_token(new_token()))

    async def run() -> None:
        with ThreadPoolExecutor(2) as pool:
            cache = TokenCache(tenants, pool, max_age=30, min_gap=1, clock=clock)
            assert await cache.tenant_for("tnd_unknown") is None  # loads once
            fresh = new_token()
            tenants.create("initech", hash_token(fresh))  # the store tells the cache
            assert await cache.tenant_for(fresh) == "initech"  # no second of 401s

    asyncio.run(run())


def test_token_cache_reloads_periodically_when_changes_were_missed() -> None:
    tenants, clock = CountingTenants(notifies=False), FakeClock()
    revoked = new_token()
    tenants.create("acme", hash_token(revoked))

    async def run() -> None:
        with ThreadPoolExecutor(2) as pool:
            cache = TokenCache(tenants, pool, max_age=30, min_gap=1, clock=clock)
            assert await cache.tenant_for(revoked) == "acme"
            tenants.revoke("acme")  # no notification reaches this cache
            clock.now += 31
            assert await cache.tenant_for(revoked) == "acme"  # served from cache, reload started
            for _ in range(100):
                if tenants.loads == 2 and await cache.tenant_for(revoked) is None:
                    break
                await asyncio.sleep(0.01)
            assert await cache.tenant_for(revoked) is None

    asyncio.run(run())


class TestStatus(ApiTestCase):
    def submit(self, token: str = "a", **extra: Any) -> str:
        code, body, _ = self.call(
            "POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": "m"}, **extra}, token=token
        )
        assert code == 202
        return str(body["id"])

    def test_unrecorded_job_of_ours_is_queued(self) -> None:
        job_id = self.services.job_ids.new("acme")
        code, body, _ = self.call("GET", f"/v1/jobs/{job_id}")
        assert (code, body) == (200, {"id": job_id, "status": "queued"})

    def test_recorded_job_shows_its_state(self) -> None:
        job_id = self.submit()
        self.settle()
        self.store.claim(
            NewJob(job_id=job_id, tenant="acme", task="demo.echo", version="x", submitted_at=0),
            attempt=1,
            lease_seconds=30,
            worker="w1",
        )
        code, body, _ = self.call("GET", f"/v1/jobs/{job_id}")
        assert code == 200 and body["status"] == "running" and body["attempts"] == 1

    def test_other_tenants_job_is_404(self) -> None:
        job_id = self.submit("a")
        self.settle()
        code, body, _ = self.call("GET", f"/v1/jobs/{job_id}", token="b")
        assert code == 404
        self.assert_error(code, body, "job_not_found")
        code, _, _ = self.call("GET", "/v1/jobs/not-even-an-id", token="b")
        assert code == 404

    def test_store_down_is_503_for_our_ids_404_for_others(self) -> None:
        job_id = self.submit()
        self.settle()
        self.store.down = True
        code, body, _ = self.call("GET", f"/v1/jobs/{job_id}")
        assert code == 503
        self.assert_error(code, body, "store_unavailable")
        assert self.call("GET", f"/v1/jobs/{job_id}", token="b")[0] == 404

    def test_listing_is_tenant_scoped_and_paged(self) -> None:
        mine = [self.submit() for _ in range(5)]
        self.submit("b")
        self.settle()
        code, page1, _ = self.call("GET", "/v1/jobs?limit=3")
        assert code == 200 and len(page1["jobs"]) == 3 and page1["next_cursor"]
        code, page2, _ = self.call("GET", f"/v1/jobs?limit=3&cursor={page1['next_cursor']}")
        assert len(page2["jobs"]) == 2 and page2["next_cursor"] is None
        seen = [j["id"] for j in page1["jobs"] + page2["jobs"]]
        assert sorted(seen) == sorted(mine)
        _, filtered, _ = self.call("GET", "/v1/jobs?status=queued&task=demo.echo")
        assert len(filtered["jobs"]) == 5
        _, none, _ = self.call("GET", "/v1/jobs?status=succeeded")
        assert none["jobs"] == []

    def test_listing_validates_parameters(self) -> None:
        for query, field in (
            ("status=bogus", "status"),
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("limit=a", "limit"),
        ):
            code, body, _ = self.call("GET", f"/v1/jobs?{query}")
            assert code == 400, query
            self.assert_error(code, body, "parameter_invalid", field)
        assert self.call("GET", "/v1/jobs?limit=500")[0] == 200


class TestBatch(ApiTestCase):
    def test_mixed_batch_queues_the_good_items(self) -> None:
        jobs = [
            {"task": "demo.echo", "payload": {"message": "one"}},
            {"task": "demo.echo", "payload": {}},
            {"task": "nope.task", "payload": {}},
            "not an object",
            {"task": "demo.sleep", "payload": {"seconds": 1}},
        ]
        code, body, _ = self.call("POST", "/v1/jobs:batch", {"jobs": jobs})
        assert code == 200
        assert (body["accepted"], body["rejected"]) == (2, 3)
        results = body["results"]
        assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
        assert results[0]["status"] == "queued" and results[4]["task"] == "demo.sleep"
        assert results[1]["error"]["code"] == "payload_invalid"
        assert results[1]["error"]["fields"][0]["field"] == "payload.message"
        assert results[2]["error"]["code"] == "task_unknown"
        assert results[3]["error"]["code"] == "request_invalid"
        assert self.queued() == 2

    def test_batch_envelope_is_validated(self) -> None:
        item = {"task": "demo.echo", "payload": {"message": "m"}}
        for body, field in (
            ({}, "jobs"),
            ({"jobs": []}, "jobs"),
            ({"jobs": [item] * 501}, "jobs"),
            ({"jobs": {}}, "jobs"),
            ({"jobs": [item], "x": 1}, "x"),
        ):
            code, answer, _ = self.call("POST", "/v1/jobs:batch", body)
            assert code == 422
            self.assert_error(code, answer, "request_invalid", field)
        assert self.queued() == 0

    def test_batch_of_500_uses_few_sends(self) -> None:
        jobs = [
            {"task": "demo.echo", "payload": {"message": str(i)}, "idempotency_key": f"k{i}"}
            for i in range(500)
        ]
        code, body, _ = self.call("POST", "/v1/jobs:batch", {"jobs": jobs})
        assert code == 200 and body["accepted"] == 500
        assert self.queued() == 500
        assert len(self.queue.calls) <= 51
        _, again, _ = self.call("POST", "/v1/jobs:batch", {"jobs": jobs[:3]})
        assert [r["id"] for r in again["results"]] == [r["id"] for r in body["results"][:3]]

    def test_batch_with_queue_down_is_503(self) -> None:
        self.queue.down = True
        jobs = [{"task": "demo.echo", "payload": {"message": "m"}}, {"task": "demo.echo", "payload": {}}]
        code, body, _ = self.call("POST", "/v1/jobs:batch", {"jobs": jobs})
        assert code == 503
        self.assert_error(code, body, "queue_unavailable")
        self.queue.down = False
        assert self.queued() == 0

    def test_an_ordinary_batch_with_the_queue_down_is_503_and_queues_nothing(self) -> None:
        self.queue.down = True  # every item valid: the batch is prepared together
        jobs = [{"task": "demo.echo", "payload": {"message": f"m{i}"}} for i in range(3)]
        code, body, response = self.call("POST", "/v1/jobs:batch", {"jobs": jobs})
        assert code == 503
        self.assert_error(code, body, "queue_unavailable")
        assert response.headers["Retry-After"]
        self.queue.down = False
        assert self.queued() == 0

    def test_an_ordinary_batch_answers_each_message_the_queue_refused_and_queues_the_rest(self) -> None:
        sent = self.queue.send_batch

        def refuse_odd(queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
            kept = [m for m in messages if '"odd' not in m.body]
            stored = iter(sent(queue, kept))
            return [next(stored) if m in kept else "refused by the queue" for m in messages]

        self.queue.send_batch = refuse_odd  # type: ignore[method-assign]
        jobs = [
            {"task": "demo.echo", "payload": {"message": f"{'odd' if i % 2 else 'even'} {i}"}}
            for i in range(6)
        ]
        code, body, _ = self.call("POST", "/v1/jobs:batch", {"jobs": jobs})
        assert code == 200 and (body["accepted"], body["rejected"]) == (3, 3)
        results = body["results"]
        assert [r["index"] for r in results] == list(range(6))
        assert [r.get("status") for r in results[::2]] == ["queued"] * 3
        assert [r["error"]["code"] for r in results[1::2]] == ["queue_unavailable"] * 3
        assert {e.job_id for e in self.bodies()} == {r["id"] for r in results[::2]}


class TestLoad(ApiTestCase):
    @gen_test(timeout=30)
    async def test_concurrent_requests_are_batched(self) -> None:
        self.queue.delay = 0.02
        headers = {"Authorization": f"Bearer {self.token_a}", "Content-Type": "application/json"}
        await self.http_client.fetch(self.get_url("/healthz"))

        async def submit(i: int) -> int:
            body = json.dumps({"task": "demo.echo", "payload": {"message": str(i)}})
            response = await self.http_client.fetch(
                self.get_url("/v1/jobs"), method="POST", body=body, headers=headers
            )
            return response.code

        codes = await asyncio.gather(*(submit(i) for i in range(150)))
        assert set(codes) == {202}
        assert self.queued() == 150
        assert len(self.queue.calls) < 75, self.queue.calls
        assert max(self.queue.calls) == self.queue.max_send_batch

    def test_lone_request_is_sent_at_once(self) -> None:
        self.call("GET", "/v1/jobs")  # warm the token cache
        code, _, _ = self.call("POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": "m"}})
        assert code == 202
        assert self.queue.calls == [1]  # flushed alone, without waiting for company


class TestProbesAndDocs(ApiTestCase):
    def test_openapi_lists_punches_and_hides_internal_tasks(self) -> None:
        code, doc, _ = self.call("GET", "/openapi.json", token=None)
        assert code == 200
        assert "/v1/punches" in doc["paths"]
        assert doc["components"]["schemas"]["Punch"]["properties"]
        assert "ShopRestockJobRequest" not in doc["components"]["schemas"]
        assert "DemoEchoJobRequest" in doc["components"]["schemas"]
        import openapi_spec_validator

        openapi_spec_validator.validate(doc)

    def test_healthz_needs_nothing(self) -> None:
        self.queue.down = True
        self.store.down = True
        code, body, _ = self.call("GET", "/healthz", token=None)
        assert (code, body) == (200, {"status": "ok"})

    def test_readyz(self) -> None:
        code, body, _ = self.call("GET", "/readyz", token=None)
        assert code == 200 and body["status"] == "ready"
        self.queue.down = True
        code, body, _ = self.call("GET", "/readyz", token=None)
        assert code == 503 and body["checks"]["queue"]["ok"] is False and body["checks"]["jobs"]["ok"] is True
        assert body["error"]["code"] == "not_ready" and "queue" in body["error"]["message"]
        self.queue.down = False
        self.store.down = True
        code, body, _ = self.call("GET", "/readyz", token=None)
        assert code == 503 and body["checks"]["jobs"]["ok"] is False and "jobs" in body["error"]["message"]

    def test_openapi_has_the_demo_task_schemas(self) -> None:
        code, doc, _ = self.call("GET", "/openapi.json", token=None)
        assert code == 200 and doc["openapi"].startswith("3.1")
        schemas = doc["components"]["schemas"]
        for name in ("demo.echo", "demo.sleep", "demo.flaky", "demo.fail"):
            request = doc["components"]["schemas"]["JobRequest"]["discriminator"]["mapping"][name]
            request_schema = schemas[request.rsplit("/", 1)[1]]
            assert request_schema["properties"]["task"] == {"const": name}
        assert schemas["DemoEchoPayload"]["required"] == ["message"]
        assert schemas["DemoSleepPayload"]["properties"]["seconds"]["maximum"] == 3600
        assert "Error" in schemas and doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        assert "/v1/jobs:batch" in doc["paths"]
        assert "$defs" not in json.dumps(doc)

    def test_unknown_route_and_wrong_method_are_json(self) -> None:
        code, body, _ = self.call("GET", "/nope", token=None)
        assert code == 404
        self.assert_error(code, body, "not_found")
        code, body, response = self.call("DELETE", "/v1/jobs")
        assert code == 405
        self.assert_error(code, body, "method_not_allowed")
        assert response.headers["Allow"] == "GET, POST"
        code, body, _ = self.call("POST", "/healthz", {}, token=None)
        assert code == 405
        assert self.queued() == 0


class Item(BaseModel):
    sku: str


class Order(BaseModel):
    items: list[Item]


@task(name="shop.order", payload=Order, version="2.0")
def order(ctx: TaskContext, payload: Order) -> None:
    """Take an order."""


def test_openapi_document_is_valid_and_hoists_nested_definitions() -> None:
    import openapi_spec_validator as validator

    registry = TaskRegistry([order])
    registry.register_module(demo)
    doc = openapi_document(registry)
    validator.validate(doc)
    schemas = doc["components"]["schemas"]
    assert schemas["ShopOrderPayload"]["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/ShopOrder_Item"
    }
    assert schemas["ShopOrder_Item"]["required"] == ["sku"]
    assert "$defs" not in json.dumps(doc)


SERVE_SCRIPT = """
import sys
import tornado_tasks.demo.handlers as demo
from tornado_core.registry import TaskRegistry
from tornado_core.toolchain.testing import memory_services
from tornado_core.web import serve

def build():
    registry = TaskRegistry()
    registry.register_module(demo)
    return memory_services(registry)

serve(build, port=int(sys.argv[1]), processes=int(sys.argv[2]))
"""


@pytest.mark.parametrize("processes", [1, 2])
def test_serve_stops_cleanly_on_sigterm(processes: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT, str(port), str(processes)])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    assert json.loads(answer.read()) == {"status": "ok"}
                    break
            except OSError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
