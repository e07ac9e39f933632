"""A worker's ``/metrics`` endpoint: a small HTTP server on its own thread, with an optional bearer token."""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

logger = logging.getLogger("tornado.metrics")

_StartResponse = Callable[..., Any]


def bearer_matches(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (always true when no token is set).

    Args:
        header: The request's ``Authorization`` header, if any.
        token: The token ``/metrics`` requires (``TORNADO_METRICS_TOKEN``), or ``None``: open.
    """
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class MetricsServer:
    """Serves a registry at ``http://host:port/metrics`` until :meth:`close`.

    Args:
        registry: What to expose.
        host: Interface to listen on (``127.0.0.1`` unless Prometheus scrapes from elsewhere).
        port: TCP port (0 picks a free one: see :attr:`port`).
        token: When set, requests need ``Authorization: Bearer <token>`` (401 otherwise).

    Raises:
        OSError: The port cannot be bound.
    """

    def __init__(
        self, registry: CollectorRegistry, *, host: str, port: int, token: str | None = None
    ) -> None:
        exposition = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
            if not bearer_matches(environ.get("HTTP_AUTHORIZATION"), token):
                headers = [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="tornado"')]
                start_response("401 Unauthorized", headers)
                return [b"a bearer token is required (TORNADO_METRICS_TOKEN)\n"]
            return exposition(environ, start_response)  # type: ignore[no-any-return]

        self._server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        serve = self._server.serve_forever
        self._thread = threading.Thread(target=serve, name="tornado-metrics", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        """Start serving on its thread; returns itself."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


@contextmanager
def metrics_served(
    registry: CollectorRegistry, *, host: str, port: int, token: str | None = None
) -> Iterator[MetricsServer | None]:
    """``with metrics_served(...)``: :func:`start_metrics_server`, closed at the end of the block."""
    server = start_metrics_server(registry, host=host, port=port, token=token)
    try:
        yield server
    finally:
        if server is not None:
            server.close()


def start_metrics_server(
    registry: CollectorRegistry, *, host: str, port: int, token: str | None = None
) -> MetricsServer | None:
    """Serve ``registry`` on ``host:port``, or log why not and return ``None`` (a worker runs on).

    Args:
        registry: What to expose.
        host: Interface to listen on.
        port: TCP port; 0 means no server at all (several local workers never collide).
        token: The bearer token ``/metrics`` requires, or ``None``.
    """
    if not port:
        return None
    try:
        server = MetricsServer(registry, host=host, port=port, token=token).start()
    except OSError as exc:
        logger.error("metrics not served: cannot listen on %s:%d: %s", host, port, exc)
        return None
    logger.info("metrics on http://%s:%d/metrics", host, server.port)
    return server


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        """Drop it."""
