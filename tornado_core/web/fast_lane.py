"""The fast lane of ``POST /v1/jobs`` and ``POST /v1/jobs:batch``: the API's most frequent requests,
answered below ``RequestHandler``.

A tornado ``RequestHandler`` costs about 50 µs of CPU per request before any of our code runs
(``bench/api_throughput.py`` shows it: a bare HTTP message delegate answers a trivial POST about
1.5 times as fast as a trivial handler). ``POST /v1/jobs`` is the call an ERP makes thousands of
times a second, and a batch the call of a bulk load, so when a request is the ordinary case it is
answered by a plain message delegate:

* ``POST /v1/jobs`` or ``POST /v1/jobs:batch`` exactly, no query string;
* a ``Content-Length`` within the body limit, no ``Transfer-Encoding`` or ``Content-Encoding``;
* ``Content-Type: application/json``;
* a bearer token already in the token cache, not expired, and the tenant within its quota;
* tracing off (a traced request takes the ordinary path, which opens its span).

Anything else goes to the ordinary handlers (:class:`~tornado_core.web.handlers.JobsHandler`,
:class:`~tornado_core.web.handlers.BatchHandler`), which answer every case. The lane runs the same
parsing, enqueue path, request deadline, error shape (:func:`~tornado_core.web.errors.translate`),
in-flight count, metrics and access log.
"""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate
from http.client import responses
from typing import TYPE_CHECKING

from tornado.httputil import (
    HTTPHeaders,
    HTTPMessageDelegate,
    RequestStartLine,
    ResponseStartLine,
)
from tornado.iostream import StreamClosedError

from tornado_core.jsontext import compact
from tornado_core.observability.logs import bind_log_fields
from tornado_core.web.access_log import record_answer
from tornado_core.web.base import JSON_MEDIA_TYPE, bearer_token, media_type, within_request_deadline
from tornado_core.web.enqueue import answer_status, batch_answer
from tornado_core.web.errors import translate
from tornado_core.web.requests import parse_batch, parse_job_request, parse_json_object

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from tornado.httputil import HTTPConnection

    from tornado_core.web.context import ApiContext

_BATCH_PATH = "/v1/jobs:batch"
#: The lane's paths, and the route each is counted under (the ordinary path's handler).
ROUTES = {"/v1/jobs": "JobsHandler", _BATCH_PATH: "BatchHandler"}
_RESPONSE_TYPE = f"{JSON_MEDIA_TYPE}; charset=utf-8"


class HttpDate:
    """The ``Date`` header's value, formatted once per second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        """Now as an HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
        second = int(time.time())
        if second != self._second:
            self._second, self._text = second, formatdate(second, usegmt=True)
        return self._text


class FastLane:
    """Decides, from a request's headers, whether the lane answers it.

    Args:
        api: The API's shared state.
    """

    def __init__(self, api: ApiContext) -> None:
        self.api = api
        self.date = HttpDate()
        #: Requests the lane answered (the others went to the routes).
        self.answered = 0

    def tenant_for(self, start_line: RequestStartLine, headers: HTTPHeaders) -> str | None:
        """The tenant whose ordinary ``POST`` of jobs these headers open; ``None``: not the lane's."""
        api = self.api
        if start_line.method != "POST" or start_line.path not in ROUTES or api.services.tracing is not None:
            return None
        length = headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > api.max_body_bytes:
            return None
        if "Transfer-Encoding" in headers or "Content-Encoding" in headers:
            return None
        if media_type(headers.get("Content-Type")) != JSON_MEDIA_TYPE:
            return None
        token = bearer_token(headers.get("Authorization"))
        grant = api.tokens.cached_grant(token) if token is not None else None
        if grant is None or not api.tokens.valid(grant):
            return None
        # A refusal takes no token from the bucket: the ordinary path asks again and answers 429.
        if api.quotas.take(grant.tenant, grant.requests_per_second) > 0:
            return None
        return grant.tenant


