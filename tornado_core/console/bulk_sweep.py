"""The dead-letter bulk actions (redrive, retry, purge): each DLQ holding matching dead jobs read once.

The action first counts the matching jobs that are not dead (skipped), then reads each DLQ concerned
from end to end, acting on the letters whose jobs match and are dead, then settles the matching jobs
still dead (their letter was not found): skipped, or for a purge made ``failed``. The work is one pass
over each DLQ, whatever the number of jobs; memory holds one batch.

- PostgreSQL queue: the letters are rows of the job store's database, read in batches in a stable
  order (``BulkActionStorePort.sweep_letters``); each batch, its moves and its progress commit together.
- SQS: no message can be had by id. Each DLQ is read ten messages a receive, each hidden for longer
  than the whole read: the matching letters are acted on, the others reappear when the hide ends.

The action's position says where it is: ``None`` (nothing done), :data:`SWEEP_LETTERS` (reading the
DLQs; on PostgreSQL with the DLQ and the last letter read), :data:`SWEEP_REST`. A resumed action on SQS
reads the DLQs again from the start: the letters already moved are gone.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tornado_core.console.dead_letters import DeadLetterRoutes, read_envelope
from tornado_core.console.filters import JobFilter
from tornado_core.errors import TornadoError
from tornado_core.message import Envelope
from tornado_core.ports.console_jobs import (
    SWEEP_LETTERS,
    SWEEP_REST,
    BatchOutcome,
    BulkActionKind,
    BulkActionRow,
    BulkActionStorePort,
    JobSearchPort,
    Move,
    swept_queue,
)
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.queue import OutgoingMessage, QueuePort, ReceivedMessage

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds a read letter stays hidden: a base, plus a share per message in the DLQ (SQS caps it at 12 h).
BASE_HIDE = 60.0
HIDE_PER_MESSAGE = 0.05
MAX_HIDE = 43_200.0
#: Longest wait between two progress writes while a DLQ is read, in seconds.
PROGRESS_EVERY = 2.0


class ActionInterrupted(TornadoError):
    """A bulk action stops in this process: it is stopping (``release``: give the action back), or
    another process took the action over (its lease ran out)."""

    def __init__(self, *, release: bool) -> None:
        super().__init__(
            "the bulk action stopped here" if release else "another process holds the bulk action"
        )
        self.release = release


class Attempts(Protocol):
    """Runs one call against a backend, again after a failure, and stops when the process stops."""

    def __call__(self, call: Callable[[], T], /) -> T:
        """The call's answer."""


@dataclass(frozen=True, kw_only=True)
class SweepParts:
    """What a sweep works with.

    Attributes:
        queue: The queue port (SQS).
        search: The job store's reads and the status change of moved letters' jobs.
        store: The bulk actions' progress.
        routes: Where each action sends a version's dead letters.
        letters_in_store: The DLQs are in the job store's database (the PostgreSQL queue).
        runner: This process's name on the actions it holds.
        batch_size: Jobs counted between two progress writes (at most).
        lease_seconds: Each progress write renews the lease for this long.
        attempt: Runs a backend call with retries.
        stopping: Whether the process is stopping.
    """

    queue: QueuePort
    search: JobSearchPort
    store: BulkActionStorePort
    routes: DeadLetterRoutes
    letters_in_store: bool
    runner: str
    batch_size: int
    lease_seconds: float
    attempt: Attempts
    stopping: Callable[[], bool]


def until_done(batch: Callable[[], BatchOutcome], *, attempt: Attempts, stopping: Callable[[], bool]) -> None:
    """Run ``batch`` (retried by ``attempt``) until one sees nothing.

    Raises:
        ActionInterrupted: The process stops, or another process holds the action.
    """
    while True:
        if stopping():
            raise ActionInterrupted(release=True)
        outcome = attempt(batch)
        if not outcome.held:
            raise ActionInterrupted(release=False)
        if outcome.seen == 0:
            return


