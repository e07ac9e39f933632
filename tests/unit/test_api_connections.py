"""Bounded connections: slow bodies are cut off, connections over the cap get a clear 503."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.testing import gen_test

from tests.unit.test_web_api import ApiTestCase
from tornado_core.web.connections import CappedHTTPServer, connection_cap

CAP = 5
BODY_TIMEOUT = 0.5
IDLE_TIMEOUT = 1.0


class ConnectionTestCase(ApiTestCase):
    """The test API behind the capped server, with a short body timeout."""

    def get_http_server(self) -> HTTPServer:
        options = self.get_httpserver_options()
        assert options["body_timeout"] == 30.0  # the API's own options bound slow bodies (Settings)
        assert options["idle_connection_timeout"] == 75.0
        options["body_timeout"] = BODY_TIMEOUT
        options["idle_connection_timeout"] = IDLE_TIMEOUT
        return CappedHTTPServer(self._app, max_connections=CAP, **options)

    def slow_body_client(self) -> socket.socket:
        """A client that sends its headers and a tenth of its body, then nothing."""
        sock = socket.create_connection(("127.0.0.1", self.get_http_port()), timeout=30)
        head = (
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {self.token_a}\r\nContent-Length: 100\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"task": "')
        return sock

    async def in_thread(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection, read to the end: status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while data := sock.recv(65536):
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def closed_by_server(sock: socket.socket) -> bool:
    """Blocks until the server ends the connection (the socket's timeout bounds it)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


class TestBoundedConnections(ConnectionTestCase):
    @gen_test(timeout=60)
    async def test_over_the_cap_a_client_gets_503_json_and_slow_bodies_are_cut_off(self) -> None:
        slow = [await self.in_thread(self.slow_body_client) for _ in range(CAP)]
        try:
            status, headers, body = await self.in_thread(get, self.get_http_port(), "/healthz")
            assert status == 503
            assert headers["Retry-After"] == "1"
            assert json.loads(body)["error"]["code"] == "too_many_connections"
            # The body timeout ends the slow clients, and with them the refusals.
            for sock in slow:
                assert await self.in_thread(closed_by_server, sock)
            status, _, body = await self.in_thread(get, self.get_http_port(), "/healthz")
            assert (status, json.loads(body)) == (200, {"status": "ok"})
        finally:
            for sock in slow:
                sock.close()
        assert self.queued() == 0


class TestConnectionDeadlines(ConnectionTestCase):
    @gen_test(timeout=60)
    async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.get_http_port()), timeout=30)
        try:
            assert await self.in_thread(closed_by_server, sock)
        finally:
            sock.close()
        server = self.http_server
        assert isinstance(server, CappedHTTPServer) and server.deadlines.closed == 1
        assert len(server.deadlines) == 0

    @gen_test(timeout=60)
    async def test_a_busy_keep_alive_connection_outlives_the_idle_timeout(self) -> None:
        answers = await self.in_thread(keep_alive_gets, self.get_http_port(), 6, IDLE_TIMEOUT / 3)
        assert answers == [200] * 6  # one connection for 6 requests over about twice the idle timeout
        server = self.http_server
        assert isinstance(server, CappedHTTPServer) and server.deadlines.closed == 0


def keep_alive_gets(port: int, count: int, pause: float) -> list[int]:
    """``count`` GET /healthz on one connection, ``pause`` seconds apart; their statuses."""
    statuses = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        stream = sock.makefile("rb")
        for _ in range(count):
            time.sleep(pause)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status = int(stream.readline().split()[1])
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            stream.read(length)
            statuses.append(status)
    return statuses


def test_the_cap_leaves_room_for_the_process_own_files() -> None:
    assert connection_cap(0, 1024) == 1024 - 256
    assert connection_cap(0, 100) == 16  # a tiny limit still serves someone
    assert connection_cap(50, 1024) == 50  # a configured cap wins


def test_the_api_raises_its_open_files_limit_to_the_hard_limit() -> None:
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "from tornado_core.web.connections import raise_open_files_limit\n"
        "soft = raise_open_files_limit()\n"
        "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
        "print(soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    soft, now, hard = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True).stdout.split())  # fmt: skip
    assert soft == now == min(hard, 1 << 20) > 256


class TestClosedConnectionsAreForgotten(ConnectionTestCase):
    @gen_test(timeout=60)
    async def test_a_keep_alive_connection_the_client_closes_is_forgotten_at_the_next_sweep(self) -> None:
        answers = await self.in_thread(keep_alive_gets, self.get_http_port(), 2, 0)  # then closes it
        assert answers == [200, 200]
        server = self.http_server
        assert isinstance(server, CappedHTTPServer)
        while len(server.deadlines):  # the sweep runs every quarter of the shortest timeout
            await asyncio.sleep(0.05)
        assert server.deadlines.closed == 0  # forgotten, not timed out
