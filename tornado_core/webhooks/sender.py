"""POSTing one delivery over HTTP(S) with the standard library: a 2xx or why not, and how long it took."""

from __future__ import annotations

import http.client
import ssl
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from tornado_core.ports.webhooks import AttemptResult

#: Sends one POST: ``(url, body, headers, timeout) -> AttemptResult``; never raises.
Sender = Callable[[str, bytes, Mapping[str, str], float], AttemptResult]

#: Bytes of a receiver's answer read at most (only its status matters).
_MAX_ANSWER = 64 * 1024


def http_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> AttemptResult:
    """POST ``body`` to ``url``; redirects are not followed (a 3xx is a failed attempt).

    Args:
        url: An http or https URL.
        body: The bytes to send.
        headers: Request headers.
        timeout: Seconds for connecting and for each read.

    Returns:
        The status code, or the error that stopped the request, and the duration.
    """
    started = time.monotonic()
    try:
        status = _post(url, body, headers, timeout)
    except TimeoutError:
        return _result(None, f"no answer within {timeout:g}s", started)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return _result(None, f"{type(exc).__name__}: {exc}"[:500], started)
    error = None if 200 <= status < 300 else f"HTTP {status}"
    return _result(status, error, started)


def _post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request("POST", target, body=body, headers=dict(headers))
        response = connection.getresponse()
        response.read(_MAX_ANSWER)
        return response.status
    finally:
        connection.close()


def _result(status: int | None, error: str | None, started: float) -> AttemptResult:
    return AttemptResult(
        status_code=status, error=error, duration_ms=int(1000 * (time.monotonic() - started))
    )
