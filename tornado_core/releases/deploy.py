"""``release deploy``: queues, the version's contract, healthy workers, an optional smoke job."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tornado_core.errors import ReleaseError, TaskNotFound, VersionNotFound
from tornado_core.naming import contract_queue_spec
from tornado_core.ports.releases import RUNNING_STATES, ReleaseState, VersionRelease
from tornado_core.ports.routes import RouteTable
from tornado_core.ports.runtime import RuntimePort
from tornado_core.ports.versions import TaskVersion
from tornado_core.releases.context import ReleaseContext, deployment_of, name_of
from tornado_core.releases.smoke import SmokeTest
from tornado_core.versions import VersionDescriber, contract_of


@dataclass(frozen=True, kw_only=True)
class DeployRequest:
    """What ``release deploy`` was asked for.

    Attributes:
        task: Task name.
        version: Task version.
        runtime: ``process``, ``docker`` or ``ecs``.
        replicas: Worker instances.
        concurrency: Jobs per instance.
        grace_period: Seconds to finish on stop; default: the task's timeout + 10.
        image: Container image (docker, ecs).
        python_path: Directory with the version's code (process runtime).
        tasks_module: Module declaring the task, when it is no entry point.
        smoke: Run a smoke job pinned to the version before declaring it deployed.
        smoke_payload: The smoke job's payload.
        timeout: Seconds to wait for healthy workers (and for the smoke job).
    """

    task: str
    version: str
    runtime: str = "process"
    replicas: int = 1
    concurrency: int = 4
    grace_period: float | None = None
    image: str | None = None
    python_path: str | None = None
    tasks_module: str | None = None
    smoke: bool = False
    smoke_payload: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = 120.0


class Deployer:
    """Runs one deploy (the caller holds the task's lock).

    Args:
        ctx: Store, services and runtimes.
    """

    def __init__(self, ctx: ReleaseContext) -> None:
        self._ctx = ctx

    def deploy(self, request: DeployRequest) -> VersionRelease:
        """See :meth:`tornado_core.releases.manager.ReleaseManager.deploy`."""
        runtime = self._ctx.runtime(request.runtime)
        existing = self._ctx.find(request.task, request.version)
        if existing is not None and existing.state is ReleaseState.ROLLING_BACK:
            raise ReleaseError(f"{name_of(existing)} is being rolled back: run `release rollback` first")
        contract = self._contract(request, runtime)
        release = self._begin_deploy(request, contract, existing)
        self._ctx.services.queue.ensure_queue(
            contract_queue_spec(self._ctx.services.settings.queue_prefix, contract)
        )
        self._ctx.store.register_version(contract)
        runtime.ensure(deployment_of(release))
        runtime.wait_healthy(
            request.task, request.version, replicas=request.replicas, timeout=request.timeout
        )
        if request.smoke:
            release = self._smoke(release, request)
        return self._finish_deploy(release)

    def _contract(self, request: DeployRequest, runtime: RuntimePort) -> TaskVersion:
        with contextlib.suppress(TaskNotFound, VersionNotFound):
            return contract_of(self._ctx.services.registry.get(request.task, request.version))
        known = self._ctx.store.task_version(request.task, request.version)
        if known is not None:
            return known
        if isinstance(runtime, VersionDescriber):
            described = runtime.describe(deployment_of(self._draft(request, grace=0.0)))
            if described is not None:
                return described
        where = request.image or request.python_path or request.tasks_module or "the installed packages"
        raise ReleaseError(f"task {request.task!r} has no version {request.version!r} in {where}")

    def _draft(self, request: DeployRequest, *, grace: float, previous: str | None = None) -> VersionRelease:
        return VersionRelease(
            task=request.task,
            version=request.version,
            state=ReleaseState.DEPLOYING,
            runtime=request.runtime,
            replicas=request.replicas,
            concurrency=request.concurrency,
            grace_period=grace,
            image=request.image,
            python_path=request.python_path,
            tasks_module=request.tasks_module,
            previous=previous,
        )

    def _begin_deploy(
        self, request: DeployRequest, contract: TaskVersion, existing: VersionRelease | None
    ) -> VersionRelease:
        grace = request.grace_period if request.grace_period is not None else contract.timeout + 10.0
        release = self._draft(request, grace=grace, previous=existing.previous if existing else None)
        if existing is not None and existing.state in RUNNING_STATES:
            release = replace(release, state=existing.state, smoke_job_id=existing.smoke_job_id)
        elif existing is not None and existing.state is ReleaseState.DEPLOYING:
            release = replace(release, smoke_job_id=existing.smoke_job_id)  # a crashed deploy goes on
        route = None
        if self._ctx.store.route(request.task) is None:
            # Pin today's routing before the new version is registered, so that it gets no jobs yet.
            current = self._ctx.newest(request.task, exclude=request.version)
            route = RouteTable(task=request.task, current=current) if current else None
        self._ctx.store.save(operation="deploy", route=route, releases=[release], detail="starting workers")
        return release

    def _smoke(self, release: VersionRelease, request: DeployRequest) -> VersionRelease:
        smoke = SmokeTest(self._ctx.services, self._ctx.store, self._ctx.pace)
        job_id = smoke.reusable(release.smoke_job_id)
        if job_id is None:
            job_id = smoke.submit(request.task, request.version, dict(request.smoke_payload))
            release = replace(release, smoke_job_id=job_id)
            self._ctx.store.save(operation="smoke", releases=[release], detail=f"smoke job {job_id}")
        smoke.wait(job_id, timeout=request.timeout)
        return release

    def _finish_deploy(self, release: VersionRelease) -> VersionRelease:
        if release.state is not ReleaseState.DEPLOYING:
            return release
        route = None
        state = ReleaseState.DEPLOYED
        if self._ctx.store.route(release.task) is None:
            route, state = RouteTable(task=release.task, current=release.version), ReleaseState.CURRENT
        done = replace(release, state=state, detail="workers healthy")
        self._ctx.store.save(operation="deploy", route=route, releases=[done], detail="workers healthy")
        return done
