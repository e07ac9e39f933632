"""An in-memory release store over :class:`MemoryJobStore`, for fast unit tests of the lifecycle.

Never the only test: the PostgreSQL store runs the same operations in the
integration and end-to-end tests.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from tornado_core.adapters.memory.jobs import MemoryJobStore
from tornado_core.errors import ReleaseError
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.releases import ReleaseEvent, VersionRelease, VersionStats
from tornado_core.ports.routes import RouteTable
from tornado_core.ports.versions import TaskVersion


class MemoryReleaseStore:
    """Routes, releases and task versions in dicts; stats read from a memory job store.

    Args:
        jobs: The job store whose records give the figures.
        clock: Epoch seconds.
    """

    def __init__(self, jobs: MemoryJobStore, clock: Callable[[], float] = time.time) -> None:
        self._jobs = jobs
        self._clock = clock
        self._routes: dict[str, RouteTable] = {}
        self._releases: dict[tuple[str, str], VersionRelease] = {}
        self._versions: dict[tuple[str, str], TaskVersion] = {}
        self._events: list[ReleaseEvent] = []
        self._locked: set[str] = set()
        self._mutex = threading.Lock()

    @contextlib.contextmanager
    def lock(self, task: str) -> Iterator[None]:
        with self._mutex:
            if task in self._locked:
                raise ReleaseError(f"another release operation on {task} is running")
            self._locked.add(task)
        try:
            yield
        finally:
            with self._mutex:
                self._locked.discard(task)

    def route(self, task: str) -> RouteTable | None:
        return self._routes.get(task)

    def releases(self, task: str) -> list[VersionRelease]:
        return [r for (t, _), r in self._releases.items() if t == task]

    def save(
        self,
        *,
        operation: str,
        route: RouteTable | None = None,
        releases: Sequence[VersionRelease] = (),
        detail: str = "",
    ) -> None:
        now = self._clock()
        with self._mutex:
            if route is not None:
                old = self._routes.get(route.task)
                self._routes[route.task] = replace(route, revision=(old.revision if old else 0) + 1)
            for release in releases:
                self._releases[(release.task, release.version)] = replace(release, updated_at=now)
                self._events.append(
                    ReleaseEvent(
                        task=release.task,
                        version=release.version,
                        operation=operation,
                        state=str(release.state),
                        detail=detail,
                        at=now,
                    )
                )

    def register_version(self, version: TaskVersion) -> None:
        self._versions[(version.task, version.version)] = version

    def task_version(self, task: str, version: str) -> TaskVersion | None:
        return self._versions.get((task, version))

    def version_names(self, task: str) -> list[str]:
        return [v for (t, v) in self._versions if t == task]

    def stats(self, task: str, version: str, *, since: float | None = None) -> VersionStats:
        records = [
            r
            for r in self._jobs.list(tenant=None, task=task, limit=1_000_000).jobs
            if r.version == version and (since is None or r.created_at.timestamp() >= since)
        ]
        return VersionStats(
            jobs=len(records),
            attempts=sum(r.attempts for r in records),
            succeeded=sum(1 for r in records if r.status is JobStatus.SUCCEEDED),
            dead=sum(1 for r in records if r.status in (JobStatus.DEAD, JobStatus.FAILED)),
            running=sum(1 for r in records if r.status is JobStatus.RUNNING),
        )

    def requeue(self, job_ids: Sequence[str], *, version: str) -> None:
        for job_id in job_ids:
            self._jobs._update(job_id, version=version, status=JobStatus.QUEUED)

    def events(self, task: str, *, limit: int = 50) -> list[ReleaseEvent]:
        return [e for e in reversed(self._events) if e.task == task][:limit]
