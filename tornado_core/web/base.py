"""Base request handlers: JSON responses, the error shape, authentication, bounded bodies."""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from tornado.http1connection import HTTP1Connection
from tornado.log import app_log
from tornado.web import HTTPError, RequestHandler, stream_request_body

from tornado_core.errors import ApiError, TornadoError
from tornado_core.jsontext import compact
from tornado_core.observability.logs import bind_log_fields
from tornado_core.web.context import ApiContext
from tornado_core.web.errors import field_error, translate, unauthorized, unavailable
from tornado_core.web.requests import parse_json_object

if TYPE_CHECKING:
    from tornado_core.observability.tracing import RequestSpan

#: The only request and response media type of the API.
JSON_MEDIA_TYPE = "application/json"
_T = TypeVar("_T")
_EXPECTED = (ApiError, HTTPError, TornadoError)
#: Paths that probes and scrapers call every few seconds: no span (they would bury the jobs' traces).
_PROBES = frozenset({"/healthz", "/readyz", "/metrics"})


class BaseHandler(RequestHandler):
    """Writes JSON, turns every exception into the one error shape, never leaks tracebacks."""

    api: ApiContext
    _counted: bool
    #: The request's server span (``None`` when tracing is off), ended with the response.
    _span: RequestSpan | None
    #: The HTTP methods this handler class implements (set once per class, when it is defined).
    implemented_methods: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = ("GET", "POST", "PUT", "PATCH", "DELETE")
        cls.implemented_methods = tuple(
            m for m in names if getattr(cls, m.lower()) is not getattr(RequestHandler, m.lower())
        )

    def initialize(self, api: ApiContext) -> None:
        """Receive the shared API state (from the route table)."""
        self.api = api
        self._counted = True
        self._deadline: float | None = None
        api.in_flight += 1
        tracing, request = api.services.tracing, self.request
        self._span = None
        if tracing is not None and request.path not in _PROBES:
            self._span = tracing.start_request(request.method or "GET", request.path, request.headers)

    def set_default_headers(self) -> None:
        """JSON, not cached by intermediaries."""
        self.set_header("Content-Type", f"{JSON_MEDIA_TYPE}; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def compute_etag(self) -> str | None:
        """No ETags: job states change under the same URL."""
        return None

    async def run_blocking(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a blocking port call in the API's executor, within the request's deadline."""
        call = functools.partial(func, *args, **kwargs)
        return await self.within_deadline(asyncio.get_running_loop().run_in_executor(self.api.executor, call))

    async def within_deadline(self, work: Awaitable[_T]) -> _T:
        """Await ``work``, but no later than the request's deadline on its backends.

        The deadline (``Settings.request_deadline``) starts at the request's first backend call.
        A stalled backend gets the client a 503 with ``Retry-After``, never a hang.

        Raises:
            ApiError: 503 ``backend_timeout`` when the deadline passes first.
        """
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self.api.request_deadline
        return await within_request_deadline(self.api, work, self._deadline)

    def on_finish(self) -> None:
        """Count the request as done (graceful shutdown waits for in-flight requests)."""
        self._uncount()

    def on_connection_close(self) -> None:
        """The client went away (or its body was refused mid-stream): not in flight any more."""
        super().on_connection_close()
        self._uncount()

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self.api.in_flight -= 1
            if self._span is not None:
                unmatched = type(self) is self.application.settings.get("default_handler_class")
                self._span.end(self.get_status(), None if unmatched else route_template(self))

    def write_json(self, data: Any, status: int = 200) -> None:
        """Finish the response with ``data`` as JSON."""
        self.set_status(status)
        self.finish(compact(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Render any error as ``{"error": {...}}`` (tornado calls this on every failure)."""
        exc_info = kwargs.get("exc_info")
        error = translate(exc_info[1] if exc_info else HTTPError(status_code))
        self.clear_header("Allow")
        if error.status == 405:
            self.set_header("Allow", ", ".join(self.implemented_methods))
        for name, value in error.headers.items():
            self.set_header(name, value)
        self.set_status(error.status)
        self.finish(compact(error.body()))

    def query_argument(self, name: str) -> str | None:
        """The query parameter ``name``, or ``None``.

        Raises:
            ApiError: 400 ``parameter_invalid`` if it is given more than once.
        """
        values = self.get_query_arguments(name)
        if len(values) > 1:
            raise field_error(400, "parameter_invalid", name, "must be given at most once")
        return values[0] if values else None

    def refuse_unknown_method(self) -> None:
        """405 (with ``Allow``) for a method this handler does not implement, before anything else."""
        if self.request.method not in self.implemented_methods:
            raise HTTPError(405)

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Log only unexpected errors; :func:`translate` logs them unless the response was sent."""
        if self._finished and value is not None and not isinstance(value, _EXPECTED):
            app_log.error("error after the response was sent", exc_info=(typ, value, tb))  # type: ignore[arg-type]


async def within_request_deadline(api: ApiContext, work: Awaitable[_T], deadline: float) -> _T:
    """Await ``work`` until the loop time ``deadline`` (see :meth:`BaseHandler.within_deadline`).

    Raises:
        ApiError: 503 ``backend_timeout`` when the deadline passes first.
    """
    try:
        async with api.timeouts.at(deadline):  # no timer of its own, no extra task
            return await work
    except TimeoutError:
        raise unavailable(
            "backend_timeout",
            f"a backend did not answer within {api.request_deadline:g} s; retry later "
            "(an idempotency key makes the retry safe: whether this request was queued is unknown)",
        ) from None


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; ``None`` if there is none."""
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def media_type(header: str | None) -> str:
    """The media type of a ``Content-Type`` header, without its parameters, in lower case."""
    return (header or "").split(";")[0].strip().lower()


def route_template(handler: RequestHandler) -> str:
    """The path a request matched with its captured parts as ``{}`` (``/v1/jobs/{}:cancel``).

    Spans are named after it, so that one route is one name whatever ids its requests carry.
    """
    path = handler.request.path
    head, tail = path, ""
    for argument in reversed(getattr(handler, "path_args", None) or []):
        before, found, after = head.rpartition(argument)
        if not found or not argument:  # an escaped id: the raw path, rather than a wrong template
            return path
        head, tail = before, "{}" + after + tail
    return head + tail


class AuthenticatedHandler(BaseHandler):
    """Requires ``Authorization: Bearer <token>``; sets :attr:`tenant`."""

    tenant: str

    async def prepare(self) -> None:
        """Refuse a method this resource does not have, then authenticate (before any body)."""
        self.refuse_unknown_method()
        token, tokens = bearer_token(self.request.headers.get("Authorization")), self.api.tokens
        if token is None:
            raise unauthorized("missing bearer token (Authorization: Bearer <token>)")
        grant = tokens.cached_grant(token) or await self.within_deadline(tokens.grant_for(token))
        if grant is None:
            raise unauthorized("unknown or revoked token")
        if not self.api.tokens.valid(grant):
            raise unauthorized("expired token (`tornado tenants rotate` gives a new one)")
        self.tenant = grant.tenant
        # This request's own task from here on: its span is current (the enqueue path carries it
        # into envelopes) and its log lines carry the tenant and trace.
        trace_id, span_id = self._span.activate(grant.tenant) if self._span is not None else (None, None)
        bind_log_fields(tenant=grant.tenant, trace_id=trace_id, span_id=span_id)
        wait = self.api.quotas.take(grant.tenant, grant.requests_per_second)
        if wait > 0:
            raise ApiError(
                429, "rate_limited", f"tenant {grant.tenant!r} is over its request quota; retry later",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )  # fmt: skip


@stream_request_body
class JsonBodyHandler(AuthenticatedHandler):
    """Receives a bounded JSON body; answers 413 and 415 as JSON before reading it.

    The body is streamed so an oversized request is refused from its headers (or,
    for chunked bodies, as soon as it crosses the limit) instead of being buffered.
    """

    _chunks: list[bytes]
    _received: int
    _too_large: bool

    async def prepare(self) -> None:
        """Authenticate, then check size and content type from the headers."""
        self._chunks, self._received, self._too_large = [], 0, False
        limit = self.api.max_body_bytes
        # Let tornado read (and discard) up to twice the limit, so an oversized body
        # still gets our JSON 413 instead of a bare connection-level error.
        if isinstance(self.request.connection, HTTP1Connection):
            self.request.connection.set_max_body_size(2 * limit + 1024 * 1024)
        await super().prepare()
        if self.request.method not in ("POST", "PUT", "PATCH"):
            return
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            self._refuse_too_large()
        if media_type(self.request.headers.get("Content-Type")) != JSON_MEDIA_TYPE:
            raise ApiError(415, "unsupported_media_type", f"send the body as {JSON_MEDIA_TYPE}")

    def data_received(self, chunk: bytes) -> None:
        """Collect the body until it crosses the limit; answer 413 before the reading stops."""
        self._received += len(chunk)
        if self._received > self.api.max_body_bytes:
            self._too_large, self._chunks = True, []
            # Tornado cuts a body off at twice the limit (plus 1 MiB) with a bare 400: answer
            # first, so that clients reading as they send (curl) get the JSON 413.
            if self._received > 2 * self.api.max_body_bytes and not self._finished:
                error = self._too_large_error()
                self.send_error(error.status, exc_info=(type(error), error, None))
        elif not self._too_large:
            self._chunks.append(chunk)

    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object.

        Raises:
            ApiError: 413, 400 or 422 (see :func:`parse_json_object`).
        """
        if self._too_large:
            self._refuse_too_large()
        return parse_json_object(b"".join(self._chunks))

    @property
    def body_size(self) -> int:
        """Bytes of body received."""
        return self._received

    def _refuse_too_large(self) -> None:
        raise self._too_large_error()

    def _too_large_error(self) -> ApiError:
        message = f"the body exceeds {self.api.max_body_bytes} bytes"
        return ApiError(413, "body_too_large", message, headers={"Connection": "close"})
