"""The release store port: routes, task versions, the state of each release, per-version figures."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from tornado_core.ports.routes import RouteTable
from tornado_core.ports.versions import TaskVersion


class ReleaseState(StrEnum):
    """Where a task version is in its release.

    ``deploying`` workers are being started (a crashed deploy stays here until
    re-run); ``deployed`` workers run, no new jobs are routed to it;
    ``ramping`` a share of new jobs (or pinned tenants) go to it; ``current``
    it gets every other new job; ``draining`` no new jobs, queued and running
    ones finish; ``drained`` queue empty and workers stopped (still a rollback
    target); ``retired`` gone for good; ``rolling_back`` routed away after a
    bad release, its jobs being moved to the previous version; ``rolled_back``
    that move is done and its workers are stopped.
    """

    DEPLOYING = "deploying"
    DEPLOYED = "deployed"
    RAMPING = "ramping"
    CURRENT = "current"
    DRAINING = "draining"
    DRAINED = "drained"
    RETIRED = "retired"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


#: States whose workers are supposed to run.
RUNNING_STATES = frozenset(
    {ReleaseState.DEPLOYED, ReleaseState.RAMPING, ReleaseState.CURRENT, ReleaseState.DRAINING}
)


@dataclass(frozen=True, kw_only=True)
class VersionRelease:
    """The persisted release of one task version: its state and how its workers run.

    Attributes:
        task: Task name.
        version: Task version.
        state: Lifecycle state.
        runtime: Runtime name (``process``, ``docker``, ``ecs``).
        replicas: Worker instances wanted.
        concurrency: Jobs per instance.
        grace_period: Seconds an instance gets to finish on stop.
        image: Container image (docker, ecs).
        python_path: Import path of the version's code (process runtime).
        tasks_module: Module holding the task, for workers not using entry points.
        previous: The version that was current when this one was promoted (rollback target).
        smoke_job_id: The smoke job of the latest deploy, if any.
        detail: Last note of the lifecycle (why it failed, what moved).
        updated_at: Epoch seconds of the last change.
    """

    task: str
    version: str
    state: ReleaseState
    runtime: str = "process"
    replicas: int = 1
    concurrency: int = 4
    grace_period: float = 60.0
    image: str | None = None
    python_path: str | None = None
    tasks_module: str | None = None
    previous: str | None = None
    smoke_job_id: str | None = None
    detail: str = ""
    updated_at: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ReleaseEvent:
    """One recorded step of a release (the audit trail)."""

    task: str
    version: str
    operation: str
    state: str
    detail: str
    at: float


@dataclass(frozen=True)
class VersionStats:
    """Job-store figures of one task version.

    Attributes:
        jobs: Jobs counted.
        attempts: Attempts started.
        succeeded: Jobs that succeeded.
        dead: Jobs dead-lettered or given up.
        running: Jobs running under a live lease now.
    """

    jobs: int = 0
    attempts: int = 0
    succeeded: int = 0
    dead: int = 0
    running: int = 0

    @property
    def failures(self) -> int:
        """Attempts that failed: started, minus those that succeeded or still run."""
        return max(self.attempts - self.succeeded - self.running, 0)

    @property
    def error_rate(self) -> float:
        """Failed attempts per finished attempt, in percent (0 without attempts)."""
        finished = self.attempts - self.running
        return 100.0 * self.failures / finished if finished > 0 else 0.0

    @property
    def success_rate(self) -> float:
        """Succeeded jobs per finished job, in percent (100 without finished jobs)."""
        finished = self.succeeded + self.dead
        return 100.0 * self.succeeded / finished if finished else 100.0


class ReleaseStorePort(Protocol):
    """Persistent release state (PostgreSQL); every write is one transaction.

    Methods raise ``StoreUnavailable`` when the store cannot be reached.
    """

    def lock(self, task: str) -> AbstractContextManager[None]:
        """Hold the task's release lock for a block.

        Raises:
            ReleaseError: Another operation on the task holds it.
        """

    def route(self, task: str) -> RouteTable | None:
        """The task's route table, or ``None``."""

    def releases(self, task: str) -> list[VersionRelease]:
        """Every release of the task (any order)."""

    def save(
        self,
        *,
        operation: str,
        route: RouteTable | None = None,
        releases: Sequence[VersionRelease] = (),
        detail: str = "",
    ) -> None:
        """Write a route change and release states atomically, with one event per release.

        A route is written only when given; its ``revision`` is bumped and the
        change is notified to route caches.
        """

    def register_version(self, version: TaskVersion) -> None:
        """Record (or refresh) a task version's contract."""

    def task_version(self, task: str, version: str) -> TaskVersion | None:
        """A registered version's contract, or ``None``."""

    def version_names(self, task: str) -> list[str]:
        """Every registered version of ``task``."""

    def stats(self, task: str, version: str, *, since: float | None = None) -> VersionStats:
        """Figures of the version's jobs submitted at or after ``since`` (epoch; all if ``None``)."""

    def requeue(self, job_ids: Sequence[str], *, version: str) -> None:
        """Jobs moved to another version's queue: set their version and mark them queued."""

    def events(self, task: str, *, limit: int = 50) -> list[ReleaseEvent]:
        """The task's latest events, newest first."""
