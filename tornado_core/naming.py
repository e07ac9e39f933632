"""Names of per-(task, version) queues and object keys."""

from __future__ import annotations

import functools
import re

from tornado_core.ports.queue import QueueSpec
from tornado_core.ports.versions import TaskVersion
from tornado_core.task import TaskSpec

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
DLQ_SUFFIX = "-dlq"


@functools.lru_cache(maxsize=4096)
def queue_name(prefix: str, task: str, version: str) -> str:
    """The work queue of one task version, e.g. ``tornado-demo-echo-v1_0_0``."""
    name = f"{prefix}-{task.replace('.', '-')}-v{version.replace('.', '_')}"
    name = _UNSAFE.sub("_", name)
    if len(name) + len(DLQ_SUFFIX) > 80:
        raise ValueError(f"queue name {name!r} is too long for SQS (80 characters with '{DLQ_SUFFIX}')")
    return name


def dead_letter_name(queue: str) -> str:
    """The dead-letter queue of ``queue``."""
    return queue + DLQ_SUFFIX


def queue_spec(prefix: str, spec: TaskSpec) -> QueueSpec:
    """The queue and DLQ of a task version whose code is at hand, with its redrive policy."""
    return _queue_spec(
        prefix, spec.name, spec.version, spec.retry.max_attempts, spec.visibility_timeout, fair=spec.fair
    )


def contract_queue_spec(prefix: str, contract: TaskVersion) -> QueueSpec:
    """The queue and DLQ of a task version known by its stored contract."""
    return _queue_spec(
        prefix, contract.task, contract.version, contract.max_attempts, contract.visibility_timeout
    )


def _queue_spec(
    prefix: str, task: str, version: str, max_attempts: int, visibility: float, *, fair: bool = False
) -> QueueSpec:
    name = queue_name(prefix, task, version)
    return QueueSpec(
        name=name,
        dead_letter_name=dead_letter_name(name),
        max_receive_count=max_attempts,
        visibility_timeout=visibility,
        fair=fair,
    )


#: Deliveries of an intake message before it goes to the intake's dead-letter queue.
INTAKE_MAX_RECEIVES = 5


def intake_queue_spec(prefix: str) -> QueueSpec:
    """The Celery intake's queue (``tornado.submit`` messages), e.g. ``tornado-submit``, and its DLQ."""
    name = _UNSAFE.sub("_", f"{prefix}-submit")
    return QueueSpec(
        name=name, dead_letter_name=dead_letter_name(name), max_receive_count=INTAKE_MAX_RECEIVES,
        visibility_timeout=30.0,
    )  # fmt: skip


def payload_key(task: str, job_id: str) -> str:
    """Object key of a claim-checked payload."""
    return f"payloads/{task}/{job_id}.json"


def result_key(task: str, job_id: str) -> str:
    """Object key of a claim-checked result."""
    return f"results/{task}/{job_id}.json"
