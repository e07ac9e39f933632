"""The release lifecycle of task versions: deploy, promote, ramp, pin, drain, retire, rollback.

Every operation is persisted, idempotent and safe to re-run after a crash:
each step is either a single transaction of the release store (route and
states together) or an idempotent call (queues exist, runtime instances found
by labels). One operation per task runs at a time (the store's task lock).
Bad input raises :class:`~tornado_core.errors.ReleaseError` before anything
changes. See ``docs/releases.md``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace

from tornado_core.errors import ReleaseError
from tornado_core.naming import dead_letter_name
from tornado_core.ports.releases import RUNNING_STATES, ReleaseState, ReleaseStorePort, VersionRelease
from tornado_core.ports.routes import RouteTable
from tornado_core.ports.runtime import InstanceState
from tornado_core.releases.context import (
    ReleaseContext,
    RuntimeFactory,
    deployment_of,
    external,
    name_of,
)
from tornado_core.releases.deploy import Deployer, DeployRequest
from tornado_core.releases.queues import Backlog, Pace
from tornado_core.releases.view import VersionStatus, version_status
from tornado_core.services import Services

__all__ = ["DeployRequest", "ReleaseManager"]


class ReleaseManager:
    """Runs release operations for the tasks of one deployment.

    Args:
        services: The process's services (queue, job store, registry...).
        store: The release store.
        runtimes: Builds a runtime by name (``process``, ``docker``, ``ecs``).
        pace: Poll interval, settle time and clock of the waits.
    """

    def __init__(
        self,
        services: Services,
        store: ReleaseStorePort,
        runtimes: RuntimeFactory,
        *,
        pace: Pace | None = None,
    ) -> None:
        self._ctx = ReleaseContext(services, store, runtimes, pace or Pace())
        self._store = store
        self._held: set[str] = set()

    @property
    def store(self) -> ReleaseStorePort:
        """The release store."""
        return self._store

    @property
    def pace(self) -> Pace:
        """Poll interval, settle time and clock."""
        return self._ctx.pace

    @contextlib.contextmanager
    def exclusive(self, task: str) -> Iterator[None]:
        """Hold the task's release lock (re-entrant within this manager).

        Raises:
            ReleaseError: Another operation on the task is running.
        """
        if task in self._held:
            yield
            return
        with self._store.lock(task):
            self._held.add(task)
            try:
                yield
            finally:
                self._held.discard(task)

    # -- deploy -------------------------------------------------------------------------

    def deploy(self, request: DeployRequest) -> VersionRelease:
        """Queues, registered contract, healthy workers, optional smoke job; not routed yet.

        The first version of a task becomes current at once (nothing else serves it).

        Raises:
            ReleaseError: Unknown task or version, or the version is being rolled back.
            RuntimeFailure: Workers did not become healthy.
        """
        with self.exclusive(request.task):
            return Deployer(self._ctx).deploy(request)

    # -- routing ------------------------------------------------------------------------

    def promote(self, task: str, version: str) -> VersionRelease:
        """Route every new job (except pinned tenants) to ``version``; the old current drains.

        Raises:
            ReleaseError: The version is not deployed with healthy workers.
        """
        with self.exclusive(task):
            release = self._ctx.require(task, version)
            if release.state is ReleaseState.CURRENT:
                return release
            self._ctx.require_routable(release, "promote")
            route = self._store.route(task)
            previous = route.current if route is not None else None
            new_route = (route or RouteTable(task=task, current=version)).promoted(version)
            promoted = replace(release, previous=previous if previous != version else release.previous)
            self._ctx.apply("promote", new_route, {version: promoted}, f"{version} is current")
            return self._ctx.require(task, version)

    def ramp(self, task: str, version: str, percent: int) -> RouteTable:
        """Send ``percent`` % of new jobs to ``version`` (0 ends its ramp).

        Raises:
            ReleaseError: Bad percent, no current version, the version is current or not deployed.
        """
        if not 0 <= percent <= 100:
            raise ReleaseError(f"ramp percent must be within 0..100, not {percent}")
        with self.exclusive(task):
            release = self._ctx.require(task, version)
            route = self._ctx.require_route(task)
            if route.current == version:
                raise ReleaseError(f"{name_of(release)} is current already: nothing to ramp")
            if percent:
                self._ctx.require_routable(release, "ramp")
            new_route = route.ramped(version, percent)
            return self._ctx.apply("ramp", new_route, {}, f"{version} at {percent}%")

    def pin(self, task: str, tenant: str, version: str | None) -> RouteTable:
        """Route every new job of ``tenant`` to ``version`` (``None`` removes the pin).

        Raises:
            ReleaseError: No current version, or the version is not deployed.
        """
        with self.exclusive(task):
            route = self._ctx.require_route(task)
            if version is not None:
                self._ctx.require_routable(self._ctx.require(task, version), "pin")
            new_route = route.pinned(tenant, version)
            return self._ctx.apply("pin", new_route, {}, f"tenant {tenant} -> {version or 'unpinned'}")

    # -- drain and retire ------------------------------------------------------------------

    def drain(
        self,
        task: str,
        version: str,
        *,
        timeout: float | None = None,
        on_progress: Callable[[Backlog], None] = lambda _b: None,
    ) -> VersionRelease:
        """Wait until the version has no queued, in-flight or running job, then stop its workers.

        Raises:
            ReleaseError: The version still receives new jobs, or ``timeout`` passed
                (then nothing was changed).
        """
        with self.exclusive(task):
            release = self._ctx.require(task, version)
            if release.state in (ReleaseState.DRAINED, ReleaseState.RETIRED, ReleaseState.ROLLED_BACK):
                return release
            self._ctx.require_unrouted(release, "drain")
            self._ctx.watch.wait_empty(
                lambda: self._ctx.backlog(task, version),
                quiet_since=release.updated_at,
                timeout=timeout,
                on_progress=on_progress,
                what=f"drain of {name_of(release)}",
                then="nothing was changed",
            )
            return self._ctx.stop(release, ReleaseState.DRAINED, "drain", "queue empty, workers stopped")

    def retire(self, task: str, version: str) -> VersionRelease:
        """Stop a drained (or never routed, empty) version for good; it is no rollback target any more.

        Raises:
            ReleaseError: The version still receives jobs or has jobs left.
        """
        with self.exclusive(task):
            release = self._ctx.require(task, version)
            if release.state is ReleaseState.RETIRED:
                return release
            self._ctx.require_unrouted(release, "retire")
            if release.state in RUNNING_STATES or release.state is ReleaseState.DEPLOYING:
                left = self._ctx.backlog(task, version)
                if left.remaining:
                    raise ReleaseError(f"{name_of(release)} still has {left.describe()}: drain it first")
            return self._ctx.stop(release, ReleaseState.RETIRED, "retire", "retired")

    def backlog(self, task: str, version: str) -> Backlog:
        """Queue counts and running jobs of a version."""
        return self._ctx.backlog(task, version)

    # -- rollback -----------------------------------------------------------------------

    def rollback(
        self,
        task: str,
        *,
        version: str | None = None,
        timeout: float | None = 300.0,
        on_progress: Callable[[Backlog], None] = lambda _b: None,
    ) -> VersionRelease:
        """Route back to the previous version and move the bad version's jobs (queue and DLQ) to it.

        Args:
            task: Task name.
            version: The bad version (default: the ramping one, else the current one).
            timeout: Seconds to wait for the bad version's queue to empty.
            on_progress: Called with what is left at every look.

        Returns:
            The bad version's release, ``rolled_back``.

        Raises:
            ReleaseError: Nothing to roll back, or the previous version is retired.
        """
        with self.exclusive(task):
            pending = [r for r in self._store.releases(task) if r.state is ReleaseState.ROLLING_BACK]
            bad = pending[0] if pending else self._flip_back(task, version)
            target = self._ctx.require_route(task).current
            return self._move_away(bad, target, timeout=timeout, on_progress=on_progress)

    def _flip_back(self, task: str, version: str | None) -> VersionRelease:
        route = self._ctx.require_route(task)
        bad_version = version or route.ramping or route.current
        bad = self._ctx.require(task, bad_version)
        if bad_version == route.ramping:
            target_version = route.current
        elif bad_version == route.current and bad.previous:
            target_version = bad.previous
        elif bad_version == route.current:
            raise ReleaseError(f"{name_of(bad)} has no previous version to roll back to")
        else:
            raise ReleaseError(f"{name_of(bad)} is neither current nor ramping: nothing to roll back")
        target = self._ctx.find(task, target_version) or external(task, target_version)
        if target.state is ReleaseState.RETIRED:
            raise ReleaseError(f"{name_of(target)} is retired: deploy it again to roll back to it")
        changed = {bad_version: replace(bad, state=ReleaseState.ROLLING_BACK, detail=f"to {target_version}")}
        if self._revive(target):
            changed[target_version] = replace(target, state=ReleaseState.DEPLOYED, detail="workers restarted")
        flipped = route.promoted(target_version).without(bad_version)
        self._ctx.apply("rollback", flipped, changed, f"{bad_version} -> {target_version}")
        return self._ctx.require(task, bad_version)

    def _revive(self, release: VersionRelease) -> bool:
        """Restart the workers of a drained (or rolled back) rollback target; True if it had none."""
        runtime = self._ctx.runtime_of(release)
        if runtime is None or release.state in RUNNING_STATES:
            return False
        runtime.ensure(deployment_of(release))
        runtime.wait_healthy(release.task, release.version, replicas=release.replicas, timeout=120.0)
        return True

    def _move_away(
        self,
        bad: VersionRelease,
        target: str,
        *,
        timeout: float | None,
        on_progress: Callable[[Backlog], None],
    ) -> VersionRelease:
        runtime = self._ctx.runtime_of(bad)
        if runtime is not None:  # in-flight jobs finish or become visible again
            runtime.stop(bad.task, bad.version, grace_period=bad.grace_period)
        source, goal = self._ctx.queue(bad.task, bad.version), self._ctx.queue(bad.task, target)
        moved = 0

        def move_and_count() -> Backlog:
            nonlocal moved
            moved += self._ctx.watch.move(source, goal, version=target)
            moved += self._ctx.watch.move(dead_letter_name(source), goal, version=target)
            left = self._ctx.backlog(bad.task, bad.version)
            return replace(left, visible=left.visible + left.dead, dead=0)

        self._ctx.watch.wait_empty(
            move_and_count,
            quiet_since=bad.updated_at,
            timeout=timeout,
            on_progress=on_progress,
            what=f"moving the jobs of {name_of(bad)} to {target}",
            then="re-run `tornado release rollback` to go on",
        )
        detail = f"rolled back to {target}; moved {moved} job(s)"
        done = replace(bad, state=ReleaseState.ROLLED_BACK, detail=detail)
        self._store.save(operation="rollback", releases=[done], detail=detail)
        return done

    # -- status -------------------------------------------------------------------------

    def status(self, task: str) -> list[VersionStatus]:
        """Every version of the task: state, role, workers, queue, DLQ and job figures.

        Raises:
            ReleaseError: The task is unknown.
        """
        route = self._store.route(task)
        releases = {r.version: r for r in self._store.releases(task)}
        for version in route.routed_versions() if route else set():
            releases.setdefault(version, external(task, version, route))
        if not releases:
            self._ctx.require_known(task)
        rows = []
        for release in releases.values():
            runtime = None if release.state is ReleaseState.RETIRED else self._ctx.runtime_of(release)
            instances = runtime.instances(task, release.version) if runtime else []
            rows.append(
                version_status(
                    release,
                    role=route.role_of(release.version) if route else "",
                    healthy=sum(1 for i in instances if i.state is InstanceState.HEALTHY),
                    queue=self._ctx.services.queue,
                    queue_name=self._ctx.queue(task, release.version),
                    stats=self._store.stats(task, release.version),
                )
            )
        return sorted(rows, key=lambda row: row.sort_key)
