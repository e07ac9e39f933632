"""What every release operation shares: the store, the runtimes, the checks, route-following states."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from tornado_core.errors import ReleaseError, TaskNotFound
from tornado_core.naming import queue_name
from tornado_core.ports.releases import RUNNING_STATES, ReleaseState, ReleaseStorePort, VersionRelease
from tornado_core.ports.routes import RouteTable
from tornado_core.ports.runtime import Deployment, InstanceState, RuntimePort
from tornado_core.releases.queues import Backlog, Pace, QueueWatch
from tornado_core.services import Services
from tornado_core.versions import newest_of, newest_version

#: Runtime name of versions whose workers were started outside ``tornado release``.
EXTERNAL = "external"

RuntimeFactory = Callable[[str], RuntimePort]


def deployment_of(release: VersionRelease) -> Deployment:
    """The runtime's view of a release."""
    env = {"TORNADO_TASKS_MODULES": release.tasks_module} if release.tasks_module else {}
    return Deployment(
        task=release.task,
        version=release.version,
        replicas=release.replicas,
        concurrency=release.concurrency,
        grace_period=release.grace_period,
        image=release.image,
        env=env,
        python_path=release.python_path,
    )


class ReleaseContext:
    """The services, store and runtimes of release operations, with their common checks.

    Built by :class:`~tornado_core.releases.manager.ReleaseManager` from its own arguments.
    """

    def __init__(
        self, services: Services, store: ReleaseStorePort, runtimes: RuntimeFactory, pace: Pace
    ) -> None:
        self.services = services
        self.store = store
        self.pace = pace
        self.watch = QueueWatch(services.queue, store, pace)
        self._runtimes = runtimes
        self._built: dict[str, RuntimePort] = {}

    def queue(self, task: str, version: str) -> str:
        """The version's work queue."""
        return queue_name(self.services.settings.queue_prefix, task, version)

    def runtime(self, name: str) -> RuntimePort:
        """The runtime called ``name``, built once."""
        if name not in self._built:
            self._built[name] = self._runtimes(name)
        return self._built[name]

    def runtime_of(self, release: VersionRelease) -> RuntimePort | None:
        """The runtime of a release (``None`` for workers started outside releases)."""
        return None if release.runtime == EXTERNAL else self.runtime(release.runtime)

    def newest(self, task: str, *, exclude: str) -> str | None:
        """The newest version with code here or registered, other than ``exclude``."""
        registered = {s.version for s in self.services.registry.versions(task)}
        registered.update(self.store.version_names(task))
        registered.discard(exclude)
        return newest_of(registered)

    def find(self, task: str, version: str) -> VersionRelease | None:
        """The release of a version, or ``None``."""
        return next((r for r in self.store.releases(task) if r.version == version), None)

    def require_known(self, task: str) -> None:
        """Raise ``ReleaseError`` unless the task has code here or a registered version."""
        try:
            newest_version(self.services.registry, self.store, task)
        except TaskNotFound:
            raise ReleaseError(f"unknown task {task!r}") from None

    def require(self, task: str, version: str) -> VersionRelease:
        """The release of a version (routed versions started elsewhere included), or ``ReleaseError``."""
        release = self.find(task, version)
        if release is not None:
            return release
        route = self.store.route(task)
        if route is not None and version in route.routed_versions():
            return external(task, version, route)
        self.require_known(task)
        raise ReleaseError(f"version {version!r} of {task} was never deployed (`tornado release deploy`)")

    def require_route(self, task: str) -> RouteTable:
        """The task's route, or ``ReleaseError`` if it has none yet."""
        route = self.store.route(task)
        if route is None:
            self.require_known(task)
            raise ReleaseError(f"{task} has no current version yet: deploy one first")
        return route

    def require_routable(self, release: VersionRelease, operation: str) -> None:
        """Raise ``ReleaseError`` unless the version has running, healthy workers."""
        if release.state not in RUNNING_STATES:
            raise ReleaseError(
                f"cannot {operation} {name_of(release)}: it is {release.state} (deploy it first)"
            )
        runtime = self.runtime_of(release)
        if runtime is None:
            return
        instances = runtime.instances(release.task, release.version)
        if not any(i.state is InstanceState.HEALTHY for i in instances):
            raise ReleaseError(f"cannot {operation} {name_of(release)}: none of its workers is healthy")

    def require_unrouted(self, release: VersionRelease, operation: str) -> None:
        """Raise ``ReleaseError`` if new jobs can still reach the version (or it is rolling back)."""
        if release.state is ReleaseState.ROLLING_BACK:
            raise ReleaseError(f"{name_of(release)} is being rolled back: run `release rollback` first")
        route = self.store.route(release.task)
        role = route.role_of(release.version) if route else ""
        if role:
            hint = "promote another version first" if "current" in role else "end its ramp or pins first"
            raise ReleaseError(f"cannot {operation} {name_of(release)}: it is {role} ({hint})")

    def apply(
        self, operation: str, route: RouteTable, changed: dict[str, VersionRelease], detail: str
    ) -> RouteTable:
        """Save ``route`` with every release's state following from it, in one transaction."""
        originals = {r.version: r for r in self.store.releases(route.task)}
        updates = [
            moved
            for version, release in (originals | changed).items()
            if (moved := follow_route(release, route)) != originals.get(version)
        ]
        self.store.save(operation=operation, route=route, releases=updates, detail=detail)
        saved = self.store.route(route.task)
        assert saved is not None
        return saved

    def backlog(self, task: str, version: str) -> Backlog:
        """Queue counts and running jobs of a version."""
        return self.watch.backlog(task, version, self.queue(task, version))

    def stop(
        self, release: VersionRelease, state: ReleaseState, operation: str, detail: str
    ) -> VersionRelease:
        """Stop the version's workers gracefully, then record ``state``."""
        runtime = self.runtime_of(release)
        if runtime is not None:
            runtime.stop(release.task, release.version, grace_period=release.grace_period)
        done = replace(release, state=state, detail=detail)
        self.store.save(operation=operation, releases=[done], detail=detail)
        return done


def name_of(release: VersionRelease) -> str:
    """``task version``, for messages."""
    return f"{release.task} {release.version}"


def external(task: str, version: str, route: RouteTable | None = None) -> VersionRelease:
    """A routed version whose workers ``tornado release`` did not start."""
    state = ReleaseState.CURRENT if route is None or route.current == version else ReleaseState.RAMPING
    return VersionRelease(task=task, version=version, state=state, runtime=EXTERNAL, replicas=0)


def follow_route(release: VersionRelease, route: RouteTable) -> VersionRelease:
    """The state a running release takes under ``route``."""
    if release.state not in RUNNING_STATES:
        return release
    if release.version == route.current:
        state = ReleaseState.CURRENT
    elif release.version in route.routed_versions():
        state = ReleaseState.RAMPING
    elif release.state in (ReleaseState.CURRENT, ReleaseState.DRAINING):
        state = ReleaseState.DRAINING
    else:
        state = ReleaseState.DEPLOYED
    return release if state is release.state else replace(release, state=state)
