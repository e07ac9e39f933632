"""The ``docker`` runtime: a task version's workers as containers on one Docker engine.

Containers are found by labels (``io.tornado.managed=true``, ``io.tornado.prefix``,
``io.tornado.task``, ``io.tornado.version``), never by remembered ids, so every
call is idempotent and safe after a crash. Each container:

* runs ``tornado worker`` for its version under the image's tini (one init: no ``--init``);
* uses the host network (the engine runs with ``--bridge=none``), so 127.0.0.1 is
  the host's: the local PostgreSQL and SQS/S3 endpoint are reachable as in settings;
* restarts ``unless-stopped`` (a crashed worker comes back; a stopped one stays down);
* gets a stop timeout longer than the worker's grace period, itself set by the
  deployment to exceed the task's timeout, so SIGTERM lets in-flight jobs finish.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
from docker.types import LogConfig

from tornado_core.adapters.runtimes.docker.engine import connect, default_docker_host
from tornado_core.adapters.runtimes.images.builder import image_ref
from tornado_core.adapters.runtimes.images.contract import (
    MANAGED_LABEL,
    PREFIX_LABEL,
    STOP_MARGIN,
    TASK_LABEL,
    VERSION_LABEL,
    grace_seconds,
    health_check_argv,
    health_env,
    worker_command,
    workload_name,
)
from tornado_core.errors import RuntimeFailure
from tornado_core.ports.runtime import Deployment, InstanceState, WorkerInstance
from tornado_core.settings import Settings

if TYPE_CHECKING:
    from tornado_core.ports.versions import TaskVersion

logger = logging.getLogger("tornado.runtime.docker")

#: Environment variables passed from this process to the workers when set.
PASSED_ENV = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
    "TORNADO_LOG_LEVEL",
)  # fmt: skip
_NANOS = 1_000_000_000


def container_name(prefix: str, task: str, version: str, index: int) -> str:
    """``<prefix>-<task>-<version>-<n>`` with characters Docker refuses replaced."""
    return workload_name(prefix, task, f"{version}-{index}", allowed="a-zA-Z0-9_.-")


class DockerRuntime:
    """Runs a task version's workers as labelled containers.

    Args:
        settings: The workers' settings (passed as ``TORNADO_*`` variables).
        client: A ``docker.DockerClient``; default: one for ``$DOCKER_HOST``, else
            for the project's own engine (``tornado docker up``) if it runs, else
            Docker's default socket.
        env: Extra environment of every worker; default: the AWS credentials and
            log level of this process (:data:`PASSED_ENV`).
        health_interval: Seconds between health checks (overrides the image's 5 s).
        poll_wait: The workers' long-poll seconds (also bounds the health file's age).
    """

    name = "docker"

    def __init__(
        self,
        settings: Settings,
        *,
        client: Any | None = None,
        env: Mapping[str, str] | None = None,
        health_interval: float = 2.0,
        poll_wait: float = 5.0,
    ) -> None:
        self._settings = settings
        self._client = client
        passed = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        self._env = dict(env) if env is not None else passed
        self._health_interval = health_interval
        self._poll_wait = poll_wait

    @property
    def client(self) -> Any:
        """The docker client (created on first use)."""
        if self._client is None:
            host = default_docker_host(os.environ)
            try:
                self._client = connect(host) if host else docker.from_env(timeout=120)
            except docker.errors.DockerException as exc:
                raise RuntimeFailure(f"cannot reach the Docker engine: {exc}") from exc
        return self._client

    # ------------------------------------------------------------------ port

    def ensure(self, deployment: Deployment) -> list[WorkerInstance]:
        """Run ``deployment.replicas`` containers of the version; start only the missing ones.

        Stopped or dead containers of the version are removed and replaced; extra
        ones (after a scale-down) are stopped gracefully.

        Raises:
            RuntimeFailure: The engine refused, or the image does not exist.
        """
        image = deployment.image or image_ref(deployment.task, deployment.version)
        with _docker_errors(f"deploying {deployment.task} {deployment.version}"):
            live = []
            for container in self._containers(deployment.task, deployment.version):
                if container.status in ("exited", "dead"):
                    container.remove(force=True)
                else:
                    live.append(container)
            for extra in sorted(live, key=lambda c: c.name)[deployment.replicas :]:
                self._stop_one(extra, deployment.grace_period)
            taken = {c.name for c in live}
            for index in range(deployment.replicas * 2 + 1):
                if len(taken) >= deployment.replicas:
                    break
                name = container_name(self._settings.queue_prefix, deployment.task, deployment.version, index)
                if name not in taken:
                    self._create(deployment, image, name)
                    taken.add(name)  # or a concurrent ensure did: the name is taken either way
        return self.instances(deployment.task, deployment.version)

    def instances(self, task: str, version: str) -> list[WorkerInstance]:
        """The version's containers with their health (Docker's health status)."""
        with _docker_errors(f"listing {task} {version}"):
            return [_instance(c, task, version) for c in self._containers(task, version)]

    def wait_healthy(self, task: str, version: str, *, replicas: int, timeout: float) -> list[WorkerInstance]:
        """Wait until ``replicas`` containers report ``healthy``.

        Raises:
            RuntimeFailure: Not enough healthy containers within ``timeout`` seconds
                (with the logs of the others).
        """
        deadline = time.monotonic() + timeout
        while True:
            current = self.instances(task, version)
            if sum(i.state is InstanceState.HEALTHY for i in current) >= replicas:
                return current
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"{task} {version}: fewer than {replicas} healthy container(s) after {timeout:.0f}s: "
                    + "; ".join(f"{i.instance_id} {i.state} {i.detail}" for i in current)
                    + self._logs_of_unhealthy(task, version)
                )
            time.sleep(0.25)

    def stop(self, task: str, version: str, *, grace_period: float) -> None:
        """SIGTERM every container of the version (in-flight jobs finish), then remove them."""
        codes = self.stop_instances(task, version, grace_period=grace_period)
        failed = {name: code for name, code in codes.items() if code != 0}
        if failed:
            logger.warning("%s %s: containers exited non-zero on stop: %s", task, version, failed)

    # ------------------------------------------------------------------ extras

    def stop_instances(self, task: str, version: str, *, grace_period: float) -> dict[str, int]:
        """Like :meth:`stop`; returns each container's exit code by name (0: drained cleanly)."""
        with _docker_errors(f"stopping {task} {version}"):
            containers = self._containers(task, version)
            if not containers:
                return {}
            with ThreadPoolExecutor(max_workers=min(len(containers), 16)) as pool:
                codes = list(pool.map(lambda c: self._stop_one(c, grace_period), containers))
        return {c.name: code for c, code in zip(containers, codes, strict=True)}

    def describe(self, deployment: Deployment) -> TaskVersion | None:
        """The version's contract, read in its image (``tornado release describe`` in a throwaway container).

        Returns:
            The contract, or ``None`` if the image's code lacks that task version.

        Raises:
            RuntimeFailure: The image is missing or the command failed otherwise.
        """
        from tornado_core.ports.versions import TaskVersion
        from tornado_core.versions import DESCRIBE_NOT_FOUND, describe_args

        image = deployment.image or image_ref(deployment.task, deployment.version)
        command = ["tornado", *describe_args(deployment.task, deployment.version)]
        try:
            output = self.client.containers.run(
                image, command, environment={"TORNADO_LOG_LEVEL": "WARNING"}, network_mode="none",
                remove=True, stdout=True, stderr=False,
            )  # fmt: skip
        except docker.errors.ContainerError as exc:
            if exc.exit_status == DESCRIBE_NOT_FOUND:
                return None
            raise RuntimeFailure(
                f"could not describe {deployment.task} {deployment.version} in {image}: {exc}"
            ) from exc
        except docker.errors.ImageNotFound as exc:
            raise RuntimeFailure(f"image {image} not found; build it with `tornado image build`") from exc
        except docker.errors.DockerException as exc:
            raise RuntimeFailure(f"could not describe {deployment.task} {deployment.version}: {exc}") from exc
        return TaskVersion.from_json(output.decode() if isinstance(output, bytes) else str(output))

    def logs(self, instance_id: str, *, tail: int = 50) -> str:
        """The last ``tail`` log lines of one container."""
        with _docker_errors(f"reading the logs of {instance_id}"):
            raw = self.client.containers.get(instance_id).logs(tail=tail)
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)

    # ------------------------------------------------------------------ internals

    def _containers(self, task: str, version: str) -> list[Any]:
        labels = [
            f"{MANAGED_LABEL}=true",
            f"{PREFIX_LABEL}={self._settings.queue_prefix}",
            f"{TASK_LABEL}={task}",
            f"{VERSION_LABEL}={version}",
        ]
        found = self.client.containers.list(all=True, filters={"label": labels}, ignore_removed=True)
        return sorted(found, key=lambda c: c.name)

    def _create(self, deployment: Deployment, image: str, name: str) -> None:
        api = self.client.api
        try:
            created = api.create_container(image, name=name, **self._container_config(deployment))
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # Conflict: a concurrent ensure created it first
                logger.info("container %s already exists", name)
                return
            raise
        api.start(created["Id"])
        logger.info("started container %s (%s)", name, image)

    def _container_config(self, deployment: Deployment) -> dict[str, Any]:
        host_config = self.client.api.create_host_config(
            network_mode="host",
            restart_policy={"Name": "unless-stopped"},
            log_config=LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"}),
        )
        return dict(
            command=worker_command(deployment, poll_wait=self._poll_wait),
            labels=self._labels(deployment),
            environment={
                **self._settings.as_env(),
                **self._env,
                **deployment.env,
                **health_env(self._poll_wait),
            },
            host_config=host_config,
            stop_signal="SIGTERM",
            stop_timeout=grace_seconds(deployment.grace_period) + STOP_MARGIN,
            healthcheck={
                "test": health_check_argv(),
                "interval": int(self._health_interval * _NANOS),
                "timeout": 5 * _NANOS,
                "retries": 3,
                "start_period": 30 * _NANOS,
            },
        )

    def _labels(self, deployment: Deployment) -> dict[str, str]:
        return {
            MANAGED_LABEL: "true",
            PREFIX_LABEL: self._settings.queue_prefix,
            TASK_LABEL: deployment.task,
            VERSION_LABEL: deployment.version,
        }

    def _stop_one(self, container: Any, grace_period: float) -> int:
        """SIGTERM, SIGKILL after the grace period plus margin (the daemon does it), remove."""
        timeout = grace_seconds(grace_period) + STOP_MARGIN
        try:
            container.stop(timeout=timeout)
            code = int(container.wait(timeout=timeout + 30).get("StatusCode", -1))
            container.remove(force=True)
        except docker.errors.NotFound:
            return 0
        logger.info("stopped container %s (exit %d)", container.name, code)
        return code

    def _logs_of_unhealthy(self, task: str, version: str) -> str:
        parts = []
        for instance in self.instances(task, version):
            if instance.state is not InstanceState.HEALTHY:
                parts.append(f"\n--- {instance.instance_id} ---\n{self.logs(instance.instance_id, tail=15)}")
        return "".join(parts)


