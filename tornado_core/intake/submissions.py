"""A Celery ``tornado.submit`` message read as a job submission (the row the producer path takes).

``app.send_task("tornado.submit", args=[task, payload], kwargs={"tenant": ..., "idempotency_key":
..., "delay": ...}, queue=...)``: the task and payload may also come as keyword arguments. Without
an idempotency key, the Celery message's id is the key (``celery:<id>``), so a message delivered
twice is one job.
"""

from __future__ import annotations

from typing import Any

from tornado_core.adapters.celery.protocol import CeleryTask
from tornado_core.ports.transactional import OutboxRow
from tornado_core.transactional.entries import EntryInvalid, check_job

#: The Celery task name of a job submission.
SUBMIT_TASK = "tornado.submit"
#: Prefix of the idempotency keys made from Celery message ids.
CELERY_KEY_PREFIX = "celery:"
#: The positional arguments, in order, and every keyword argument ``tornado.submit`` takes.
POSITIONAL = ("task", "payload")
KEYWORDS = frozenset({"task", "payload", "tenant", "idempotency_key", "delay"})


def submission_row(row_id: int, message: CeleryTask) -> OutboxRow:
    """The submission a ``tornado.submit`` message asks for.

    Args:
        row_id: The row's number among the messages received together.
        message: The Celery message.

    Raises:
        EntryInvalid: Another Celery task, or arguments that do not make a job (with one
            problem per field).
    """
    if message.name != SUBMIT_TASK:
        raise EntryInvalid(
            [{"field": "task", "message": f"a Celery message of task {message.name!r}, not {SUBMIT_TASK!r}"}]
        )
    values, problems = _arguments(message)
    if "tenant" not in values:
        problems.append({"field": "tenant", "message": "required (a keyword argument of tornado.submit)"})
    if "task" not in values:
        problems.append({"field": "task", "message": "required (the first argument of tornado.submit)"})
    if not values.get("idempotency_key") and not message.task_id:
        problems.append({"field": "idempotency_key", "message": "required when the message has no id"})
    if problems:
        raise EntryInvalid(problems)
    key = values.get("idempotency_key") or CELERY_KEY_PREFIX + message.task_id
    payload = values.get("payload", {})
    delay = values.get("delay", 0.0)
    check_job(values["tenant"], values["task"], payload, key, delay)
    return OutboxRow(
        row_id=row_id, tenant=values["tenant"], task=values["task"], payload=payload, idempotency_key=key,
        delay=float(delay),
    )  # fmt: skip


def _arguments(message: CeleryTask) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The named arguments of the message, and the problems of their shape."""
    problems: list[dict[str, str]] = []
    if len(message.args) > len(POSITIONAL):
        problems.append(
            {
                "field": "args",
                "message": f"at most {len(POSITIONAL)} (task, payload), not {len(message.args)}",
            }
        )
    values = dict(zip(POSITIONAL, message.args, strict=False))
    for name, value in message.kwargs.items():
        if name not in KEYWORDS:
            problems.append({"field": name, "message": f"unknown; tornado.submit takes {sorted(KEYWORDS)}"})
        elif name in values:
            problems.append({"field": name, "message": "given both as an argument and a keyword argument"})
        else:
            values[name] = value
    return values, problems
