"""Django: submit a job once the current transaction commits (``transaction.on_commit``).

For applications whose database holds neither Tornado's queue nor an outbox. The job is submitted
through the HTTP API after the commit, so a rolled-back transaction never submits it. The
guarantee is weaker than the outbox's: a process that dies between the commit and the submission,
or an API that refuses it then, loses the job (it is logged). Django is imported only when used.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

logger = logging.getLogger("tornado.django")


class Submits(Protocol):
    """What submits a job: :class:`~tornado_core.client.TornadoClient` does."""

    def submit(
        self,
        task: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        delay: float | None = None,
    ) -> dict[str, Any]:
        """Queue one job; returns its receipt."""


def enqueue_on_commit(
    client: Submits,
    task: str,
    payload: dict[str, Any],
    *,
    using: str | None = None,
    idempotency_key: str | None = None,
    delay: float | None = None,
    robust: bool = True,
) -> None:
    """Submit ``task`` with ``client`` when the current transaction of database ``using`` commits.

    Outside a transaction (autocommit) Django runs the callback at once. A refusal or an
    unreachable API after the commit is logged by Django (``robust``, the default) or raised from
    the commit (``robust=False``; the data is committed all the same).

    Args:
        client: A :class:`~tornado_core.client.TornadoClient` (or anything with its ``submit``).
        task: Task name.
        payload: JSON payload (a dict).
        using: The Django database alias (default: ``"default"``).
        idempotency_key: Same key, same job: a retried request does not queue the job twice.
        delay: Seconds (0 to 900) before the job may run.
        robust: Log instead of raising when the submission fails.

    Raises:
        TypeError: ``payload`` is not a dict (checked now, not at the commit).
    """
    from django.db import transaction

    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, not {type(payload).__name__}")

    def submit() -> None:
        receipt = client.submit(task, payload, idempotency_key=idempotency_key, delay=delay)
        logger.info("queued %s as job %s after the commit", task, receipt.get("id"))

    # ``robust``: Django (4.2 and later) logs the callback's exception instead of raising it.
    transaction.on_commit(submit, using=using, robust=robust)
