"""The ``ecs`` runtime: one Amazon ECS service per task version (boto3).

* A task definition per version (family ``<prefix>-<task>-<version>``): the image's
  ``tornado worker`` command, settings as environment (or ``secrets`` from Secrets
  Manager / SSM), the image's health check, ``stopTimeout`` (at most 120 s on
  Fargate), ``initProcessEnabled: false`` (the image's tini is the one init),
  ``dockerLabels`` and ``awslogs``. A label holds a hash of it all, so ``ensure``
  registers a new revision only when something changed.
* A service of the same name with ``desiredCount = replicas``; ``stop`` scales it
  to 0, waits for its tasks to stop (SIGTERM, then SIGKILL after ``stopTimeout``)
  and deletes it. Tasks working on a job hold ECS task scale-in protection (see
  :mod:`tornado_core.adapters.runtimes.ecs.protection`) and are stopped once idle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.errors import runtime_failures
from tornado_core.adapters.runtimes.iam import WorkerRole, ecs_worker_role
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
from tornado_core.task import TaskSpec

logger = logging.getLogger("tornado.runtime.ecs")

SPEC_LABEL = "io.tornado.spec"
#: Largest ``stopTimeout`` Fargate accepts.
FARGATE_MAX_STOP_TIMEOUT = 120
_STOPPED = {"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED", "DELETED"}


@dataclass(frozen=True, kw_only=True)
class EcsConfig:
    """Where and how ECS runs the workers (``TORNADO_ECS_*`` variables, see :meth:`from_env`).

    Attributes:
        cluster: Cluster name (created if missing).
        launch_type: ``FARGATE`` or ``EC2``.
        subnets: Subnets of the tasks (``awsvpc``; required on Fargate).
        security_groups: Their security groups.
        assign_public_ip: Give tasks a public IP (subnets without a NAT gateway).
        cpu: Task CPU units (Fargate sizes, e.g. ``"512"``).
        memory: Task memory in MiB (e.g. ``"1024"``).
        execution_role_arn: Role ECS uses to pull from ECR and write logs.
        task_role_arn: Role the workers use for SQS, S3 (no keys in the environment).
        log_group: CloudWatch Logs group of ``awslogs``.
        secrets: Environment variable -> ARN of a Secrets Manager secret or SSM
            parameter; replaces the plain value of that variable.
        poll_interval: Seconds between status polls.
    """

    cluster: str = "tornado"
    launch_type: str = "FARGATE"
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: bool = False
    cpu: str = "512"
    memory: str = "1024"
    execution_role_arn: str | None = None
    task_role_arn: str | None = None
    log_group: str = "/tornado/workers"
    secrets: Mapping[str, str] = field(default_factory=dict)
    poll_interval: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EcsConfig:
        """Read ``TORNADO_ECS_*`` variables; unset ones keep their defaults.

        ``CLUSTER``, ``LAUNCH_TYPE``, ``SUBNETS`` and ``SECURITY_GROUPS`` (comma-separated),
        ``ASSIGN_PUBLIC_IP`` (true/false), ``CPU``, ``MEMORY``, ``EXECUTION_ROLE_ARN``,
        ``TASK_ROLE_ARN``, ``LOG_GROUP``, ``SECRETS`` (``VAR=arn,VAR2=arn``).
        """
        values: dict[str, Any] = {
            "cluster": _var(env, "CLUSTER"),
            "launch_type": _var(env, "LAUNCH_TYPE").upper(),
            "cpu": _var(env, "CPU"),
            "memory": _var(env, "MEMORY"),
            "execution_role_arn": _var(env, "EXECUTION_ROLE_ARN"),
            "task_role_arn": _var(env, "TASK_ROLE_ARN"),
            "log_group": _var(env, "LOG_GROUP"),
            "subnets": _list(env, "SUBNETS"),
            "security_groups": _list(env, "SECURITY_GROUPS"),
            "secrets": dict(item.split("=", 1) for item in _list(env, "SECRETS") if "=" in item),
        }
        if _var(env, "ASSIGN_PUBLIC_IP"):
            values["assign_public_ip"] = _var(env, "ASSIGN_PUBLIC_IP").lower() in ("1", "true", "yes")
        return cls(**{key: value for key, value in values.items() if value})


def _var(env: Mapping[str, str], name: str) -> str:
    return env.get(f"TORNADO_ECS_{name}", "").strip()


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in _var(env, name).split(",") if part.strip())


class EcsRuntime:
    """Runs each task version as an ECS service.

    Args:
        settings: The workers' settings (environment of the containers).
        client: A boto3 ECS client; default: one for ``settings`` (region, endpoint).
        config: Cluster, networking, roles; default: :meth:`EcsConfig.from_env` of
            ``os.environ``.
        poll_wait: The workers' long-poll seconds (bounds the health file's age).
    """

    name = "ecs"

    def __init__(
        self,
        settings: Settings,
        *,
        client: Any | None = None,
        config: EcsConfig | None = None,
        poll_wait: float = 10.0,
    ) -> None:
        self._settings = settings
        self._config = config or EcsConfig.from_env(os.environ)
        self._client = client or make_client(
            "ecs", region=settings.aws_region, endpoint_url=settings.aws_endpoint_url
        )
        self._poll_wait = poll_wait

    @property
    def config(self) -> EcsConfig:
        """Where and how ECS runs the workers."""
        return self._config

    def service_name(self, task: str, version: str) -> str:
        """The service and task-definition family of a version."""
        return workload_name(self._settings.queue_prefix, task, version, allowed="a-zA-Z0-9_-")

    def worker_role(self, task: str, version: str, *, spec: TaskSpec | None = None) -> WorkerRole:
        """The version's least-privilege task role, and what the execution role needs for its logs."""
        name, config = self.service_name(task, version), self._config
        return ecs_worker_role(
            self._settings,
            task,
            version,
            service=name,
            cluster=config.cluster,
            log_group=config.log_group,
            spec=spec,
        )

    # ------------------------------------------------------------------ port

    def ensure(self, deployment: Deployment) -> list[WorkerInstance]:
        """Create or update the version's service to ``deployment.replicas`` tasks.

        Raises:
            RuntimeFailure: ECS refused a call.
        """
        name = self.service_name(deployment.task, deployment.version)
        with runtime_failures(f"deploying {name}"):
            self._ensure_cluster()
            service = self._service(name)
            definition = self._task_definition(deployment, name)
            arn = self._current_definition(service, definition) or self._register(definition)
            if service is None:
                self._create_service(name, arn, deployment.replicas, deployment)
            elif service["taskDefinition"] != arn or service["desiredCount"] != deployment.replicas:
                self._client.update_service(
                    cluster=self._config.cluster, service=name, taskDefinition=arn,
                    desiredCount=deployment.replicas,
                )  # fmt: skip
        return self.instances(deployment.task, deployment.version)

    def instances(self, task: str, version: str) -> list[WorkerInstance]:
        """The service's tasks with their health (ECS task health status)."""
        name = self.service_name(task, version)
        with runtime_failures(f"listing the tasks of {name}"):
            return [_instance(t, task, version) for t in self._tasks(name)]

    def wait_healthy(self, task: str, version: str, *, replicas: int, timeout: float) -> list[WorkerInstance]:
        """Wait until ``replicas`` tasks are RUNNING and HEALTHY.

        Raises:
            RuntimeFailure: Not within ``timeout`` seconds (with the service's latest events).
        """
        deadline = time.monotonic() + timeout
        while True:
            current = self.instances(task, version)
            if sum(i.state is InstanceState.HEALTHY for i in current) >= replicas:
                return current
            if time.monotonic() > deadline:
                raise RuntimeFailure(
                    f"{self.service_name(task, version)}: fewer than {replicas} healthy task(s) after "
                    f"{timeout:.0f}s ({len(current)} found); latest events: {self._events(task, version)}"
                )
            time.sleep(self._config.poll_interval)

    def stop(self, task: str, version: str, *, grace_period: float) -> None:
        """Scale the service to 0, wait for its tasks to stop, delete it (idempotent)."""
        name = self.service_name(task, version)
        with runtime_failures(f"stopping {name}"):
            service = self._service(name)
            if service is None:
                return
            if service["desiredCount"] != 0:
                self._client.update_service(cluster=self._config.cluster, service=name, desiredCount=0)
            deadline = time.monotonic() + grace_seconds(grace_period) + STOP_MARGIN + 120
            while self._tasks(name):
                if time.monotonic() > deadline:
                    raise RuntimeFailure(f"{name}: tasks still running after scaling to 0")
                time.sleep(self._config.poll_interval)
            self._client.delete_service(cluster=self._config.cluster, service=name, force=True)
            logger.info("deleted ECS service %s", name)

    # ------------------------------------------------------------------ internals

    def _ensure_cluster(self) -> None:
        found = self._client.describe_clusters(clusters=[self._config.cluster]).get("clusters", [])
        if not any(c.get("status") == "ACTIVE" for c in found):
            self._client.create_cluster(clusterName=self._config.cluster)

    def _service(self, name: str) -> dict[str, Any] | None:
        answer = self._client.describe_services(cluster=self._config.cluster, services=[name])
        active = [s for s in answer.get("services", []) if s.get("status") == "ACTIVE"]
        return active[0] if active else None

    def _task_definition(self, deployment: Deployment, family: str) -> dict[str, Any]:
        container = self._container(deployment)
        definition: dict[str, Any] = {
            "family": family,
            "containerDefinitions": [container],
            "requiresCompatibilities": [self._config.launch_type],
            "networkMode": "awsvpc" if self._config.launch_type == "FARGATE" else "host",
            "cpu": self._config.cpu,
            "memory": self._config.memory,
            "tags": [{"key": k, "value": v} for k, v in container["dockerLabels"].items()],
        }
        for key, value in (
            ("executionRoleArn", self._config.execution_role_arn),
            ("taskRoleArn", self._config.task_role_arn),
        ):
            if value:
                definition[key] = value
        spec_hash = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]
        container["dockerLabels"][SPEC_LABEL] = spec_hash
        return definition

    def _container(self, deployment: Deployment) -> dict[str, Any]:
        env = {**self._settings.as_env(), **deployment.env, **health_env(self._poll_wait)}
        stop_timeout = grace_seconds(deployment.grace_period) + STOP_MARGIN
        if self._config.launch_type == "FARGATE" and stop_timeout > FARGATE_MAX_STOP_TIMEOUT:
            logger.warning(
                "stopTimeout %ds exceeds Fargate's %ds: jobs running longer are stopped and retried",
                stop_timeout, FARGATE_MAX_STOP_TIMEOUT,
            )  # fmt: skip
            stop_timeout = FARGATE_MAX_STOP_TIMEOUT
        return {
            "name": "worker",
            "image": deployment.image or image_ref(deployment.task, deployment.version),
            "essential": True,
            "memoryReservation": int(self._config.memory),  # the task's only container gets it all
            "command": worker_command(deployment, poll_wait=self._poll_wait),
            "environment": [
                {"name": k, "value": v} for k, v in sorted(env.items()) if k not in self._config.secrets
            ],
            "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(self._config.secrets.items())],
            "stopTimeout": stop_timeout,
            "linuxParameters": {"initProcessEnabled": False},
            "healthCheck": {
                "command": health_check_argv(), "interval": 10, "timeout": 5, "retries": 3, "startPeriod": 30,
            },
            "dockerLabels": {
                MANAGED_LABEL: "true",
                PREFIX_LABEL: self._settings.queue_prefix,
                TASK_LABEL: deployment.task,
                VERSION_LABEL: deployment.version,
            },
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": self._config.log_group,
                    "awslogs-region": self._settings.aws_region,
                    "awslogs-stream-prefix": "tornado",
                    "awslogs-create-group": "true",
                },
            },
        }  # fmt: skip

    def _current_definition(self, service: dict[str, Any] | None, definition: dict[str, Any]) -> str | None:
        """The service's task definition ARN if it already is ``definition`` (same hash)."""
        if service is None:
            return None
        arn = str(service["taskDefinition"])
        current = self._client.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        labels = current["containerDefinitions"][0].get("dockerLabels", {})
        wanted = definition["containerDefinitions"][0]["dockerLabels"][SPEC_LABEL]
        return arn if labels.get(SPEC_LABEL) == wanted else None

    def _register(self, definition: dict[str, Any]) -> str:
        answer = self._client.register_task_definition(**definition)
        arn = str(answer["taskDefinition"]["taskDefinitionArn"])
        logger.info("registered task definition %s", arn)
        return arn

    def _create_service(self, name: str, arn: str, replicas: int, deployment: Deployment) -> None:
        extra: dict[str, Any] = {}
        if self._config.launch_type == "FARGATE" or self._config.subnets:
            extra["networkConfiguration"] = {
                "awsvpcConfiguration": {
                    "subnets": list(self._config.subnets),
                    "securityGroups": list(self._config.security_groups),
                    "assignPublicIp": "ENABLED" if self._config.assign_public_ip else "DISABLED",
                }
            }
        self._client.create_service(
            cluster=self._config.cluster,
            serviceName=name,
            taskDefinition=arn,
            desiredCount=replicas,
            launchType=self._config.launch_type,
            deploymentConfiguration={
                "minimumHealthyPercent": 100,
                "maximumPercent": 200,
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            },
            enableECSManagedTags=True,
            propagateTags="TASK_DEFINITION",
            tags=[
                {"key": TASK_LABEL, "value": deployment.task},
                {"key": VERSION_LABEL, "value": deployment.version},
            ],
            **extra,
        )
        logger.info("created ECS service %s (%d tasks)", name, replicas)

    def _tasks(self, name: str) -> list[dict[str, Any]]:
        arns: list[str] = []
        for status in ("RUNNING", "STOPPED"):
            pages = self._client.get_paginator("list_tasks").paginate(
                cluster=self._config.cluster, serviceName=name, desiredStatus=status
            )
            arns += [arn for page in pages for arn in page.get("taskArns", [])]
        tasks: list[dict[str, Any]] = []
        for start in range(0, len(arns), 100):
            chunk = arns[start : start + 100]
            tasks += self._client.describe_tasks(cluster=self._config.cluster, tasks=chunk).get("tasks", [])
        # A service's tasks are in group "service:<name>" (moto ignores the serviceName filter).
        mine = {t["taskArn"]: t for t in tasks if t.get("group") == f"service:{name}"}
        return [t for t in mine.values() if t.get("lastStatus") != "STOPPED"]

    def _events(self, task: str, version: str) -> str:
        service = self._service(self.service_name(task, version))
        events = (service or {}).get("events", [])[:3]
        return "; ".join(str(e.get("message", "")) for e in events) or "none"


def _instance(task: dict[str, Any], name: str, version: str) -> WorkerInstance:
    status = str(task.get("lastStatus", "PENDING"))
    health = str(task.get("healthStatus") or _container_health(task))
    return WorkerInstance(
        instance_id=str(task["taskArn"]).rsplit("/", 1)[-1],
        task=name,
        version=version,
        state=_state(status, health),
        detail=f"{status}, health {health}",
    )


def _container_health(task: dict[str, Any]) -> str:
    states = {str(c.get("healthStatus", "UNKNOWN")) for c in task.get("containers", [])}
    return states.pop() if len(states) == 1 else "UNKNOWN"


def _state(status: str, health: str) -> InstanceState:
    if status in _STOPPED:
        return InstanceState.STOPPED
    if status != "RUNNING":
        return InstanceState.STARTING
    return {"HEALTHY": InstanceState.HEALTHY, "UNHEALTHY": InstanceState.UNHEALTHY}.get(
        health, InstanceState.STARTING
    )
