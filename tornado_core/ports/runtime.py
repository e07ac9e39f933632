"""The runtime port: where a task version's workers run (processes, Docker, ECS)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class InstanceState(StrEnum):
    """Health of one worker instance."""

    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    STOPPED = "stopped"


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """The workers a task version should have.

    Attributes:
        task: Task name.
        version: Task version.
        replicas: Worker instances (processes, containers, ECS tasks).
        concurrency: Jobs each instance runs at once.
        grace_period: Seconds an instance gets to finish in-flight jobs on stop;
            must exceed the task's timeout.
        image: Container image (docker, ecs); ``None`` for local processes.
        env: Extra environment of the workers (settings, credentials).
        python_path: Extra import path of the task's code (process runtime).
    """

    task: str
    version: str
    replicas: int = 1
    concurrency: int = 4
    grace_period: float = 60.0
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    python_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class WorkerInstance:
    """One running (or stopped) worker instance."""

    instance_id: str
    task: str
    version: str
    state: InstanceState
    detail: str = ""


class RuntimePort(Protocol):
    """Starts, finds and stops the workers of task versions.

    Instances are found by labels (task, version), never by remembered ids, so
    every call is idempotent and safe to repeat after a crash.
    """

    name: str

    def ensure(self, deployment: Deployment) -> list[WorkerInstance]:
        """Make ``deployment.replicas`` instances run; start only the missing ones."""

    def instances(self, task: str, version: str) -> list[WorkerInstance]:
        """The instances of a task version, with their health."""

    def wait_healthy(self, task: str, version: str, *, replicas: int, timeout: float) -> list[WorkerInstance]:
        """Wait until ``replicas`` instances are healthy; raise ``RuntimeFailure`` on timeout."""

    def stop(self, task: str, version: str, *, grace_period: float) -> None:
        """Stop every instance gracefully (SIGTERM, in-flight jobs finish) and remove them."""
