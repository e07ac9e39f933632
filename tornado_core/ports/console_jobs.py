"""The console's job ports: search over the whole job store, bulk actions' state, dead letters by id."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from tornado_core.ports.jobs import JobPage, JobRecord, JobStatus
from tornado_core.ports.operators import AuditEntry


class JobCriteria(Protocol):
    """What selects jobs (the console's ``JobFilter``); every field given must match.

    ``error_text`` is a case-insensitive part of the error type or message; ``created_after`` is
    inclusive and ``created_before`` exclusive.
    """

    @property
    def task(self) -> str | None:
        """The task's name."""

    @property
    def version(self) -> str | None:
        """The task version."""

    @property
    def tenant(self) -> str | None:
        """The tenant."""

    @property
    def status(self) -> JobStatus | None:
        """The status now."""

    @property
    def created_after(self) -> datetime | None:
        """Created at or after (aware)."""

    @property
    def created_before(self) -> datetime | None:
        """Created before (aware)."""

    @property
    def idempotency_key(self) -> str | None:
        """The key the job was submitted with."""

    @property
    def error_text(self) -> str | None:
        """Part of the error type or message."""


class BulkActionKind(StrEnum):
    """An action over every job a filter matches (docs/console-bulk-actions.md).

    ``cancel`` waiting jobs, and ask running ones to stop; ``redrive`` dead jobs back to their
    version's queue; ``retry`` dead jobs on their task's current version; ``purge`` dead jobs'
    messages for good (the jobs become ``failed``).
    """

    RETRY = "retry"
    CANCEL = "cancel"
    REDRIVE = "redrive"
    PURGE = "purge"


@dataclass(frozen=True, kw_only=True)
class BulkActionRow:
    """A bulk action as stored.

    Attributes:
        id: Its number.
        action: What it does.
        filter: The job filter, as ``JobFilter.to_json`` wrote it.
        operator: Who started it.
        status: ``running``, ``succeeded`` or ``failed``.
        matched: Jobs the filter matched when it started.
        done: Jobs it changed so far.
        skipped: Matched jobs it left alone (not in a state it applies to).
        position: Where it stands: the last job id handled, or a stage of a dead-letter sweep.
        error: Why it failed.
        runner: The process holding it (until its lease runs out).
        created_at: When it started; jobs created later are not part of it.
        updated_at: Its last progress.
        finished_at: When it ended.
    """

    id: int
    action: BulkActionKind
    filter: Mapping[str, Any]
    operator: str
    status: str
    matched: int | None
    done: int
    skipped: int
    position: str | None
    error: str | None
    runner: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Move:
    """What becomes of the dead jobs of one task version (and of their dead letters).

    Attributes:
        dead_letter_queue: The version's DLQ.
        target_queue: Where their messages go; ``None`` deletes them (purge).
        version: The version the jobs and their messages carry afterwards.
    """

    dead_letter_queue: str
    target_queue: str | None
    version: str


#: The moves of a bulk action: for a dead job's (task, version), its :class:`Move`; ``None``: skip it.
MovePlan = Callable[[str, str], Move | None]


#: Position of a dead-letter action whose jobs not dead are counted: its DLQs are being read. A sweep of
#: the PostgreSQL queue adds ``|<dlq>|<where in it>``.
SWEEP_LETTERS = "sweep:letters"
#: Position of a dead-letter action whose DLQs are read: the matching jobs still dead are what is left.
SWEEP_REST = "sweep:rest"


def swept_queue(position: str | None) -> str | None:
    """The DLQ a position of :data:`SWEEP_LETTERS` names, if any."""
    parts = (position or "").split("|")
    return parts[1] if parts[0] == SWEEP_LETTERS and len(parts) > 1 else None


@dataclass(frozen=True)
class BatchOutcome:
    """One batch of a bulk action.

    Attributes:
        held: The caller still held the action (else nothing was done: another process has it).
        seen: Jobs (or letters) the batch looked at (0: nothing left).
        done: Jobs it changed.
        skipped: Jobs it left alone.
    """

    held: bool
    seen: int = 0
    done: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Letter:
    """A message of a queue, looked at without being consumed."""

    message_id: str
    body: str


class JobSearchPort(Protocol):
    """The console's reads of the job store, and the guarded status change of dead jobs moved by hand.

    Methods raise ``StoreUnavailable`` when the store cannot be reached.
    """

    def search(self, criteria: JobCriteria, *, limit: int, cursor: str | None) -> JobPage:
        """Matching jobs newest first (by id); pass ``next_cursor`` back for the next page."""

    def count(self, criteria: JobCriteria, *, cap: int) -> tuple[int, bool]:
        """How many jobs match, counting at most ``cap``; the flag says the count stopped at the cap."""

    def tally(self, criteria: JobCriteria, *, created_before: datetime | None = None) -> dict[JobStatus, int]:
        """Matching jobs (created no later than ``created_before``) by status."""

    def records(self, job_ids: Sequence[str]) -> dict[str, JobRecord]:
        """The jobs of ``job_ids`` that exist, by id."""

    def dead_among(
        self, criteria: JobCriteria, job_ids: Sequence[str], *, created_before: datetime
    ) -> set[str]:
        """Those of ``job_ids`` that match, are ``dead`` and were created no later than ``created_before``."""

    def dead_versions(self, criteria: JobCriteria, *, created_before: datetime) -> list[tuple[str, str]]:
        """Each (task, version) with matching dead jobs created no later than ``created_before``, sorted."""

    def settle_dead(self, job_ids: Sequence[str], *, status: JobStatus, version: str | None = None) -> int:
        """Jobs whose dead letter an operator moved: those still ``dead`` take ``status`` (and ``version``).

        ``queued`` clears their finish time. Returns how many changed (a worker may have taken one).
        """

    def audit_trail(self, target: str, *, limit: int = 50) -> list[AuditEntry]:
        """The audit log's entries about ``target`` (a job id), newest first."""


class DeadLetterStorePort(Protocol):
    """Dead letters (or any queue's messages) found by message id or job id, not by receiving.

    Methods raise ``QueueUnavailable`` when the queue cannot be reached.
    """

    def letters(self, dead_letter_queue: str, *, limit: int) -> list[Letter]:
        """Up to ``limit`` messages of the queue, left in it (the oldest first where there is an order)."""

    def letter(self, dead_letter_queue: str, message_id: str) -> Letter | None:
        """One message, left in the queue; ``None`` if it is not there."""

    def move(
        self, dead_letter_queue: str, message_id: str, *, to_queue: str, version: str | None = None
    ) -> Letter | None:
        """Send one message to ``to_queue`` (its envelope re-pinned to ``version`` if given) and delete it.

        Returns:
            The message as it was, or ``None`` if it was not there.
        """

    def delete(self, dead_letter_queue: str, message_id: str) -> Letter | None:
        """Delete one message for good; returns it as it was, or ``None`` if it was not there."""

    def find(self, queues: Sequence[str], job_id: str) -> tuple[str, Letter] | None:
        """A message of job ``job_id`` in one of ``queues`` and the queue it is in; ``None`` if not found
        or if the queue cannot be searched by job id (SQS)."""


class BulkActionStorePort(Protocol):
    """Bulk actions, their progress and leases, and their batches applied in the job store.

    Every change made for a runner checks that it still holds the action (its lease, renewed by each
    batch); a batch and the progress it adds commit together. Methods raise ``StoreUnavailable``.
    """

    def create(
        self,
        action: BulkActionKind,
        filter_json: Mapping[str, Any],
        *,
        criteria: JobCriteria,
        operator: str,
        runner: str,
        lease_seconds: float,
    ) -> BulkActionRow:
        """Record a running action held by ``runner``, with the number of jobs ``criteria`` match now."""

    def get(self, action_id: int) -> BulkActionRow | None:
        """One action, or ``None``."""

    def recent(self, limit: int) -> list[BulkActionRow]:
        """The latest actions, newest first."""

    def adopt(self, runner: str, *, lease_seconds: float) -> BulkActionRow | None:
        """Take one running action whose lease ran out (its process stopped or died), or ``None``."""

    def release(self, action_id: int, *, runner: str) -> None:
        """Give an action back (a stopping process): its lease ends now, another process resumes it."""

    def cancel_batch(
        self, action_id: int, *, runner: str, criteria: JobCriteria, size: int, lease_seconds: float
    ) -> BatchOutcome:
        """Cancel the next ``size`` matching jobs after the action's position (by job id), in one commit
        with the progress: waiting ones become ``cancelled``, running ones get their cancellation requested.
        """

    def sweep_letters(
        self,
        action_id: int,
        *,
        runner: str,
        criteria: JobCriteria,
        move: Move,
        size: int,
        lease_seconds: float,
    ) -> BatchOutcome:
        """Act on the next ``size`` letters of ``move``'s DLQ (in the job store's database: the PostgreSQL
        queue) whose jobs match and are dead, in one commit with the progress.

        The letters are read in a stable order from the position if it names that DLQ
        (:func:`swept_queue`), else from the DLQ's start; the position then names the DLQ and the last
        letter read. ``seen`` counts the letters read (0: the DLQ is done, or its target queue does not
        exist); ``done`` the jobs moved (``queued``) or, without a target, purged (``failed``).
        """

    def fail_dead(
        self, action_id: int, *, runner: str, criteria: JobCriteria, size: int, lease_seconds: float
    ) -> BatchOutcome:
        """Mark up to ``size`` matching dead jobs ``failed`` (a purge's jobs whose letter was not found)."""

    def add_progress(
        self,
        action_id: int,
        *,
        runner: str,
        done: int = 0,
        skipped: int = 0,
        position: str | None = None,
        lease_seconds: float,
    ) -> bool:
        """Add to the counts, set the position if given, renew the lease; ``False``: not held any more."""

    def finish(
        self, action_id: int, *, runner: str, error: str | None = None, skipped: int = 0
    ) -> BulkActionRow | None:
        """End the action (``failed`` with ``error``, else ``succeeded``), adding ``skipped``.

        Returns:
            The action as it ended, or ``None`` if ``runner`` did not hold it.
        """
