"""The queue snapshot: each known task version's queue counts, dead letters and oldest waiting job, now."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from tornado_core.errors import QueueUnavailable
from tornado_core.naming import dead_letter_name, queue_name
from tornado_core.ports.insights import JobFiguresPort, QueueSnapshot, VersionKey
from tornado_core.ports.queue import QueueDepth, QueuePort
from tornado_core.registry import TaskRegistry, version_sort_key

__all__ = ["QueueSnapshot", "known_versions", "snapshot_queues"]


def known_versions(registry: TaskRegistry, jobs: JobFiguresPort) -> list[VersionKey]:
    """Every task version in the registry, plus those the release store knows (not retired, or routed).

    Returns:
        ``(task, version)`` pairs by task, then version (``1.10`` after ``1.9``).
    """
    found = {(spec.name, spec.version) for spec in registry} | set(jobs.release_versions())
    return sorted(found, key=lambda key: (key[0], version_sort_key(key[1])))


def snapshot_queues(
    queue: QueuePort,
    jobs: JobFiguresPort,
    versions: Iterable[VersionKey],
    *,
    prefix: str,
    clock: Callable[[], float] = time.time,
) -> list[QueueSnapshot]:
    """The queue of each version now; a version whose queue does not exist is left out.

    Args:
        queue: The queue (SQS or PostgreSQL).
        jobs: The job store's figures (the oldest waiting job of each version).
        versions: ``(task, version)`` pairs, e.g. from :func:`known_versions`.
        prefix: The queue-name prefix (``settings.queue_prefix``).
        clock: Epoch seconds now (the ages are measured at this time).

    Returns:
        One snapshot per version whose queue exists, in the order of ``versions``.

    Raises:
        QueueUnavailable: The queue service itself does not answer.
        StoreUnavailable: The job store does not answer.
    """
    named = [(task, version, name) for task, version in versions if (name := _name(prefix, task, version))]
    depths = _Depths(queue)
    counted = [(t, v, n, d) for t, v, n in named if (d := depths.of(n)) is not None]
    now = datetime.fromtimestamp(clock(), UTC)
    ages = jobs.oldest_waiting([(t, v) for t, v, _, _ in counted], now=now)
    return [
        QueueSnapshot(
            task=task, version=version, queue=name,
            visible=depth.visible, in_flight=depth.in_flight, delayed=depth.delayed,
            dead_letters=dead.total if (dead := depths.of(dead_letter_name(name))) else 0,
            oldest_age=ages.get((task, version)),
        )
        for task, version, name, depth in counted
    ]  # fmt: skip


def _name(prefix: str, task: str, version: str) -> str | None:
    try:
        return queue_name(prefix, task, version)
    except ValueError:  # too long for SQS: no such queue was ever made
        return None


class _Depths:
    """Queue depths, where a missing queue is ``None`` and an unreachable service an error."""

    def __init__(self, queue: QueuePort) -> None:
        self._queue = queue
        self._answers = False

    def of(self, name: str) -> QueueDepth | None:
        try:
            return self._queue.depth(name)
        except QueueUnavailable:
            if not self._answers:
                self._queue.ping()  # raises when the service, not this queue, is the trouble
                self._answers = True
            return None
