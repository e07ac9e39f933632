"""The AWS Lambda entry point ``tornado_core.worker.lambda_entry.handler``: SQS batches of one task version.

The ``lambda`` runtime deploys a function whose event source mapping hands it batches from the
version's queue, with ``ReportBatchItemFailures``. Each batch runs through the worker's own job
runner (:class:`~tornado_core.worker.batch.BatchRunner`: job store claims, idempotency, progress,
claim-checked payloads and results, retries through the visibility timeout), and the answer lists
exactly the messages that did not finish, so Lambda deletes the others and the queue delivers
those again (its redrive policy dead-letters the poison ones).

Lambda imports this module once per execution environment and calls :data:`handler` for every
batch; the services are built at the first batch (never at import) from the function's
environment: the settings' ``TORNADO_*`` variables and :data:`TASK_VAR`, :data:`VERSION_VAR`,
:data:`CONCURRENCY_VAR`. A configuration that cannot work raises ``ConfigError`` at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from tornado_core.errors import ConfigError, TaskNotFound, VersionNotFound
from tornado_core.naming import queue_spec
from tornado_core.ports.queue import ReceivedMessage
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.worker.batch import BatchRunner
from tornado_core.worker.options import default_worker_id

#: The task the function serves.
TASK_VAR = "TORNADO_LAMBDA_TASK"
#: The version of that task.
VERSION_VAR = "TORNADO_LAMBDA_VERSION"
#: Jobs of one batch run at once (the deployment's ``concurrency``).
CONCURRENCY_VAR = "TORNADO_LAMBDA_CONCURRENCY"
#: What Lambda is told to call.
HANDLER = f"{__name__}.handler"
#: Seconds kept back from the invocation's time to answer Lambda.
ANSWER_MARGIN = 1.0

Response = dict[str, list[dict[str, str]]]


def sqs_batch(event: Mapping[str, Any]) -> tuple[str, list[ReceivedMessage]]:
    """The queue name and messages of an SQS event (as Lambda's event source mapping sends it).

    Raises:
        ConfigError: Not an SQS event, or records from more than one queue (the function is
            wired to something other than its version's queue).
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or not records:
        raise ConfigError("not an SQS event: the function must be fed by its version's queue")
    queues: set[str] = set()
    messages: list[ReceivedMessage] = []
    for record in records:
        if not isinstance(record, Mapping) or record.get("eventSource") != "aws:sqs":
            raise ConfigError(f"not an SQS record: {str(record)[:200]}")
        queues.add(str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1])
        attributes = record.get("attributes") or {}
        messages.append(
            ReceivedMessage(
                message_id=str(record["messageId"]),
                body=str(record.get("body", "")),
                receipt=str(record["receiptHandle"]),
                receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
            )
        )
    if len(queues) != 1:
        raise ConfigError(f"one batch holds records of several queues: {', '.join(sorted(queues))}")
    return queues.pop(), messages


def batch_item_failures(message_ids: list[str]) -> Response:
    """The ``ReportBatchItemFailures`` answer naming ``message_ids``."""
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in message_ids]}


class LambdaWorker:
    """The worker of one Lambda execution environment: built at the first batch, reused by the next.

    Args:
        env: The function's environment (``os.environ`` by default, read at the first batch).
        services: Ready services (tests); by default built from ``env`` by the composition root.
        worker_id: Identity in job leases; by default host, pid and a random part.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        services: Services | None = None,
        worker_id: str | None = None,
    ) -> None:
        self._env = env
        self._given = services
        self._worker_id = worker_id
        self._lock = threading.Lock()
        self._ready: tuple[BatchRunner, str, float] | None = None
        self._close: Callable[[], None] = lambda: None

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> Response:
        """Run one SQS batch; answer the messages that did not finish.

        Raises:
            ConfigError: The function's configuration cannot work (missing or wrong settings,
                a task version its code lacks, records of another queue).
        """
        runner, queue, timeout = self.prepare()
        source, messages = sqs_batch(event)
        if source != queue:
            raise ConfigError(f"this function serves the queue {queue}, but the batch came from {source}")
        outcome = runner.run(queue, messages, deadline=_deadline(context, timeout))
        return batch_item_failures(outcome.failed)

    def prepare(self) -> tuple[BatchRunner, str, float]:
        """Build the services and the batch runner once (also called by the first batch).

        Returns:
            The runner, the queue it serves and the task's timeout.

        Raises:
            ConfigError: See :meth:`__call__`.
        """
        with self._lock:
            if self._ready is None:
                self._ready = self._build(os.environ if self._env is None else self._env)
            return self._ready

    def close(self) -> None:
        """Close the services this worker built (their connections)."""
        with self._lock:
            self._close()
            self._close, self._ready = (lambda: None), None

    def _build(self, env: Mapping[str, str]) -> tuple[BatchRunner, str, float]:
        task, version, concurrency = _served(env)
        services = self._given or self._services(env, concurrency)
        try:
            spec = services.registry.get(task, version)
        except (TaskNotFound, VersionNotFound) as exc:
            self._close()
            self._close = lambda: None
            raise ConfigError(
                f"the function's code has no {task} {version} ({exc}): deploy it again"
            ) from exc
        runner = BatchRunner(
            services, spec, worker_id=self._worker_id or default_worker_id(), concurrency=concurrency
        )
        return runner, queue_spec(services.settings.queue_prefix, spec).name, spec.timeout

    def _services(self, env: Mapping[str, str], concurrency: int) -> Services:
        from tornado_core.bootstrap import build_services, task_registry

        settings = Settings.load(env)
        if settings.queue_backend != "sqs":
            raise ConfigError(
                f"a Lambda worker is fed by SQS: TORNADO_QUEUE must be 'sqs', not {settings.queue_backend!r}"
            )
        registry = task_registry(env.get("TORNADO_TASKS_MODULES", "").split())
        services, self._close = build_services(settings, registry=registry, pool_size=concurrency + 2)
        return services


def _served(env: Mapping[str, str]) -> tuple[str, str, int]:
    task, version = env.get(TASK_VAR, "").strip(), env.get(VERSION_VAR, "").strip()
    if not task or not version:
        raise ConfigError(
            f"{TASK_VAR} and {VERSION_VAR} must name the task version this function serves "
            "(`tornado release deploy TASK VERSION --runtime lambda` sets them)"
        )
    raw = env.get(CONCURRENCY_VAR, "10").strip() or "10"
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ConfigError(f"{CONCURRENCY_VAR} must be a whole number from 1 to 100, not {raw!r}")
    return task, version, int(raw)


def _deadline(context: Any, timeout: float) -> float:
    """When the answer is due: Lambda's remaining time, less a margin (the task's timeout without one)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    seconds = remaining() / 1000.0 - ANSWER_MARGIN if callable(remaining) else timeout
    return time.monotonic() + max(0.0, seconds)


#: What Lambda calls: the one worker of this execution environment, which Lambda keeps between
#: batches (its services are built at the first batch, not here).
handler = LambdaWorker()
