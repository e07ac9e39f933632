"""The Python client: one kept-alive connection per thread, bulk submits, the API's errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tornado_core import ApiError, TornadoClient


class FakeApi(BaseHTTPRequestHandler):
    """Answers like the API's batch endpoint, and notes which client connection each call used."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.client_address[1], self.path, len(body.get("jobs", []))))  # type: ignore[attr-defined]
        if self.path == "/v1/jobs:batch":
            refused = {"code": "task_unknown", "message": "x"}
            results = [
                {"index": n, "error": refused} if job["task"] == "nope"
                else {"index": n, "id": f"id-{job['payload']['n']}", "status": "queued"}
                for n, job in enumerate(body["jobs"])
            ]  # fmt: skip
            self.answer(200, {"accepted": 0, "rejected": 0, "results": results})
        else:
            down = {"error": {"code": "queue_unavailable", "message": "down"}}
            self.answer(503, down, {"Retry-After": "5"})

    def do_GET(self) -> None:
        self.server.seen.append((self.client_address[1], self.path, 0))  # type: ignore[attr-defined]
        self.answer(200, {"id": self.path.rsplit("/", 1)[-1], "status": "queued"})

    def answer(self, status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        every = {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}
        for name, value in every.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        """Quiet."""


@pytest.fixture
def api() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_port}"


def test_one_thread_makes_every_call_on_one_connection(api: ThreadingHTTPServer) -> None:
    client = TornadoClient(url(api), "tnd_token")
    for n in range(20):
        assert client.get(f"job-{n}")["id"] == f"job-{n}"
    ports = {port for port, _path, _size in api.seen}  # type: ignore[attr-defined]
    assert len(api.seen) == 20 and len(ports) == 1  # type: ignore[attr-defined]


def test_a_connection_the_api_closed_while_idle_is_reopened_silently(api: ThreadingHTTPServer) -> None:
    client = TornadoClient(url(api), "tnd_token")
    client.get("first")
    client._local.connection.sock.shutdown(2)  # as if the server's idle timeout had closed it
    assert client.get("second")["id"] == "second"
    assert len({port for port, _p, _s in api.seen}) == 2  # type: ignore[attr-defined]


def test_submit_many_sends_chunks_and_numbers_results_across_them(api: ThreadingHTTPServer) -> None:
    client = TornadoClient(url(api), "tnd_token")
    jobs = [{"task": "nope" if n == 7 else "demo.echo", "payload": {"n": n}} for n in range(1_050)]
    results = client.submit_many(jobs)
    assert [size for _port, path, size in api.seen if path == "/v1/jobs:batch"] == [500, 500, 50]  # type: ignore[attr-defined]
    assert [r["index"] for r in results] == list(range(1_050))
    assert results[7]["error"]["code"] == "task_unknown"
    assert results[1_049]["id"] == "id-1049"


def test_parallel_bulk_submit_keeps_the_order_and_uses_several_connections(api: ThreadingHTTPServer) -> None:
    client = TornadoClient(url(api), "tnd_token")
    jobs = [{"task": "nope" if n == 333 else "demo.echo", "payload": {"n": n}} for n in range(1_000)]
    results = client.submit_many(jobs, chunk=100, parallel=4)
    batches = [(port, size) for port, path, size in api.seen if path == "/v1/jobs:batch"]  # type: ignore[attr-defined]
    assert sorted(size for _port, size in batches) == [100] * 10
    assert len({port for port, _size in batches}) > 1  # more than one connection carried them
    assert [r["index"] for r in results] == list(range(1_000))
    assert [r.get("id") for r in results[:3]] == ["id-0", "id-1", "id-2"]
    assert results[333]["error"]["code"] == "task_unknown" and results[999]["id"] == "id-999"


def test_an_error_answer_keeps_its_code_and_headers(api: ThreadingHTTPServer) -> None:
    with pytest.raises(ApiError) as refused:
        TornadoClient(url(api), "tnd_token").submit("demo.echo", {"n": 1})
    assert (refused.value.status, refused.value.code) == (503, "queue_unavailable")
    assert refused.value.headers["Retry-After"] == "5"
