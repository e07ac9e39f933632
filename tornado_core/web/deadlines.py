"""Deadlines of client connections, kept without a timer per request: one sweep checks them all.

tornado's ``HTTPServer`` arms two timers for every request (``gen.with_timeout`` around the
headers and around the body). At thousands of requests a second those timers were a tenth of the
API's CPU. Here each request writes its connection's deadline into a dict as it moves on, and one
periodic sweep closes the connections that overstayed:

* waiting for a request's headers longer than ``idle_timeout`` (an idle keep-alive connection,
  or a client that connects and sends nothing);
* sending a request body longer than ``body_timeout`` (a slow or stalled upload).

While the handler runs nothing is watched here: the request deadline on the backends
(``Settings.request_deadline``) bounds that. A deadline is enforced within one sweep interval.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from tornado.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPMessageDelegate,
    RequestStartLine,
    ResponseStartLine,
)


class ConnectionDeadlines:
    """Deadlines of the connections of one server.

    Args:
        idle_timeout: Seconds a connection may wait before sending a request's headers.
        body_timeout: Seconds a client may take to send a request body (``None``: no limit).
    """

    def __init__(self, *, idle_timeout: float, body_timeout: float | None) -> None:
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout
        self._deadlines: dict[HTTPConnection, float] = {}
        self.closed = 0

    @property
    def sweep_interval(self) -> float:
        """Seconds between sweeps: a quarter of the shortest timeout, at most one second."""
        shortest = min(t for t in (self.idle_timeout, self.body_timeout) if t is not None)
        return min(1.0, shortest / 4)

    def watch(self, request: HTTPConnection, delegate: HTTPMessageDelegate) -> HTTPMessageDelegate:
        """Watch a request from the moment its connection waits for its headers."""
        self._deadlines[request] = time.monotonic() + self.idle_timeout
        return _WatchedRequest(delegate, self, request)

    def sweep(self) -> None:
        """Close the connections past their deadline (counted in :attr:`closed`); forget closed ones.

        A client that closes a kept-alive connection between requests is not reported to the
        request's delegate (tornado had not read its headers yet): it is forgotten here.
        """
        now = time.monotonic()
        for request, deadline in list(self._deadlines.items()):
            stream = getattr(request, "stream", None)  # an HTTP1Connection's; None once detached
            if stream is None or stream.closed():
                del self._deadlines[request]
            elif deadline <= now:
                del self._deadlines[request]
                stream.close()
                self.closed += 1

    def reading_body(self, request: HTTPConnection) -> None:
        """The headers are in: the body's deadline starts (or nothing is watched any more)."""
        if self.body_timeout is None:
            self._deadlines.pop(request, None)
        elif request in self._deadlines:
            self._deadlines[request] = time.monotonic() + self.body_timeout

    def done(self, request: HTTPConnection) -> None:
        """The request is read (or its connection closed): nothing to watch."""
        self._deadlines.pop(request, None)

    def __len__(self) -> int:
        return len(self._deadlines)


class _WatchedRequest(HTTPMessageDelegate):
    """Passes every event on to the application's delegate, moving the deadline as it goes."""

    __slots__ = ("_deadlines", "_inner", "_request")

    def __init__(self, inner: HTTPMessageDelegate, deadlines: ConnectionDeadlines, request: HTTPConnection):
        self._inner = inner
        self._deadlines = deadlines
        self._request = request

    def headers_received(
        self, start_line: RequestStartLine | ResponseStartLine, headers: HTTPHeaders
    ) -> Awaitable[None] | None:
        self._deadlines.reading_body(self._request)
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        self._deadlines.done(self._request)
        self._inner.finish()

    def on_connection_close(self) -> None:
        self._deadlines.done(self._request)
        self._inner.on_connection_close()
