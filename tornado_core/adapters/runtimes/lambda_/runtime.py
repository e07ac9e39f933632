"""The ``lambda`` runtime: each task version is one AWS Lambda function fed by the version's SQS queue.

* The function ``<prefix>-<task>-<version>`` runs ``tornado_core.worker.lambda_entry.handler`` on
  ``python3.11``: a zip of the version's wheels (``Deployment.python_path``, see :mod:`.packaging`)
  uploaded to the bucket under ``lambda/``, or a container image (``Deployment.image``). Its
  environment: the settings, the task version it serves, the jobs it runs at once. Its timeout: the
  grace period, at most 900 s and at most the queue's visibility timeout (Lambda's rules).
* An event source mapping wires the version's queue to it: ``ReportBatchItemFailures`` (a failed
  job does not redeliver the rest of its batch), batches of 10 (1 for a task with a global cap),
  ``ScalingConfig.MaximumConcurrency`` = the task's cap, else the replicas, within Lambda's 2..1000.
  The queue's redrive policy still moves poison messages to the DLQ.
* ``stop`` (drain, retire, rollback) disables the mapping, waits until the queue has nothing in
  flight (at most the function's timeout: Lambda has ended every invocation by then), and deletes
  the mapping, the function and the role the runtime created for it.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import suppress
from typing import Any

from botocore.exceptions import ClientError

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.errors import runtime_failures
from tornado_core.adapters.runtimes.iam import (
    LAMBDA_SERVICE,
    WorkerRole,
    bounded_name,
    delete_managed_role,
    ensure_role,
    lambda_policy,
    worker_scope,
)
from tornado_core.adapters.runtimes.images.contract import STOP_MARGIN, grace_seconds, workload_name
from tornado_core.adapters.runtimes.lambda_.config import LambdaConfig
from tornado_core.adapters.runtimes.lambda_.functions import FunctionKeeper, code_of, found, wait_for
from tornado_core.errors import RuntimeFailure, TaskNotFound, VersionNotFound
from tornado_core.naming import queue_name
from tornado_core.ports.runtime import Deployment, InstanceState, WorkerInstance
from tornado_core.registry import TaskRegistry
from tornado_core.settings import Settings
from tornado_core.task import TaskSpec
from tornado_core.worker.lambda_entry import CONCURRENCY_VAR, TASK_VAR, VERSION_VAR

logger = logging.getLogger("tornado.runtime.lambda")

#: Longest function timeout Lambda allows, in seconds.
MAX_TIMEOUT = 900
#: ``ScalingConfig.MaximumConcurrency`` Lambda accepts for SQS.
CONCURRENCY_RANGE = (2, 1000)
#: Messages per batch (Lambda's most for a standard queue without a batching window).
BATCH_SIZE = 10
#: Seconds a mapping may take to settle (enable, disable, delete).
SETTLE_TIMEOUT = 120.0
_SETTLED = ("Enabled", "Disabled")
_OFF = ("Disabled", "Disabling", "Deleting")


class LambdaRuntime:
    """Runs each task version as a Lambda function behind an SQS event source mapping.

    Args:
        settings: The workers' settings (the functions' environment; region, bucket, queue prefix).
        registry: Tasks with code here: a task's global cap sets the mapping's concurrency.
        config: Role, memory, network; default: :meth:`LambdaConfig.from_env` of ``os.environ``.
        client: A boto3 Lambda client; default: one for ``settings``.

    Raises:
        ConfigError: The configuration cannot deploy (see :meth:`LambdaConfig.check`).
    """

    name = "lambda"

    def __init__(
        self,
        settings: Settings,
        *,
        registry: TaskRegistry | None = None,
        config: LambdaConfig | None = None,
        client: Any | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry or TaskRegistry()
        self._config = config or LambdaConfig.from_env(os.environ)
        self._config.check()
        self._clients: dict[str, Any] = {"lambda": client} if client is not None else {}
        self._functions = FunctionKeeper(self._client("lambda"), self._config)

    @property
    def config(self) -> LambdaConfig:
        """Role, memory, network."""
        return self._config

    def function_name(self, task: str, version: str) -> str:
        """The function of a version (64 characters at most, unique)."""
        prefix = self._config.function_prefix or self._settings.queue_prefix
        return bounded_name(workload_name(prefix, task, version, allowed="a-zA-Z0-9_-", limit=1000))

    def role_name(self, task: str, version: str) -> str:
        """The role created for a version's function (``TORNADO_LAMBDA_CREATE_ROLE``)."""
        return bounded_name(f"{self.function_name(task, version)}-worker")

    def worker_role(self, task: str, version: str, *, spec: TaskSpec | None = None) -> WorkerRole:
        """The least-privilege execution role of the version's function (docs/iam.md)."""
        spec = spec or self._spec(task, version)
        scope = worker_scope(self._settings, task, version, spec=spec, sts=self._client("sts"))
        policy = lambda_policy(
            scope, function_name=self.function_name(task, version), vpc=bool(self._config.subnets)
        )
        return WorkerRole(name=self.role_name(task, version), service=LAMBDA_SERVICE, policy=policy)

    # ------------------------------------------------------------------ port

    def ensure(self, deployment: Deployment) -> list[WorkerInstance]:
        """Create or update the version's function and its event source mapping.

        Raises:
            ConfigError: No code to deploy (or both an image and a folder), another package type.
            PackagingError: The folder's code is not for Lambda.
            RuntimeFailure: AWS refused a call, or the function failed to become ready.
        """
        task, version = deployment.task, deployment.version
        name = self.function_name(task, version)
        with runtime_failures(f"deploying {name}"):
            queue_arn, visibility = self._queue(task, version)
            code = code_of(
                deployment, function=name, bucket=self._settings.bucket, s3=self._client("s3"),
                architecture=self._config.architecture,
            )  # fmt: skip
            role, fresh = self._role(task, version)
            tags = {"io.tornado.task": task, "io.tornado.version": version, "io.tornado.managed": "true"}
            settings = self._function_settings(deployment, role, self._timeout(deployment, visibility))
            self._functions.ensure(name, code, settings, tags=tags, fresh_role=fresh)
            self._ensure_mapping(name, queue_arn, self._mapping_settings(deployment))
        return self.instances(task, version)

    def instances(self, task: str, version: str) -> list[WorkerInstance]:
        """The function's event source mapping, healthy when enabled on a ready function."""
        name = self.function_name(task, version)
        with runtime_failures(f"looking at {name}"):
            function = self._functions.get(name)
            if function is None:
                return []
            return [_instance(function["Configuration"], m, task, version) for m in self._mappings(name)]

    def wait_healthy(self, task: str, version: str, *, replicas: int, timeout: float) -> list[WorkerInstance]:
        """Wait until the mapping is enabled on a ready function (Lambda scales; ``replicas`` is no count).

        Raises:
            RuntimeFailure: Not within ``timeout`` seconds (with the function's and mapping's states).
        """

        def healthy() -> list[WorkerInstance] | None:
            current = self.instances(task, version)
            return current if any(i.state is InstanceState.HEALTHY for i in current) else None

        def failure() -> str:
            states = "; ".join(i.detail for i in self.instances(task, version)) or "no function or mapping"
            return f"{self.function_name(task, version)}: not ready after {timeout:.0f}s ({states})"

        return wait_for(healthy, timeout=timeout, interval=self._config.poll_interval, failure=failure)

    def stop(self, task: str, version: str, *, grace_period: float) -> None:
        """Disable the mapping, let in-flight batches end, delete mapping, function and created role."""
        name = self.function_name(task, version)
        with runtime_failures(f"stopping {name}"):
            function = self._functions.get(name)
            mappings = self._mappings(name)
            for mapping in mappings:
                self._switch_off(str(mapping["UUID"]))
            if mappings:
                longest = function["Configuration"].get("Timeout") if function else None
                self._wait_in_flight(task, version, (longest or grace_seconds(grace_period)) + STOP_MARGIN)
            for mapping in mappings:
                self._delete_mapping(str(mapping["UUID"]))
            if function is not None:
                self._functions.delete(name)
            if self._config.create_role and delete_managed_role(
                self._client("iam"), self.role_name(task, version)
            ):
                logger.info("deleted role %s", self.role_name(task, version))

    # ------------------------------------------------------------------ internals

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = make_client(
                service, region=self._settings.aws_region, endpoint_url=self._settings.aws_endpoint_url
            )
        return self._clients[service]

    def _spec(self, task: str, version: str) -> TaskSpec | None:
        with suppress(TaskNotFound, VersionNotFound):
            return self._registry.get(task, version)
        return None

    def _queue(self, task: str, version: str) -> tuple[str, int]:
        """The version's queue ARN and visibility timeout (``release deploy`` made the queue)."""
        sqs, name = self._client("sqs"), queue_name(self._settings.queue_prefix, task, version)
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            raise RuntimeFailure(
                f"queue {name} does not exist (`tornado release deploy` creates it): {exc}"
            ) from exc
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "VisibilityTimeout"])
        return str(attributes["Attributes"]["QueueArn"]), int(attributes["Attributes"]["VisibilityTimeout"])

    def _in_flight(self, task: str, version: str) -> int:
        sqs, name = self._client("sqs"), queue_name(self._settings.queue_prefix, task, version)
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError:
            return 0  # no queue, nothing in flight
        names = ["ApproximateNumberOfMessagesNotVisible"]
        answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return int(answer.get(names[0], 0))

    def _role(self, task: str, version: str) -> tuple[str, bool]:
        """The execution role's ARN, and whether it was just created."""
        if self._config.role_arn:
            return self._config.role_arn, False
        role = self.worker_role(task, version)
        tags = {"io.tornado.task": task, "io.tornado.version": version}
        return ensure_role(self._client("iam"), role, tags=tags), True

    def _timeout(self, deployment: Deployment, visibility: int) -> int:
        wanted = grace_seconds(deployment.grace_period)
        timeout = max(1, min(wanted, MAX_TIMEOUT, visibility))
        if timeout < wanted:
            logger.warning(
                "function timeout %ds instead of %ds (Lambda allows at most 900 s, and no more than the "
                "queue's visibility timeout, %ds): jobs running longer are cut off and retried",
                timeout, wanted, visibility,
            )  # fmt: skip
        return timeout

    def _function_settings(self, deployment: Deployment, role: str, timeout: int) -> dict[str, Any]:
        served = {
            TASK_VAR: deployment.task,
            VERSION_VAR: deployment.version,
            CONCURRENCY_VAR: str(min(deployment.concurrency, BATCH_SIZE)),
        }
        settings: dict[str, Any] = {
            "Role": role,
            "Timeout": timeout,
            "MemorySize": self._config.memory,
            "Environment": {"Variables": {**self._settings.as_env(), **deployment.env, **served}},
        }
        if self._config.subnets:
            settings["VpcConfig"] = {
                "SubnetIds": list(self._config.subnets),
                "SecurityGroupIds": list(self._config.security_groups),
            }
        return settings

    def _mapping_settings(self, deployment: Deployment) -> dict[str, Any]:
        """Batch size, failure reporting, and the concurrency: the task's cap, else the replicas."""
        spec = self._spec(deployment.task, deployment.version)
        cap = spec.max_concurrency if spec is not None else None
        wanted = cap or deployment.replicas
        low, high = CONCURRENCY_RANGE
        concurrency = min(max(wanted, low), high)
        if concurrency != wanted:
            logger.warning(
                "MaximumConcurrency %d instead of %d (Lambda's range is %d..%d)",
                concurrency,
                wanted,
                low,
                high,
            )
        return {
            "BatchSize": 1 if cap else BATCH_SIZE,  # a capped task's jobs do not wait for slots in a batch
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": concurrency},
        }

    def _mappings(self, name: str) -> list[dict[str, Any]]:
        pages = self._client("lambda").get_paginator("list_event_source_mappings").paginate(FunctionName=name)
        return [dict(m) for page in pages for m in page.get("EventSourceMappings", [])]

    def _ensure_mapping(self, name: str, queue_arn: str, wanted: dict[str, Any]) -> None:
        client = self._client("lambda")
        existing = [m for m in self._mappings(name) if m.get("EventSourceArn") == queue_arn]
        current = self._settled(str(existing[0]["UUID"])) if existing else None
        if current is None:
            answer = client.create_event_source_mapping(
                FunctionName=name, EventSourceArn=queue_arn, Enabled=True, **wanted
            )
            logger.info("mapped %s to %s (%s)", queue_arn, name, answer.get("UUID"))
        elif current.get("State") != "Enabled" or any(current.get(k) != v for k, v in wanted.items()):
            client.update_event_source_mapping(UUID=current["UUID"], Enabled=True, **wanted)

    def _settled(self, uuid: str) -> dict[str, Any] | None:
        """The mapping once it is enabled or disabled; ``None`` once it is gone."""
        client = self._client("lambda")

        def settled() -> tuple[dict[str, Any] | None] | None:
            mapping = found(lambda: client.get_event_source_mapping(UUID=uuid))
            return (mapping,) if mapping is None or mapping.get("State") in _SETTLED else None

        (mapping,) = wait_for(
            settled,
            timeout=SETTLE_TIMEOUT,
            interval=self._config.poll_interval,
            failure=lambda: f"event source mapping {uuid} did not settle in {SETTLE_TIMEOUT:.0f}s",
        )
        return None if mapping is None else dict(mapping)

    def _switch_off(self, uuid: str) -> None:
        mapping = self._settled(uuid)
        if mapping is not None and mapping.get("State") != "Disabled":
            self._client("lambda").update_event_source_mapping(UUID=uuid, Enabled=False)
            self._settled(uuid)
            logger.info("disabled event source mapping %s", uuid)

    def _wait_in_flight(self, task: str, version: str, longest: float) -> None:
        """Until nothing is in flight, or ``longest`` seconds (every invocation has ended by then)."""
        deadline = time.monotonic() + longest
        while (left := self._in_flight(task, version)) and time.monotonic() < deadline:
            time.sleep(self._config.poll_interval)
        if left:
            logger.info("%d message(s) still hidden (retries waiting): they stay in the queue", left)

    def _delete_mapping(self, uuid: str) -> None:
        client = self._client("lambda")
        found(lambda: client.delete_event_source_mapping(UUID=uuid))
        wait_for(
            lambda: True if found(lambda: client.get_event_source_mapping(UUID=uuid)) is None else None,
            timeout=SETTLE_TIMEOUT,
            interval=self._config.poll_interval,
            failure=lambda: f"event source mapping {uuid} is not deleted after {SETTLE_TIMEOUT:.0f}s",
        )


def _instance(function: dict[str, Any], mapping: dict[str, Any], task: str, version: str) -> WorkerInstance:
    state, update = function.get("State", "Active"), function.get("LastUpdateStatus") or "Successful"
    mapped = str(mapping.get("State", ""))
    if mapped in _OFF:
        health = InstanceState.STOPPED
    elif state == "Failed" or update == "Failed":
        health = InstanceState.UNHEALTHY
    elif state in ("Active", "Inactive") and update == "Successful" and mapped == "Enabled":
        health = InstanceState.HEALTHY
    else:
        health = InstanceState.STARTING
    return WorkerInstance(
        instance_id=str(mapping.get("UUID", "")),
        task=task,
        version=version,
        state=health,
        detail=f"function {state} ({update}), mapping {mapped}",
    )
