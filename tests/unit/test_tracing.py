"""Traces on in-memory services: one trace from the HTTP request to the handler's S3 and SQL calls."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from tornado_core.bootstrap import build_tracing
from tornado_core.errors import NonRetryable
from tornado_core.message import Envelope
from tornado_core.naming import queue_spec
from tornado_core.observability.logs import JsonFormatter, current_log_fields
from tornado_core.observability.tracing import Tracing
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.task import task
from tornado_core.task_context import TaskContext
from tornado_core.tokens import hash_token, new_token
from tornado_core.toolchain.testing import memory_services
from tornado_core.web import make_app
from tornado_core.worker.runner import Delivery, JobRunner, Outcome

ROOT = Path(__file__).resolve().parents[2]
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"


class KeyPayload(BaseModel):
    key: str


@task(name="trace.touch", payload=KeyPayload, version="1.0.0")
def touch(ctx: TaskContext, payload: KeyPayload) -> dict[str, bool]:
    ctx.s3.put(payload.key, b"touched")
    with ctx.rds.connection() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO touched (job_id) VALUES (%s)", (ctx.job_id,))
    ctx.logger.info("touched %s", payload.key)
    return {"touched": True}


@task(name="trace.fail", payload=KeyPayload, version="1.0.0")
def fail(ctx: TaskContext, payload: KeyPayload) -> None:
    raise NonRetryable(f"cannot touch {payload.key}")


@task(name="trace.parent", payload=KeyPayload, version="1.0.0")
def parent(ctx: TaskContext, payload: KeyPayload) -> dict[str, str]:
    return {"child": ctx.children.submit("trace.touch", {"key": payload.key}, key=payload.key)}


class FakeCursor:
    """Records what it was asked to run."""

    def __init__(self, executed: list[str]) -> None:
        self.executed, self.arraysize = executed, 1

    def execute(self, query: str, values: Sequence[Any] = ()) -> None:
        self.executed.append(query)

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class FakeDatabase:
    """A database whose connections record their statements."""

    def __init__(self) -> None:
        self.executed: list[str] = []
        self.cursors: list[FakeCursor] = []

    @contextmanager
    def connection(self) -> Iterator[Any]:
        db = self

        class Connection:
            def cursor(self) -> FakeCursor:
                db.cursors.append(FakeCursor(db.executed))
                return db.cursors[-1]

        yield Connection()

    def close(self) -> None:
        return None


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def database() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def services(exporter: InMemorySpanExporter, database: FakeDatabase) -> Iterator[Services]:
    tracing = Tracing(exporter, batch=False)
    built = replace(memory_services([touch, fail, parent], rds=database), tracing=tracing)
    for spec in built.registry:
        built.queue.ensure_queue(queue_spec(built.settings.queue_prefix, spec))
    yield built
    tracing.close()


def token_of(services: Services, tenant: str = "acme") -> str:
    token = new_token()
    services.tenants.create(tenant, hash_token(token))
    return token


async def _fetch(services: Services, calls: list[tuple[str, str, Any, dict[str, str]]]) -> list[HTTPResponse]:
    app = make_app(services, plugins=())
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app, **app.http_server_options())
    server.add_sockets(sockets)
    base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    client = AsyncHTTPClient(force_instance=True)
    try:
        return [
            await client.fetch(
                base + path,
                method=method,
                headers={"Content-Type": "application/json", **headers},
                body=None if body is None else json.dumps(body),
                raise_error=False,
            )
            for method, path, body, headers in calls
        ]
    finally:
        client.close()
        server.stop()
        await app.aclose()


def fetch(services: Services, *calls: tuple[str, str, Any, dict[str, str]]) -> list[HTTPResponse]:
    return asyncio.run(_fetch(services, list(calls)))


def submit(services: Services, token: str, task_name: str, key: str, **headers: str) -> str:
    auth = {"Authorization": f"Bearer {token}", **headers}
    [response] = fetch(services, ("POST", "/v1/jobs", {"task": task_name, "payload": {"key": key}}, auth))
    assert response.code == 202, response.body
    return str(json.loads(response.body)["id"])


def run_one(services: Services, task_name: str) -> Outcome:
    queue = queue_spec(services.settings.queue_prefix, services.registry.get(task_name)).name
    [message] = services.queue.receive(queue, max_messages=1, wait_seconds=0, visibility_timeout=30)
    runner = JobRunner(services, services.registry.get(task_name), worker_id="w")
    return runner.run(Delivery.received(queue, message, started=time.monotonic()))


@contextmanager
def json_lines(name: str, level: int) -> Iterator[io.StringIO]:
    """What logger ``name`` writes, as JSON lines, while the block runs."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield written
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def parent_of(span: ReadableSpan) -> str | None:
    return format(span.parent.span_id, "016x") if span.parent is not None else None


