"""The console's figures: throughput, latency percentiles and error rates, queues now and over time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tornado_core.naming import queue_name
from tornado_core.observability.queues import known_versions, snapshot_queues
from tornado_core.ports.insights import (
    Figures,
    JobFiguresPort,
    QueueSample,
    QueueSamplesPort,
    QueueSnapshot,
    ThroughputBucket,
    VersionKey,
)
from tornado_core.services import Services

__all__ = ["ConsoleFigures", "Figures", "QueueSample", "QueueSnapshot", "ThroughputBucket"]


class ConsoleFigures:
    """What the console's pages show of the jobs and queues; every figure is computed by the stores.

    Args:
        services: The process's services (registry, queue, settings' queue prefix).
        jobs: Figures of the job store.
        samples: Queue samples kept over time (written by :class:`~.sampler.QueueSampler`).
        clock: Epoch seconds now; windows end at this time.
    """

    def __init__(
        self,
        services: Services,
        jobs: JobFiguresPort,
        samples: QueueSamplesPort,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._services = services
        self._jobs = jobs
        self._samples = samples
        self._clock = clock

    @property
    def samples(self) -> QueueSamplesPort:
        """The queue samples' store (what a :class:`~tornado_core.console.sampler.QueueSampler` writes to)."""
        return self._samples

    def now(self) -> datetime:
        """The figures' time now (UTC)."""
        return datetime.fromtimestamp(self._clock(), UTC)

    def per_version(self, *, window: timedelta = timedelta(hours=1)) -> list[Figures]:
        """Figures of each task version with jobs finished in the last ``window``, by task and version.

        Cancelled jobs are counted in ``cancelled`` only (see :class:`Figures`).
        """
        until = self.now()
        return self._jobs.version_figures(since=until - window, until=until)

    def per_tenant(
        self, *, window: timedelta = timedelta(hours=1), task: str | None = None, limit: int = 50
    ) -> list[Figures]:
        """Figures per task and tenant over the last ``window``, busiest first (``version`` is ``None``).

        Args:
            window: How far back.
            task: Only this task (every task if ``None``: one row per task and tenant).
            limit: Most rows.
        """
        until = self.now()
        return self._jobs.tenant_figures(since=until - window, until=until, task=task, limit=limit)

    def versions(self) -> list[VersionKey]:
        """The known task versions: the registry's, plus the release store's (not retired, or routed)."""
        return known_versions(self._services.registry, self._jobs)

    def queues(self) -> list[QueueSnapshot]:
        """Each known version's queue now (versions whose queue does not exist left out).

        Raises:
            QueueUnavailable: The queue service does not answer.
            StoreUnavailable: The job store does not answer.
        """
        return snapshot_queues(
            self._services.queue,
            self._jobs,
            self.versions(),
            prefix=self._services.settings.queue_prefix,
            clock=self._clock,
        )

    def queue_series(
        self, task: str, version: str, *, window: timedelta = timedelta(hours=6)
    ) -> list[QueueSample]:
        """The version's queue samples of the last ``window``, oldest first."""
        name = queue_name(self._services.settings.queue_prefix, task, version)
        return self._samples.series(name, since=self.now() - window)

    def throughput_series(
        self,
        task: str,
        version: str | None,
        *,
        window: timedelta = timedelta(hours=6),
        step: timedelta = timedelta(minutes=5),
    ) -> list[ThroughputBucket]:
        """Succeeded and failed jobs per ``step`` over the last ``window``, oldest first, empty ones too.

        Each item is ``(bucket start, succeeded, failed)`` by ``finished_at``; buckets start at
        multiples of ``step`` since the epoch, so the first one may begin a little before the window.

        Args:
            task: Task name.
            version: One version, or every version of the task (``None``).
            window: How far back.
            step: Width of a bucket.

        Raises:
            ValueError: ``step`` is not positive, or the window holds more than 10,000 steps.
        """
        until = self.now()
        return self._jobs.throughput(
            task, version, since=until - window, until=until, step=step.total_seconds()
        )