class LaneOrRoutes(HTTPMessageDelegate):
    """One request: handed to the lane or to the application's routes once its headers are read.

    Args:
        lane: The lane's decision.
        routes: The application's own ``start_request`` (its routes' delegate for a request).
        server_conn: The connection's server side, for ``routes``.
        request_conn: The request's connection (the lane writes its answer there).
    """

    __slots__ = ("_inner", "_lane", "_request_conn", "_routes", "_server_conn")

    def __init__(
        self,
        lane: FastLane,
        routes: Callable[[object, HTTPConnection], HTTPMessageDelegate],
        server_conn: object,
        request_conn: HTTPConnection,
    ) -> None:
        self._lane = lane
        self._routes = routes
        self._server_conn = server_conn
        self._request_conn = request_conn
        self._inner: HTTPMessageDelegate | None = None

    def headers_received(
        self, start_line: RequestStartLine | ResponseStartLine, headers: HTTPHeaders
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, RequestStartLine)  # a server only reads requests
        tenant = self._lane.tenant_for(start_line, headers)
        if tenant is not None:
            self._inner = _LaneRequest(self._lane, self._request_conn, tenant, start_line.path)
            return None
        self._inner = self._routes(self._server_conn, self._request_conn)
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        assert self._inner is not None
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        assert self._inner is not None
        self._inner.finish()

    def on_connection_close(self) -> None:
        if self._inner is not None:
            self._inner.on_connection_close()


class _LaneRequest(HTTPMessageDelegate):
    """An ordinary ``POST /v1/jobs`` or batch: collects its body, then queues the jobs and answers."""

    __slots__ = ("_chunks", "_closed", "_conn", "_lane", "_started", "_task", "_tenant", "_uri")

    def __init__(self, lane: FastLane, conn: HTTPConnection, tenant: str, uri: str) -> None:
        self._lane = lane
        self._conn = conn
        self._tenant = tenant
        self._uri = uri
        self._chunks: list[bytes] = []
        self._closed = False
        self._started = time.perf_counter()
        self._task: asyncio.Task[None] | None = None

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    def finish(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._answer())

    def on_connection_close(self) -> None:
        self._closed = True

    async def _answer(self) -> None:
        api = self._lane.api
        api.in_flight += 1
        status = 500
        try:
            status, text, extra = await self._outcome(api)
            self._write(status, text, extra)
        finally:
            api.in_flight -= 1
            self._lane.answered += 1
            seconds = time.perf_counter() - self._started
            record_answer(
                api.metrics,
                route=ROUTES[self._uri],
                method="POST",
                uri=self._uri,
                status=status,
                seconds=seconds,
            )

    async def _outcome(self, api: ApiContext) -> tuple[int, str, dict[str, str]]:
        bind_log_fields(tenant=self._tenant)
        body = b"".join(self._chunks)
        try:
            data = parse_json_object(body)
            deadline = asyncio.get_running_loop().time() + api.request_deadline
            if self._uri == _BATCH_PATH:
                batch = api.enqueuer.submit_batch(self._tenant, parse_batch(data), body_size=len(body))
                return 200, compact(batch_answer(await within_request_deadline(api, batch, deadline))), {}
            submitted = api.enqueuer.submit(self._tenant, parse_job_request(data), body_size=len(body))
            receipt = await within_request_deadline(api, submitted, deadline)
        except Exception as exc:  # every failure gets the API's one error shape, as on the ordinary path
            error = translate(exc)
            return error.status, compact(error.body()), error.headers
        return answer_status(receipt), compact(receipt), {}

    def _write(self, status: int, text: str, extra: dict[str, str]) -> None:
        if self._closed:
            return
        body = text.encode()
        headers = HTTPHeaders(
            {
                "Content-Type": _RESPONSE_TYPE,
                "Cache-Control": "no-store",
                "Date": self._lane.date.now(),
                "Content-Length": str(len(body)),
            }
        )
        for name, value in extra.items():
            headers[name] = value
        try:
            start_line = ResponseStartLine("HTTP/1.1", status, responses.get(status, "Unknown"))
            self._conn.write_headers(start_line, headers, body)
            self._conn.finish()
        except StreamClosedError:  # the client left while its job was being queued; the job stays queued
            pass
