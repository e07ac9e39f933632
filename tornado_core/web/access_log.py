"""What every answered request leaves behind: its Prometheus counters and its access-log line."""

from __future__ import annotations

import logging

from tornado_core.observability.metrics import ApiMetrics

_access_log = logging.getLogger("tornado_core.web.access")


def record_answer(
    metrics: ApiMetrics | None, *, route: str, method: str, uri: str, status: int, seconds: float
) -> None:
    """Count an answered request and log it: quietly (DEBUG), or as a WARNING for a server error.

    Args:
        metrics: The API process's metrics (``None``: an application that is not the API's).
        route: The handler's name, never the raw URI (bounded metric labels).
        method: The request's HTTP method.
        uri: The request's URI, for the log line only.
        status: The status answered.
        seconds: Time from the request's headers to its answer.
    """
    if metrics is not None:
        metrics.request(route, method, status, seconds)
    level = logging.WARNING if status >= 500 else logging.DEBUG
    if _access_log.isEnabledFor(level):
        _access_log.log(level, "%d %s %s %.1fms", status, method, uri, 1000.0 * seconds)