def test_the_request_the_send_the_job_and_its_calls_are_one_trace(
    services: Services, exporter: InMemorySpanExporter, database: FakeDatabase
) -> None:
    job_id = submit(services, token_of(services), "trace.touch", "k1")
    assert run_one(services, "trace.touch") is Outcome.SUCCEEDED
    spans = by_name(exporter)
    request, send, job = spans["POST /v1/jobs"], spans["send trace.touch"], spans["process trace.touch"]
    put, transaction, insert = spans["S3.PutObject"], spans["rds transaction"], spans["INSERT touched"]
    chain = [request, send, job, transaction, insert]
    assert len({ids(span)[0] for span in [*chain, put]}) == 1
    assert [parent_of(span) for span in chain[1:]] == [ids(span)[1] for span in chain[:-1]]
    assert parent_of(put) == ids(job)[1] and parent_of(request) is None
    kinds = [span.kind for span in (request, send, job, put, insert)]
    assert kinds == [SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.CLIENT, SpanKind.CLIENT]
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 202
    assert request.attributes["tornado.tenant"] == "acme" and request.attributes["http.route"] == "/v1/jobs"
    assert send.attributes is not None and send.attributes["tornado.job_id"] == job_id
    assert job.attributes is not None and dict(job.attributes).items() >= {
        "tornado.job_id": job_id, "tornado.task": "trace.touch", "tornado.version": "1.0.0",
        "tornado.tenant": "acme", "tornado.attempt": 1, "tornado.outcome": "succeeded",
    }.items()  # fmt: skip
    assert put.attributes is not None and put.attributes["aws.s3.key"] == "k1"
    assert insert.attributes is not None and insert.attributes["db.collection.name"] == "touched"
    assert database.executed == ["INSERT INTO touched (job_id) VALUES (%s)"]  # the proxy ran it, once


def test_the_api_continues_the_callers_trace(services: Services, exporter: InMemorySpanExporter) -> None:
    header = f"00-{CALLER_TRACE}-b7ad6b7169203331-01"
    submit(services, token_of(services), "trace.touch", "k2", traceparent=header)
    run_one(services, "trace.touch")
    spans = by_name(exporter)
    assert ids(spans["POST /v1/jobs"])[0] == CALLER_TRACE == ids(spans["process trace.touch"])[0]
    assert parent_of(spans["POST /v1/jobs"]) == "b7ad6b7169203331"


def test_a_failed_job_records_its_error_on_its_span(
    services: Services, exporter: InMemorySpanExporter
) -> None:
    submit(services, token_of(services), "trace.fail", "k3")
    assert run_one(services, "trace.fail") is Outcome.DEAD
    job = by_name(exporter)["process trace.fail"]
    assert job.status.status_code is StatusCode.ERROR and "cannot touch k3" in (job.status.description or "")
    assert job.attributes is not None and job.attributes["tornado.outcome"] == "dead"
    assert [event.name for event in job.events] == ["exception"]


def test_a_child_job_joins_its_parents_trace(services: Services, exporter: InMemorySpanExporter) -> None:
    submit(services, token_of(services), "trace.parent", "child-key")
    assert run_one(services, "trace.parent") is Outcome.SUCCEEDED
    assert run_one(services, "trace.touch") is Outcome.SUCCEEDED
    spans = by_name(exporter)
    parent_job, child_job = spans["process trace.parent"], spans["process trace.touch"]
    assert ids(child_job)[0] == ids(parent_job)[0]
    assert parent_of(child_job) == ids(parent_job)[1]


def test_routes_name_spans_without_their_ids_unknown_paths_by_method_and_probes_not_at_all(
    services: Services, exporter: InMemorySpanExporter
) -> None:
    token = token_of(services)
    job_id = submit(services, token, "trace.touch", "k4")
    auth = {"Authorization": f"Bearer {token}"}
    calls = [("GET", f"/v1/jobs/{job_id}", None, auth), ("GET", "/nowhere/123", None, {})]
    responses = fetch(services, *calls, ("GET", "/healthz", None, {}))
    assert [r.code for r in responses] == [200, 404, 200]
    names = [span.name for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]
    assert names == ["POST /v1/jobs", "GET /v1/jobs/{}", "GET"]


def test_the_api_log_lines_of_a_request_carry_its_tenant_and_trace(
    services: Services, exporter: InMemorySpanExporter
) -> None:
    with json_lines("tornado_core.web.access", logging.DEBUG) as written:
        submit(services, token_of(services), "trace.touch", "k5")
    [line] = [json.loads(text) for text in written.getvalue().splitlines()]
    request = by_name(exporter)["POST /v1/jobs"]
    assert (line["tenant"], line["trace_id"], line["span_id"]) == ("acme", *ids(request))
    assert current_log_fields() == {}  # bound in the request's own task, never here