def _instance(container: Any, task: str, version: str) -> WorkerInstance:
    state = container.attrs.get("State", {})
    status = str(state.get("Status", container.status))
    health = str((state.get("Health") or {}).get("Status", "none"))
    restarts = int(container.attrs.get("RestartCount", 0))
    detail = f"{status}, health {health}, restarts {restarts}"
    return WorkerInstance(
        instance_id=container.name, task=task, version=version, state=_state(status, health), detail=detail
    )


def _state(status: str, health: str) -> InstanceState:
    if status in ("exited", "dead", "removing"):
        return InstanceState.STOPPED
    if status != "running":
        return InstanceState.STARTING  # created, restarting, paused
    return {
        "healthy": InstanceState.HEALTHY,
        "unhealthy": InstanceState.UNHEALTHY,
        "none": InstanceState.HEALTHY,  # an image without HEALTHCHECK: running is all we know
    }.get(health, InstanceState.STARTING)


@contextmanager
def _docker_errors(action: str) -> Iterator[None]:
    """Turn docker SDK errors into :class:`RuntimeFailure` naming the action."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        hint = "build it with `tornado image build`"
        raise RuntimeFailure(f"{action}: image not found ({exc}); {hint}") from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise RuntimeFailure(f"{action}: {exc}") from exc
