"""Bounded connections: a cap with a clear refusal, and the open-files limit it is derived from.

Each connection holds a file descriptor. With the common limit of 1,024, slow clients used to
exhaust it and make the API unreachable (the accept loop then fails on EMFILE). The API raises
its soft limit to the hard one, keeps a share for its own backends, and answers a connection
over the cap at once with a complete JSON 503 instead of letting it wait or fail.
Slow bodies are bounded by ``Settings.body_timeout`` (``HTTPServer(body_timeout=...)``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream, StreamClosedError

_log = logging.getLogger(__name__)

#: Descriptors kept for the process itself: database pools, HTTP clients, logs, listeners.
RESERVED_FILES = 256
#: Seconds a refused connection is read (and discarded) after its answer, so the client gets
#: the answer rather than a reset caused by unread request bytes.
REFUSAL_LINGER = 2.0


def raise_open_files_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to its hard limit; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            _log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
    return soft


def connection_cap(configured: int, open_files: int) -> int:
    """The most client connections at once: ``configured``, or what the open-files limit allows."""
    if configured > 0:
        return configured
    return max(16, open_files - RESERVED_FILES)


class CappedHTTPServer(HTTPServer):
    """An ``HTTPServer`` that answers connections beyond ``max_connections`` with 503 and closes them.

    Keyword Args:
        max_connections: The cap (0: none).
    """

    def initialize(self, *args: Any, max_connections: int = 0, **kwargs: Any) -> None:
        """Take ``max_connections``; everything else goes to ``HTTPServer``."""
        super().initialize(*args, **kwargs)
        self.max_connections = max_connections
        self.refused = 0
        self._refusing: set[asyncio.Future[None]] = set()

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        """Serve the connection, or refuse it when the cap is reached."""
        if self.max_connections and len(self._connections) >= self.max_connections:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                _log.warning("connection cap of %d reached: %d refused", self.max_connections, self.refused)
            refusal = asyncio.ensure_future(_refuse(stream, self.max_connections))
            self._refusing.add(refusal)
            refusal.add_done_callback(self._refusing.discard)
            return
        super().handle_stream(stream, address)


async def _refuse(stream: IOStream, cap: int) -> None:
    message = f"the API holds {cap} connections, its limit; retry shortly"
    body = json.dumps({"error": {"code": "too_many_connections", "message": message}}).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Retry-After: 1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        await stream.write(head + body)
        stream.socket.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(stream.read_until_close(), timeout=REFUSAL_LINGER)
    except (StreamClosedError, TimeoutError, OSError):
        pass
    finally:
        stream.close()
