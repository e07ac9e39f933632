"""Writes in the caller's own database transaction: jobs on the PostgreSQL queue, and the outbox.

The caller hands its DB-API connection (``Any`` here: the ports know no driver); whatever is
written through these ports exists if and only if the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from tornado_core.ports.jobs import NewJob
from tornado_core.ports.queue import OutgoingMessage


@dataclass(frozen=True, kw_only=True)
class Holder:
    """The job that holds a unique task's key, as the caller's transaction sees it.

    Attributes:
        job_id: Its id.
        version: Its task version (``None`` if its row is not written yet).
        status: Its status (``None`` if its row is not written yet).
    """

    job_id: str
    version: str | None = None
    status: str | None = None


class CallerTransactionPort(Protocol):
    """The PostgreSQL queue and job store, written with the caller's connection, never committed.

    Each method runs under a savepoint: when it raises, what it wrote is undone and the caller's
    transaction is still usable.
    """

    def check(self, connection: Any) -> None:
        """Raise ``ConfigError`` unless ``connection`` is in a transaction on a Tornado database."""

    def atomic(self, connection: Any) -> AbstractContextManager[None]:
        """A block whose writes (the methods' included) are all undone if it raises."""

    def send_recorded(
        self, connection: Any, queue: str, messages: Sequence[OutgoingMessage], jobs: Sequence[NewJob]
    ) -> None:
        """Store the messages and their jobs' ``queued`` rows in the caller's transaction.

        Raises:
            QueueUnavailable: The queue does not exist (nothing was written).
        """

    def hold_unique(
        self, connection: Any, task: str, tenant: str, key: str, job_id: str, *, window: float
    ) -> Holder | None:
        """Take a unique task's key for ``job_id`` in the caller's transaction.

        Returns:
            ``None`` if ``job_id`` holds the key now, else the job that holds it.
        """


@dataclass(frozen=True, kw_only=True)
class OutboxEntry:
    """One job to queue once the caller's transaction commits (validated, not yet routed).

    Attributes:
        tenant: The tenant it is queued for.
        task: The task name.
        payload_json: The payload as JSON text.
        idempotency_key: The key the relay submits it with (the caller's, or one made for the row).
        delay: Seconds after its relay before it may run.
    """

    tenant: str
    task: str
    payload_json: str = field(repr=False)
    idempotency_key: str
    delay: float = 0.0


@dataclass(frozen=True, kw_only=True)
class OutboxRow:
    """A committed outbox row, as the relay claims it.

    Attributes:
        row_id: Its id in ``tornado_outbox``.
        tenant: The tenant.
        task: The task name.
        payload: The payload (decoded JSON).
        idempotency_key: The key the job is submitted with.
        delay: Seconds before the job may run.
    """

    row_id: int
    tenant: str
    task: str
    payload: Any = field(repr=False)
    idempotency_key: str
    delay: float = 0.0


@dataclass(frozen=True, kw_only=True)
class FailedRow:
    """An outbox row the relay could not turn into a job, and why.

    Attributes:
        row_id: Its id.
        tenant: The tenant.
        task: The task name.
        error: Why it was refused.
        failed_at: Epoch seconds.
    """

    row_id: int
    tenant: str
    task: str
    error: str
    failed_at: float


@dataclass(frozen=True, kw_only=True)
class OutboxStatus:
    """What the outbox holds.

    Attributes:
        pending: Rows waiting for the relay.
        failed: Rows the relay refused (they stay until an operator acts).
        oldest_pending_age: Seconds since the oldest pending row was written; ``None`` if none.
        failures: The most recent refused rows.
    """

    pending: int
    failed: int
    oldest_pending_age: float | None
    failures: list[FailedRow]


class OutboxBatch(Protocol):
    """Rows claimed by one relay (locked: no other relay sees them) until the batch ends."""

    rows: Sequence[OutboxRow]

    def settle(self, sent: Sequence[int], failed: Mapping[int, str]) -> None:
        """Delete the rows whose jobs were queued and mark the refused ones failed (on commit)."""


class OutboxWriterPort(Protocol):
    """Adds entries to the outbox with the caller's connection (committed by the caller)."""

    def add(self, connection: Any, entries: Sequence[OutboxEntry]) -> list[int]:
        """Insert the entries; returns their row ids.

        Raises:
            ConfigError: The connection is not in a transaction, or has no ``tornado_outbox``.
        """


class OutboxStorePort(Protocol):
    """The outbox as its relay and operators see it.

    Every method raises ``StoreUnavailable`` when the database cannot be reached.
    """

    def install(self) -> bool:
        """Create the table if missing; whether it was created."""

    def claim(self, limit: int) -> AbstractContextManager[OutboxBatch]:
        """Lock up to ``limit`` pending rows, oldest first, skipping rows other relays hold.

        The batch commits when the block ends normally; on an exception, or if the process
        dies, its rows are released untouched.
        """

    def wait(self, timeout: float) -> None:
        """Return when rows may have been added (a commit's notice), or after ``timeout`` seconds."""

    def status(self, *, failures: int = 20) -> OutboxStatus:
        """Counts of pending and failed rows, and the ``failures`` most recent failed ones."""

    def retry_failed(self) -> int:
        """Make the failed rows pending again; returns how many."""

    def close(self) -> None:
        """Close the store's connections."""
