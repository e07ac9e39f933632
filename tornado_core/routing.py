"""Version routing: which version of a task a new job goes to.

Temporal's worker-versioning model, copied onto queues: per task a *current*
version, an optional *ramping* version that gets a percentage of new jobs, and
tenant pins. The ramp bucket is a deterministic hash of the job id, so the same
job id (an idempotent re-submit) always lands on the same version. A job is
pinned to the version it was routed to: the envelope carries that version and
each version has its own queue.

Everything here is pure; the table (:class:`~tornado_core.ports.routes.RouteTable`) is stored
and cached by an adapter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from tornado_core.ports.routes import RouteTable

#: Buckets of the ramp: a job goes to the ramping version when its bucket < percent.
BUCKETS = 100

__all__ = ["BUCKETS", "RouteTable", "Router", "bucket", "choose_version"]


def bucket(job_id: str) -> int:
    """The job's ramp bucket in ``0..99``: the first 8 bytes of its SHA-256, modulo 100."""
    digest = hashlib.sha256(job_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def choose_version(route: RouteTable, tenant: str, job_id: str) -> str:
    """The version a new job goes to: tenant pin, else ramp bucket, else current."""
    pinned = route.pins.get(tenant)
    if pinned is not None:
        return pinned
    if route.ramping is not None and bucket(job_id) < route.ramp_percent:
        return route.ramping
    return route.current


class Router:
    """A :data:`~tornado_core.producer.submission.VersionResolver` over a route source.

    Args:
        routes: The route table of a task, or ``None`` when it has none (a cache).
        default: The version of a task without a route (the newest registered).
    """

    def __init__(self, routes: Callable[[str], RouteTable | None], default: Callable[[str], str]) -> None:
        self._routes = routes
        self._default = default

    def __call__(self, task: str, tenant: str, job_id: str) -> str:
        """The version a new job of ``task`` goes to."""
        route = self._routes(task)
        if route is None:
            return self._default(task)
        return choose_version(route, tenant, job_id)

    def fixed_version(self, task: str, tenant: str) -> str | None:
        """The version every new job of ``task`` by ``tenant`` goes to, or ``None`` when it depends on
        the job's id (a ramp): a batch asks once per task instead of once per job."""
        route = self._routes(task)
        if route is None:
            return self._default(task)
        pinned = route.pins.get(tenant)
        if pinned is not None:
            return pinned
        return route.current if route.ramping is None else None