def test_the_worker_log_lines_of_a_job_carry_its_id_and_trace(
    services: Services, exporter: InMemorySpanExporter
) -> None:
    job_id = submit(services, token_of(services), "trace.touch", "k6")
    with json_lines("tornado.worker", logging.INFO) as written:
        run_one(services, "trace.touch")
    lines = [json.loads(text) for text in written.getvalue().splitlines()]
    job = by_name(exporter)["process trace.touch"]
    said = [line for line in lines if "touched k6" in line["message"]]
    assert said and all(line["job_id"] == job_id for line in said)
    assert all((line["trace_id"], line["span_id"]) == ids(job) for line in said)
    assert all(line["tenant"] == "acme" and line["task"] == "trace.touch" for line in said)


def test_a_batch_carries_the_requests_context_into_every_envelope(
    services: Services, exporter: InMemorySpanExporter
) -> None:
    token = token_of(services)
    items = [{"task": "trace.touch", "payload": {"key": key}} for key in ("b1", "b2")]
    auth = {"Authorization": f"Bearer {token}"}
    [response] = fetch(services, ("POST", "/v1/jobs:batch", {"jobs": items}, auth))
    assert response.code == 200, response.body
    queue = queue_spec(services.settings.queue_prefix, services.registry.get("trace.touch")).name
    received = services.queue.receive(queue, max_messages=10, wait_seconds=0, visibility_timeout=30)
    request = by_name(exporter)["POST /v1/jobs:batch"]
    trace_id, span_id = ids(request)
    parents = {tuple(str(Envelope.from_json(m.body).traceparent).split("-")[1:3]) for m in received}
    assert len(received) == 2 and parents == {(trace_id, span_id)}


def test_an_envelope_without_a_traceparent_still_reads_and_writes_none() -> None:
    old = '{"job_id":"j","task":"t","version":"1","tenant":"acme","payload":{},"submitted_at":1.0,"schema":1}'
    envelope = Envelope.from_json(old)
    assert envelope.traceparent is None and "traceparent" not in envelope.to_json()


# --- off by default --------------------------------------------------------------------------------


def test_settings_name_the_traces_endpoint_from_the_standard_variables() -> None:
    base = {"TORNADO_DATABASE_URL": "postgresql://x", "TORNADO_SECRET_KEY": "s"}
    assert Settings.load(base).traces_endpoint is None
    with_base = Settings.load({**base, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert with_base.traces_endpoint == "http://collector:4318/v1/traces"
    signal = {
        **base,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b/t",
    }
    assert Settings.load(signal).traces_endpoint == "http://b/t"
    assert Settings.load({**base, "OTEL_SERVICE_NAME": "erp-jobs"}).otel_service_name == "erp-jobs"


def test_build_tracing_makes_an_otlp_exporter_only_for_an_endpoint() -> None:
    settings = Settings(database_url="postgresql://x", secret_key="s")
    assert build_tracing(settings) is None
    tracing = build_tracing(replace(settings, otlp_endpoint="http://127.0.0.1:9"))
    assert isinstance(tracing, Tracing)
    tracing.close()


OFF = """
import asyncio, json, sys, time
import tornado_tasks.demo.handlers as demo
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado_core.bootstrap import build_tracing
from tornado_core.naming import queue_spec
from tornado_core.registry import TaskRegistry
from tornado_core.tokens import hash_token
from tornado_core.toolchain.testing import memory_services
from tornado_core.web import make_app
from tornado_core.worker.runner import Delivery, JobRunner

registry = TaskRegistry()
registry.register_module(demo)
services = memory_services(registry)
assert build_tracing(services.settings) is None and services.tracing is None
services.tenants.create("acme", hash_token("tok"))
spec = services.registry.get("demo.echo")
queue = queue_spec(services.settings.queue_prefix, spec).name
services.queue.ensure_queue(queue_spec(services.settings.queue_prefix, spec))

async def post():
    app = make_app(services, plugins=())
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/v1/jobs"
    body = json.dumps({"task": "demo.echo", "payload": {"message": "hi"}})
    headers = {"Authorization": "Bearer tok", "Content-Type": "application/json"}
    client = AsyncHTTPClient(force_instance=True)
    response = await client.fetch(url, method="POST", body=body, headers=headers)
    server.stop()
    await app.aclose()
    return response.code

assert asyncio.run(post()) == 202
[message] = services.queue.receive(queue, max_messages=1, wait_seconds=0, visibility_timeout=30)
assert "traceparent" not in json.loads(message.body)
delivery = Delivery.received(queue, message, started=time.monotonic())
outcome = JobRunner(services, spec, worker_id="w").run(delivery)
print(outcome, sorted(name for name in sys.modules if name.startswith("opentelemetry")))
"""


def test_with_no_endpoint_a_request_and_its_job_never_load_opentelemetry() -> None:
    result = subprocess.run(
        [sys.executable, "-c", OFF], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["succeeded", "[]"]
