"""Traces and logs across real processes: the API's request, the worker's job and its SQL are one trace.

A loopback OTLP/HTTP receiver (protobuf, as a collector takes it) stands in for the collector; the
API and a worker export to it because ``OTEL_EXPORTER_OTLP_ENDPOINT`` says so, and flush what they
hold when they stop gracefully.
"""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient


class Receiver(ThreadingHTTPServer):
    """Keeps every span posted to ``/v1/traces``, with the ``service.name`` that sent it."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Export)
        self.spans: list[tuple[str, Span]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def collected(self) -> list[Span]:
        with self.lock:
            return [span for _service, span in self.spans]


class _Export(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        found = [
            (_service_name(resource.resource.attributes), span)
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        with self.server.lock:
            self.server.spans.extend(found)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _service_name(attributes: Any) -> str:
    return next((a.value.string_value for a in attributes if a.key == "service.name"), "")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def traced(e2e_env: dict[str, str], receiver: Receiver, tmp_path: Path) -> Iterator[LocalCluster]:
    """An API and workers exporting to the receiver, whose spans leave only when flushed: the batch
    delay is an hour, so what arrives was sent by the graceful stop. Their logs are left to ``auto``."""
    env = {**e2e_env, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "3600000"}
    cluster = LocalCluster(env, tmp_path / "logs")
    yield cluster
    cluster.stop_all(grace=20)


def hexed(raw: bytes) -> str:
    return raw.hex()


def attributes(span: Span) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for attribute in span.attributes:
        value = attribute.value
        found[attribute.key] = value.int_value if value.HasField("int_value") else value.string_value
    return found


def spans_of(receiver: Receiver, job_id: str) -> dict[str, Span]:
    """The spans of the job's trace, by name."""
    spans = receiver.collected()
    [job] = [s for s in spans if s.name == "process demo.sleep" and attributes(s)["tornado.job_id"] == job_id]
    return {span.name: span for span in spans if span.trace_id == job.trace_id}


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_a_job_is_one_trace_from_the_request_to_its_sql_and_its_logs_say_so(
    traced: LocalCluster, receiver: Receiver, tenant_token: str
) -> None:
    _api, url = traced.start_api()
    worker = traced.start_worker("demo.sleep", concurrency=2, extra=["--poll-wait", "1"])
    client = TornadoClient(url, tenant_token)
    payload = {"seconds": 0, "steps": 1, "record_effect": True}
    receipt = client.submit("demo.sleep", payload, idempotency_key=f"traced-{uuid.uuid4().hex}")
    assert client.wait(receipt["id"], timeout=60)["status"] == "succeeded"
    assert set(traced.stop_all(grace=20).values()) == {0}  # SIGTERM: each flushes its spans as it stops
    found = spans_of(receiver, receipt["id"])
    request, send, job = found["POST /v1/jobs"], found["send demo.sleep"], found["process demo.sleep"]
    transaction, insert = found["rds transaction"], found["INSERT demo_effects"]
    chain = [request, send, job, transaction, insert]
    assert [span.parent_span_id for span in chain[1:]] == [span.span_id for span in chain[:-1]]
    kinds = [span.kind for span in chain]
    assert (
        kinds
        == [Span.SPAN_KIND_SERVER, Span.SPAN_KIND_PRODUCER, Span.SPAN_KIND_CONSUMER]
        + [Span.SPAN_KIND_CLIENT] * 2
    )
    assert attributes(request)["http.response.status_code"] == 202
    assert attributes(job)["tornado.outcome"] == "succeeded" and attributes(job)["tornado.attempt"] == 1
    trace_id = hexed(job.trace_id)

    logged = [line for line in json_lines(worker.log_path) if line.get("job_id") == receipt["id"]]
    assert any("succeeded in" in line["message"] for line in logged)
    assert all(line["trace_id"] == trace_id and line["span_id"] == hexed(job.span_id) for line in logged)
    assert all(line["tenant"] == attributes(job)["tornado.tenant"] for line in logged)
