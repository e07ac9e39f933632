"""Adding jobs to the outbox in the caller's transaction: the job is queued by the relay after the commit.

Works with any queue backend (SQS in particular): the outbox is a table in the caller's own
database (``tornado outbox install``), written with the caller's connection. What can be checked
without the task's code is checked here (:mod:`~tornado_core.transactional.entries`); the relay
checks the rest and marks a row it cannot queue as failed (``tornado outbox status``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tornado_core.errors import TornadoError
from tornado_core.ports.transactional import OutboxEntry, OutboxWriterPort
from tornado_core.transactional.entries import EntryInvalid, outbox_entry

_JOB_FIELDS = frozenset({"task", "payload", "idempotency_key", "delay"})


def _default_writer() -> OutboxWriterPort:
    # The outbox is a PostgreSQL table written with the caller's psycopg2 connection: there is no
    # other technology to pick, so the writer is not the composition root's choice.
    from tornado_core.adapters.postgres.outbox import PostgresOutboxWriter

    return PostgresOutboxWriter()


def add_to_outbox(
    connection: Any,
    tenant: str,
    task: str,
    payload: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    delay: float = 0.0,
    writer: OutboxWriterPort | None = None,
) -> int:
    """Add one job to the outbox in the transaction of ``connection``; returns its row id.

    Nothing is queued now: once the transaction commits, the relay (``tornado outbox relay``)
    queues the job exactly once; if it rolls back, there never was a row.

    Args:
        connection: The caller's psycopg2 connection, in a transaction (not autocommit), on the
            database where ``tornado outbox install`` created ``tornado_outbox``.
        tenant: The tenant the job belongs to.
        task: Task name.
        payload: JSON payload (a dict).
        idempotency_key: Same key (for this tenant and task), same job id; without one, the row
            gets a key of its own, so its job id is fixed when it is added.
        delay: Seconds (0 to 900) after the relay queues it before the job may run.
        writer: Where the row goes (tests); the PostgreSQL table by default.

    Raises:
        EntryInvalid: A malformed tenant, task name, key, delay or payload (nothing was written).
        ConfigError: The connection is in autocommit mode, its transaction already failed, or
            its database has no outbox.
    """
    job = {"task": task, "payload": payload, "idempotency_key": idempotency_key, "delay": delay}
    return add_many_to_outbox(connection, tenant, [job], writer=writer)[0]


def add_many_to_outbox(
    connection: Any,
    tenant: str,
    jobs: Sequence[Mapping[str, Any]],
    *,
    writer: OutboxWriterPort | None = None,
) -> list[int]:
    """Add several jobs (``{"task", "payload", "idempotency_key"?, "delay"?}`` each): all or none.

    Raises:
        EntryInvalid: As :func:`add_to_outbox`, with a note naming the job refused.
        ConfigError: As :func:`add_to_outbox`.
    """
    entries = [_entry(tenant, index, job) for index, job in enumerate(jobs)]
    return (writer or _default_writer()).add(connection, entries)


def _entry(tenant: str, index: int, job: Mapping[str, Any]) -> OutboxEntry:
    try:
        unknown = sorted(set(job) - _JOB_FIELDS)
        if unknown:
            raise EntryInvalid([{"field": name, "message": "unknown field"} for name in unknown])
        return outbox_entry(
            tenant,
            job.get("task"),
            job.get("payload"),
            idempotency_key=job.get("idempotency_key"),
            delay=job.get("delay") or 0.0,
        )
    except TornadoError as exc:
        exc.add_note(f"(job {index} of the call; nothing was added)")
        raise