class DeadLetterSweep:
    """Runs a ``redrive``, ``retry`` or ``purge`` from its position to its end."""

    def __init__(self, parts: SweepParts, row: BulkActionRow) -> None:
        self._parts = parts
        self._row = row
        self._filter = JobFilter.from_json(row.filter)

    def run(self) -> BulkActionRow | None:
        """Go on from the action's stage to its end.

        Returns:
            The action as it ended, or ``None`` if another process took it over at the very end.

        Raises:
            ActionInterrupted: The process stops, or another process holds the action.
        """
        parts, row = self._parts, self._row
        position = row.position
        if position is None:
            tally = parts.attempt(lambda: parts.search.tally(self._filter, created_before=row.created_at))
            not_dead = sum(count for status, count in tally.items() if status is not JobStatus.DEAD)
            self._progress(skipped=not_dead, position=SWEEP_LETTERS)
            position = SWEEP_LETTERS
        if position.startswith(SWEEP_LETTERS):
            resume = swept_queue(position)
            for move in self._moves():
                if resume is None or move.dead_letter_queue >= resume:
                    self._sweep(move) if parts.letters_in_store else self._sweep_queue(move)
            self._progress(position=SWEEP_REST)
        return self._rest()

    def _moves(self) -> list[Move]:
        """What the action does with each DLQ holding matching dead jobs, by DLQ name."""
        parts, row = self._parts, self._row
        plan = parts.routes.plan(row.action)
        versions = parts.attempt(
            lambda: parts.search.dead_versions(self._filter, created_before=row.created_at)
        )
        moves = [move for move in (plan(task, version) for task, version in versions) if move is not None]
        return sorted(moves, key=lambda move: move.dead_letter_queue)

    def _sweep(self, move: Move) -> None:
        """Read the DLQ of ``move`` (rows of the job store's database) in batches, each one commit."""
        parts = self._parts
        until_done(
            lambda: parts.store.sweep_letters(
                self._row.id, runner=parts.runner, criteria=self._filter, move=move,
                size=parts.batch_size, lease_seconds=parts.lease_seconds,
            ),
            attempt=parts.attempt, stopping=parts.stopping,
        )  # fmt: skip

    def _rest(self) -> BulkActionRow | None:
        """A purge fails the matching jobs still dead; the other actions count them skipped."""
        parts, row = self._parts, self._row
        if row.action is BulkActionKind.PURGE:
            until_done(
                lambda: parts.store.fail_dead(
                    row.id, runner=parts.runner, criteria=self._filter, size=parts.batch_size,
                    lease_seconds=parts.lease_seconds,
                ),
                attempt=parts.attempt, stopping=parts.stopping,
            )  # fmt: skip
            return parts.attempt(lambda: parts.store.finish(row.id, runner=parts.runner))
        left = parts.attempt(lambda: parts.search.tally(self._filter, created_before=row.created_at))
        dead = left.get(JobStatus.DEAD, 0)
        return parts.attempt(lambda: parts.store.finish(row.id, runner=parts.runner, skipped=dead))

    def _sweep_queue(self, move: Move) -> None:
        """Read the DLQ of ``move`` through the queue (SQS), once, acting on the letters whose jobs match."""
        parts, dlq = self._parts, move.dead_letter_queue
        depth = parts.attempt(lambda: parts.queue.depth(dlq)).total
        hide = min(MAX_HIDE, BASE_HIDE + depth * HIDE_PER_MESSAGE)
        budget = depth + max(100, depth // 10)  # letters that die meanwhile may join; hides may run out
        read = done = 0
        since = time.monotonic()
        while read < budget:
            if parts.stopping():
                self._progress(done=done)
                raise ActionInterrupted(release=True)
            batch = parts.attempt(
                lambda: parts.queue.receive(dlq, max_messages=10, wait_seconds=1, visibility_timeout=hide)
            )
            if not batch:
                break
            read += len(batch)
            done += self._act(move, batch)
            if done >= parts.batch_size or time.monotonic() - since >= PROGRESS_EVERY:
                self._progress(done=done)
                done, since = 0, time.monotonic()
        self._progress(done=done)

    def _act(self, move: Move, batch: list[ReceivedMessage]) -> int:
        """Act on the letters of one receive whose jobs match and are dead; returns how many jobs."""
        parts = self._parts
        readable = [(m, e) for m, e in ((m, read_envelope(m.body)) for m in batch) if e is not None]
        ids = [envelope.job_id for _, envelope in readable]
        dead = parts.attempt(
            lambda: parts.search.dead_among(self._filter, ids, created_before=self._row.created_at)
        )
        chosen = [(m, e) for m, e in readable if e.job_id in dead]
        if not chosen:
            return 0
        if move.target_queue is None:
            parts.attempt(lambda: parts.queue.delete(move.dead_letter_queue, [m.receipt for m, _ in chosen]))
            failed = sorted({e.job_id for _, e in chosen})
            parts.attempt(lambda: parts.search.settle_dead(failed, status=JobStatus.FAILED))
            return len(failed)
        sent = self._send(move, chosen)
        parts.attempt(lambda: parts.queue.delete(move.dead_letter_queue, [m.receipt for m, _ in sent]))
        queued = sorted({e.job_id for _, e in sent})
        parts.attempt(lambda: parts.search.settle_dead(queued, status=JobStatus.QUEUED, version=move.version))
        return len(queued)

    def _send(
        self, move: Move, chosen: list[tuple[ReceivedMessage, Envelope]]
    ) -> list[tuple[ReceivedMessage, Envelope]]:
        """Send the chosen letters to the target queue (re-pinned); those SQS refused stay in the DLQ."""
        target = move.target_queue
        assert target is not None
        outgoing = [
            OutgoingMessage(
                m.body
                if e.version == move.version
                else dataclasses.replace(e, version=move.version).to_json(),
                group=e.tenant,
            )
            for m, e in chosen
        ]
        errors = self._parts.attempt(lambda: self._parts.queue.send_batch(target, outgoing))
        refused = [error for error in errors if error is not None]
        if refused:  # left in the DLQ: counted skipped at the end unless a later read moves them
            log.warning(
                "bulk action %d: %s refused %d letter(s): %s", self._row.id, target, len(refused), refused[0]
            )
        return [pair for pair, error in zip(chosen, errors, strict=True) if error is None]

    def _progress(self, *, done: int = 0, skipped: int = 0, position: str | None = None) -> None:
        parts = self._parts
        held = parts.attempt(
            lambda: parts.store.add_progress(
                self._row.id, runner=parts.runner, done=done, skipped=skipped, position=position,
                lease_seconds=parts.lease_seconds,
            )
        )  # fmt: skip
        if not held:
            raise ActionInterrupted(release=False)
