"""The console's figures ports: job throughput, latencies and error rates; queue samples kept over time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

#: A task version by name: ``(task, version)``.
VersionKey = tuple[str, str]


@dataclass(frozen=True, kw_only=True)
class QueueSnapshot:
    """One task version's queue now: its counts, its dead letters and how long its oldest job has waited.

    Attributes:
        task: Task name.
        version: Task version.
        queue: Name of the version's work queue.
        visible: Messages ready to be received.
        in_flight: Messages received and hidden (running, or waiting for a retry).
        delayed: Messages sent with a delay and not visible yet.
        dead_letters: Messages in its dead-letter queue (0 if that queue does not exist).
        oldest_age: Seconds the oldest ``queued`` job of the version has waited (job store),
            ``None`` when none waits.
    """

    task: str
    version: str
    queue: str
    visible: int
    in_flight: int
    delayed: int
    dead_letters: int
    oldest_age: float | None


@dataclass(frozen=True, kw_only=True)
class QueueSample(QueueSnapshot):
    """A :class:`QueueSnapshot` as it was recorded at ``at`` (UTC)."""

    at: datetime


@dataclass(frozen=True, kw_only=True)
class Figures:
    """Figures of the jobs that finished in a window: one row per task version, or per task and tenant.

    ``finished`` counts the jobs that ran to an outcome: ``succeeded`` plus ``failed`` (``dead``
    or ``failed``). Cancelled jobs are counted apart in ``cancelled`` and left out of every other
    figure. Waits run from submission to the first start, runs from the first start to the end
    (retries and their back-off included).

    Attributes:
        task: Task name.
        version: Task version (``None`` on a per-tenant row).
        tenant: Tenant (``None`` on a per-version row).
        finished: Jobs that succeeded or failed in the window.
        succeeded: Jobs that succeeded.
        failed: Jobs dead-lettered or given up.
        cancelled: Jobs cancelled (not in ``finished``).
        per_minute: ``finished`` per minute of the window.
        error_rate: ``failed / finished`` (0..1; 0 when nothing finished).
        wait_p50: Median seconds from submission to start (``None``: no job started).
        wait_p95: 95th percentile of the waits.
        wait_p99: 99th percentile of the waits.
        run_p50: Median seconds from start to finish.
        run_p95: 95th percentile of the runs.
        run_p99: 99th percentile of the runs.
    """

    task: str
    version: str | None
    tenant: str | None
    finished: int
    succeeded: int
    failed: int
    cancelled: int
    per_minute: float
    error_rate: float
    wait_p50: float | None
    wait_p95: float | None
    wait_p99: float | None
    run_p50: float | None
    run_p95: float | None
    run_p99: float | None


class ThroughputBucket(NamedTuple):
    """Jobs that finished in one interval: ``(start, succeeded, failed)``."""

    start: datetime
    succeeded: int
    failed: int


class JobFiguresPort(Protocol):
    """Figures read from the job store, computed by the store itself (never row by row in Python).

    Methods raise ``StoreUnavailable`` when the store cannot be reached.
    """

    def version_figures(self, *, since: datetime, until: datetime) -> list[Figures]:
        """Figures per task version of the jobs finished in ``[since, until)``, by task and version."""

    def tenant_figures(
        self, *, since: datetime, until: datetime, task: str | None = None, limit: int = 50
    ) -> list[Figures]:
        """Figures per task and tenant of the jobs finished in ``[since, until)``, busiest first.

        Args:
            since: Start of the window.
            until: End of the window (excluded).
            task: Only this task's jobs (all tasks if ``None``).
            limit: Most rows returned.
        """

    def throughput(
        self, task: str, version: str | None, *, since: datetime, until: datetime, step: float
    ) -> list[ThroughputBucket]:
        """Succeeded and failed jobs per interval of ``step`` seconds, oldest first, empty ones included.

        Intervals start at multiples of ``step`` since the epoch; the first holds ``since`` and the
        last ``until``.

        Args:
            task: Task name.
            version: Only this version's jobs (every version if ``None``).
            since: Start of the window.
            until: End of the window.
            step: Seconds per interval (> 0).
        """

    def oldest_waiting(self, versions: Sequence[VersionKey], *, now: datetime) -> dict[VersionKey, float]:
        """Seconds the oldest ``queued`` job of each version has waited at ``now`` (none: left out)."""

    def release_versions(self) -> list[VersionKey]:
        """Task versions the release store knows: released and not retired, or routed."""


class QueueSamplesPort(Protocol):
    """Queue snapshots kept over time. Methods raise ``StoreUnavailable`` when the store cannot be reached."""

    def record_due(
        self, at: datetime, take: Callable[[], Sequence[QueueSnapshot]], *, interval: float
    ) -> int | None:
        """Record ``take()`` at ``at``, unless another recorder's turn overlaps this one.

        At most one recorder at a time across processes takes a turn, and only when the newest
        sample is at least ``interval`` seconds older than ``at``.

        Returns:
            Samples written, or ``None`` when it was not this caller's turn (``take`` not called).
        """

    def prune(self, before: datetime) -> int:
        """Delete the samples taken before ``before``; returns how many."""

    def series(self, queue: str, *, since: datetime) -> list[QueueSample]:
        """The samples of ``queue`` taken at or after ``since``, oldest first."""
