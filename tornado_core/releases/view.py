"""What ``release status`` shows for one task version."""

from __future__ import annotations

from dataclasses import dataclass

from tornado_core.errors import QueueUnavailable
from tornado_core.naming import dead_letter_name
from tornado_core.ports.queue import QueueDepth, QueuePort
from tornado_core.ports.releases import ReleaseState, VersionRelease, VersionStats

_ORDER = {state: index for index, state in enumerate(ReleaseState)}


@dataclass(frozen=True, kw_only=True)
class VersionStatus:
    """One row of the status table.

    Attributes:
        release: The persisted release.
        role: How new jobs reach it (``current``, ``ramping 10%``, ``pinned: acme``) or ``""``.
        healthy: Healthy worker instances now.
        depth: Its queue's counts (``None`` if the queue does not exist).
        dead_letters: Messages in its DLQ (``None`` if it does not exist).
        stats: Job-store figures of all its jobs.
    """

    release: VersionRelease
    role: str
    healthy: int
    depth: QueueDepth | None
    dead_letters: int | None
    stats: VersionStats

    @property
    def sort_key(self) -> tuple[int, float]:
        """Live states first, then by last change."""
        return _ORDER[self.release.state], -self.release.updated_at

    def to_json(self) -> dict[str, object]:
        """A JSON-ready row (``release status --json``)."""
        r, s = self.release, self.stats
        return {
            "version": r.version,
            "state": str(r.state),
            "role": self.role,
            "runtime": r.runtime,
            "replicas": r.replicas,
            "healthy": self.healthy,
            "visible": self.depth.visible if self.depth else None,
            "in_flight": self.depth.in_flight if self.depth else None,
            "delayed": self.depth.delayed if self.depth else None,
            "dlq": self.dead_letters,
            "jobs": s.jobs,
            "succeeded": s.succeeded,
            "dead": s.dead,
            "success_rate": round(s.success_rate, 2),
            "error_rate": round(s.error_rate, 2),
            "detail": r.detail,
        }


def version_status(
    release: VersionRelease,
    *,
    role: str,
    healthy: int,
    queue: QueuePort,
    queue_name: str,
    stats: VersionStats,
) -> VersionStatus:
    """Gather one row (a queue that does not exist shows as unknown, not as an error)."""
    return VersionStatus(
        release=release,
        role=role,
        healthy=healthy,
        depth=_depth(queue, queue_name),
        dead_letters=(d.total if (d := _depth(queue, dead_letter_name(queue_name))) else None),
        stats=stats,
    )


def _depth(queue: QueuePort, name: str) -> QueueDepth | None:
    try:
        return queue.depth(name)
    except QueueUnavailable:
        return None
