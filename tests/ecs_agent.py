"""A stand-in for the ECS container agent's task-protection endpoint, on 127.0.0.1 (tests)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Calls = list[tuple[str, dict[str, Any]]]


class _Agent(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.calls.append((self.path, body))  # type: ignore[attr-defined]
        answer = json.dumps({"protection": {"ProtectionEnabled": body["ProtectionEnabled"]}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: Any) -> None:
        """Quiet."""


@contextmanager
def ecs_agent() -> Iterator[tuple[str, Calls]]:
    """Yields the agent's ``ECS_AGENT_URI`` and the (path, body) of every call it gets."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Agent)
    server.calls = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/task-1", server.calls  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
