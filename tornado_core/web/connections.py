"""Bounded connections: a cap with a clear refusal, and the open-files limit it is derived from.

Each connection holds a file descriptor. With the common limit of 1,024, slow clients used to
exhaust it and make the API unreachable (the accept loop then fails on EMFILE). The API raises
its soft limit to the hard one, keeps a share for its own backends, and answers a connection
over the cap at once with a complete JSON 503 instead of letting it wait or fail.
Slow bodies (``Settings.body_timeout``) and idle connections are cut off by
:class:`~tornado_core.web.deadlines.ConnectionDeadlines`, one sweep instead of two timers per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import socket
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPConnection, HTTPMessageDelegate
from tornado.ioloop import PeriodicCallback
from tornado.iostream import IOStream, StreamClosedError

from tornado_core.web.deadlines import ConnectionDeadlines

_log = logging.getLogger(__name__)

#: Descriptors kept for the process itself: database pools, HTTP clients, logs, listeners.
RESERVED_FILES = 256
#: Seconds a refused connection is read (and discarded) after its answer, so the client gets
#: the answer rather than a reset caused by unread request bytes.
REFUSAL_LINGER = 2.0
#: Seconds a connection may wait to send a request when the server is not told otherwise.
IDLE_CONNECTION_TIMEOUT = 3600.0


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

    def initialize(
        self,
        *args: Any,
        max_connections: int = 0,
        idle_connection_timeout: float | None = None,
        body_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        """Take the cap and the two timeouts (kept by one sweep); the rest goes to ``HTTPServer``."""
        super().initialize(*args, **kwargs)
        self.conn_params.header_timeout = None  # no timer per request: the sweep keeps both
        self.conn_params.body_timeout = None
        self.deadlines = ConnectionDeadlines(
            idle_timeout=idle_connection_timeout or IDLE_CONNECTION_TIMEOUT, body_timeout=body_timeout
        )
        self._sweeper: PeriodicCallback | None = None
        self.max_connections = max_connections
        self.refused = 0
        self._refusing: set[asyncio.Future[None]] = set()

    def start_request(self, server_conn: object, request_conn: HTTPConnection) -> HTTPMessageDelegate:
        """The application's delegate for the next request, its deadlines watched."""
        return self.deadlines.watch(request_conn, super().start_request(server_conn, request_conn))

    def stop(self) -> None:
        """Stop listening and sweeping."""
        super().stop()
        if self._sweeper is not None:
            self._sweeper.stop()

    def handle_stream(self, stream: IOStream, address: tuple[Any, ...]) -> None:
        """Serve the connection, or refuse it when the cap is reached."""
        if self._sweeper is None:  # on the first connection: the event loop runs by then
            self._sweeper = PeriodicCallback(self.deadlines.sweep, self.deadlines.sweep_interval * 1000)
            self._sweeper.start()
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
