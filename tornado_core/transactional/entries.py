"""What can be checked of a job without the task's code: names, key, delay, payload shape and size.

The in-transaction enqueue checks these first (then the Submitter checks the rest); the outbox can
check only these when a row is added, the relay the rest.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from tornado_core.errors import ConfigError, TornadoError
from tornado_core.job_ids import MAX_IDEMPOTENCY_KEY
from tornado_core.jsontext import compact
from tornado_core.ports.schedules import QUEUE_DELAY_LIMIT
from tornado_core.ports.transactional import OutboxEntry

#: Longest delay of a job queued in a transaction, in seconds: the queue's own limit (a job due
#: later would have to be parked, which only the API does).
MAX_DELAY = QUEUE_DELAY_LIMIT
#: Largest payload, as compact JSON in UTF-8 bytes (the API's default body limit).
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024
#: Dotted lower-case identifiers, like ``nfe.emit`` (as ``@task`` requires).
_TASK = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+")
#: Longest tenant name (as ``tornado tenants create`` allows).
MAX_TENANT = 64
#: Prefix of the idempotency keys made for outbox rows added without one.
OUTBOX_KEY_PREFIX = "outbox:"


class EntryInvalid(TornadoError):
    """A job to queue in a transaction was refused before anything was written.

    Attributes:
        problems: One entry per problem, each ``{"field": ..., "message": ...}``.
    """

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("job refused: " + "; ".join(f"{p['field']}: {p['message']}" for p in problems))
        self.problems = problems


class UnknownTenant(ConfigError):
    """No tenant of that name exists (``tornado tenants create`` makes one)."""

    def __init__(self, tenant: str) -> None:
        super().__init__(f"unknown tenant {tenant!r} (create it with `tornado tenants create`)")
        self.tenant = tenant


def entry_problems(
    tenant: Any, task: Any, idempotency_key: Any = None, delay: Any = 0.0
) -> list[dict[str, str]]:
    """Every problem of the job's names, key and delay (the payload aside)."""
    problems: list[dict[str, str]] = []
    if not _is_tenant_name(tenant):
        problems.append(
            {"field": "tenant", "message": f"must be a tenant name (1 to {MAX_TENANT} of a-z 0-9 - _ .)"}
        )
    if not isinstance(task, str) or not _TASK.fullmatch(task):
        problems.append(
            {"field": "task", "message": "must be a dotted lower-case task name, like 'nfe.emit'"}
        )
    if idempotency_key is not None and (
        not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY
    ):
        problems.append(
            {
                "field": "idempotency_key",
                "message": f"must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters",
            }
        )
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY:
        problems.append({"field": "delay", "message": f"must be a number of seconds from 0 to {MAX_DELAY}"})
    return problems


def _is_tenant_name(name: Any) -> bool:
    """As ``tornado tenants create`` accepts them: letters, digits, ``-_.``, at most 64."""
    return (
        isinstance(name, str) and 0 < len(name) <= MAX_TENANT and all(c.isalnum() or c in "-_." for c in name)
    )


def payload_json(payload: Any) -> tuple[str | None, list[dict[str, str]]]:
    """The payload as compact JSON text, or the problems that prevent it."""
    if not isinstance(payload, dict):
        return None, [{"field": "payload", "message": "must be a JSON object (a dict)"}]
    try:
        text = compact(payload)
    except (TypeError, ValueError) as exc:
        return None, [{"field": "payload", "message": f"is not JSON-serialisable: {exc}"}]
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        return None, [{"field": "payload", "message": f"exceeds {MAX_PAYLOAD_BYTES} bytes as JSON"}]
    return text, []


def check_job(tenant: Any, task: Any, payload: Any, idempotency_key: Any = None, delay: Any = 0.0) -> None:
    """Refuse what no task could accept, before the task's own checks.

    Raises:
        EntryInvalid: Naming every problem.
    """
    problems = entry_problems(tenant, task, idempotency_key, delay)
    if not isinstance(payload, dict):
        problems.extend(payload_json(payload)[1])
    if problems:
        raise EntryInvalid(problems)


def outbox_entry(
    tenant: Any, task: Any, payload: Any, *, idempotency_key: Any = None, delay: Any = 0.0
) -> OutboxEntry:
    """A validated outbox entry; without a key, one is made for it (its job id follows from it).

    Raises:
        EntryInvalid: Naming every problem.
    """
    problems = entry_problems(tenant, task, idempotency_key, delay)
    text, payload_problems = payload_json(payload)
    problems.extend(payload_problems)
    if problems or text is None:
        raise EntryInvalid(problems)
    return OutboxEntry(
        tenant=tenant,
        task=task,
        payload_json=text,
        idempotency_key=idempotency_key or f"{OUTBOX_KEY_PREFIX}{uuid.uuid4().hex}",
        delay=float(delay),
    )
