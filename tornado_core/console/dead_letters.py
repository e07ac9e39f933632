"""The console's dead-letter browser: a version's DLQ listed with its jobs' errors, one letter inspected,
redriven or purged by message id; and where each bulk action sends a version's dead letters."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from tornado_core.errors import EnvelopeInvalid, QueueUnavailable
from tornado_core.message import Envelope
from tornado_core.naming import dead_letter_name, queue_name
from tornado_core.ports.console_jobs import (
    BulkActionKind,
    DeadLetterStorePort,
    JobSearchPort,
    Letter,
    Move,
    MovePlan,
)
from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.ports.queue import OutgoingMessage, QueuePort, ReceivedMessage

#: Seconds a message looked at on SQS stays hidden before it is shown again.
_LOOK_HIDE = 30.0


class DeadLetterRoutes:
    """The queues of each task version, and where each bulk action sends a version's dead letters.

    Args:
        queue_prefix: The deployment's queue prefix (settings).
        current_version: The version a task's new jobs go to now (its route's current version, else
            its newest known version); ``None`` if the task is unknown.
    """

    def __init__(self, queue_prefix: str, current_version: Callable[[str], str | None]) -> None:
        self._prefix = queue_prefix
        self._current_version = current_version

    def queues(self, task: str, version: str) -> tuple[str, str]:
        """The version's work queue and its dead-letter queue."""
        source = queue_name(self._prefix, task, version)
        return source, dead_letter_name(source)

    def plan(self, action: BulkActionKind) -> MovePlan:
        """For each dead job's (task, version), what ``action`` does with its letter.

        ``redrive`` sends it back to its version's queue, ``retry`` to its task's current version's
        queue (re-pinned), ``purge`` deletes it. The current versions are read once per plan.
        """
        current = functools.lru_cache(maxsize=256)(self._current_version)

        def move(task: str, version: str) -> Move | None:
            target = version if action is not BulkActionKind.RETRY else current(task)
            if target is None:
                return None
            try:
                _, dlq = self.queues(task, version)
                queue, _ = self.queues(task, target)
            except ValueError:  # a name too long for a queue: no such queue was ever made
                return None
            return Move(dlq, None if action is BulkActionKind.PURGE else queue, target)

        return move


@dataclass(frozen=True, kw_only=True)
class DeadLetterView:
    """A dead letter as the console shows it.

    Attributes:
        message_id: The queue's id of the message.
        job_id: The job it carries (``None``: its body is not a Tornado envelope).
        task: Its task.
        tenant: Its tenant.
        version: The version its envelope is pinned to.
        body: The message body as it is in the queue.
        job: The job's record (its error, attempts), if the store has it.
    """

    message_id: str
    job_id: str | None
    task: str | None
    tenant: str | None
    version: str | None
    body: str
    job: JobRecord | None = None


def read_envelope(body: str) -> Envelope | None:
    """The envelope of a message body, or ``None`` if the body is not one."""
    try:
        return Envelope.from_json(body)
    except EnvelopeInvalid:
        return None


def _view(letter: Letter, job: JobRecord | None = None) -> DeadLetterView:
    envelope = read_envelope(letter.body)
    return DeadLetterView(
        message_id=letter.message_id,
        job_id=envelope.job_id if envelope else None,
        task=envelope.task if envelope else None,
        tenant=envelope.tenant if envelope else None,
        version=envelope.version if envelope else None,
        body=letter.body,
        job=job,
    )


class DeadLetterBrowser:
    """One task version's dead letters, looked at without consuming them, acted on one by one.

    Args:
        letters: The dead letters by message id (SQL on PostgreSQL, a scan on SQS).
        search: The job store's records and the status change of a moved letter's job.
        routes: The versions' queues.
    """

    def __init__(self, letters: DeadLetterStorePort, search: JobSearchPort, routes: DeadLetterRoutes) -> None:
        self._letters = letters
        self._search = search
        self._routes = routes

    def list(self, task: str, version: str, *, limit: int = 100) -> list[DeadLetterView]:
        """Up to ``limit`` dead letters of the version, each with its job's record (its error)."""
        _, dlq = self._routes.queues(task, version)
        views = [_view(letter) for letter in self._letters.letters(dlq, limit=limit)]
        records = self._search.records([v.job_id for v in views if v.job_id])
        return [dataclasses.replace(v, job=records.get(v.job_id or "")) for v in views]

    def inspect(self, task: str, version: str, message_id: str) -> DeadLetterView | None:
        """One dead letter with its body and its job's record; ``None`` if it is not in the DLQ."""
        _, dlq = self._routes.queues(task, version)
        letter = self._letters.letter(dlq, message_id)
        if letter is None:
            return None
        view = _view(letter)
        records = self._search.records([view.job_id] if view.job_id else [])
        return dataclasses.replace(view, job=records.get(view.job_id or ""))

    def redrive_one(self, task: str, version: str, message_id: str) -> str | None:
        """Send one dead letter back to its version's queue; its job becomes ``queued``.

        Returns:
            Its job id (its message id if the body names no job), or ``None`` if it was not there.
        """
        source, dlq = self._routes.queues(task, version)
        letter = self._letters.move(dlq, message_id, to_queue=source)
        return self._settled(letter, JobStatus.QUEUED)

    def purge_one(self, task: str, version: str, message_id: str) -> str | None:
        """Delete one dead letter for good; its job becomes ``failed``.

        Returns:
            Its job id (its message id if the body names no job), or ``None`` if it was not there.
        """
        _, dlq = self._routes.queues(task, version)
        return self._settled(self._letters.delete(dlq, message_id), JobStatus.FAILED)

    def _settled(self, letter: Letter | None, status: JobStatus) -> str | None:
        if letter is None:
            return None
        view = _view(letter)
        if view.job_id is None:
            return letter.message_id
        self._search.settle_dead([view.job_id], status=status)
        return view.job_id


class ScannedDeadLetters:
    """:class:`DeadLetterStorePort` through the queue port alone (SQS: no look-up by id).

    A look receives messages with a short hide and shows them again at once; finding one message by
    id reads up to ``scan_limit`` messages of the queue.

    Args:
        queue: The queue port.
        scan_limit: Most messages read to find one by id.
    """

    def __init__(self, queue: QueuePort, *, scan_limit: int = 1000) -> None:
        self._queue = queue
        self._scan_limit = scan_limit

    def letters(self, dead_letter_queue: str, *, limit: int) -> list[Letter]:
        """Up to ``limit`` messages, shown again right after."""
        held: list[ReceivedMessage] = []
        try:
            for batch in self._receive(dead_letter_queue, limit):
                held += batch
        finally:
            self._show(dead_letter_queue, held)
        return [Letter(m.message_id, m.body) for m in held]

    def letter(self, dead_letter_queue: str, message_id: str) -> Letter | None:
        """One message, shown again right after."""
        found, held = self._find(dead_letter_queue, message_id)
        self._show(dead_letter_queue, held if found is None else [*held, found])
        return Letter(found.message_id, found.body) if found else None

    def move(
        self, dead_letter_queue: str, message_id: str, *, to_queue: str, version: str | None = None
    ) -> Letter | None:
        """Send one message to ``to_queue`` (re-pinned to ``version`` if given), then delete it."""
        found, held = self._find(dead_letter_queue, message_id)
        try:
            if found is None:
                return None
            envelope = read_envelope(found.body)
            body = found.body
            if envelope is not None and version is not None:
                body = dataclasses.replace(envelope, version=version).to_json()
            group = envelope.tenant if envelope else None
            errors = self._queue.send_batch(to_queue, [OutgoingMessage(body, group=group)])
            if errors[0] is not None:
                held.append(found)
                raise QueueUnavailable(f"could not send the dead letter to {to_queue}: {errors[0]}")
            self._queue.delete(dead_letter_queue, [found.receipt])
            return Letter(found.message_id, found.body)
        finally:
            self._show(dead_letter_queue, held)

    def delete(self, dead_letter_queue: str, message_id: str) -> Letter | None:
        """Delete one message for good."""
        found, held = self._find(dead_letter_queue, message_id)
        try:
            if found is not None:
                self._queue.delete(dead_letter_queue, [found.receipt])
        finally:
            self._show(dead_letter_queue, held)
        return Letter(found.message_id, found.body) if found else None

    def find(self, queues: Sequence[str], job_id: str) -> tuple[str, Letter] | None:
        """``None``: SQS cannot look a message up by job id without consuming the queue."""
        return None

    def _find(self, queue: str, message_id: str) -> tuple[ReceivedMessage | None, list[ReceivedMessage]]:
        """The message (hidden) and the others read with it (hidden until :meth:`_show`)."""
        held: list[ReceivedMessage] = []
        found: ReceivedMessage | None = None
        try:
            for batch in self._receive(queue, self._scan_limit):
                found = found or next((m for m in batch if m.message_id == message_id), None)
                held += [m for m in batch if m is not found]
                if found is not None:
                    break
        except BaseException:
            self._show(queue, held)
            raise
        return found, held

    def _receive(self, queue: str, limit: int) -> Iterator[list[ReceivedMessage]]:
        """Receives of up to ``limit`` visible messages in all, each received once and hidden a while."""
        waited = False
        while (most := min(10, limit)) > 0:
            batch = self._queue.receive(
                queue, max_messages=most, wait_seconds=1 if waited else 0, visibility_timeout=_LOOK_HIDE
            )
            if batch:
                waited = False
                limit -= len(batch)
                yield batch
            elif waited:  # an empty short poll may miss messages on SQS: a long one confirms
                return
            else:
                waited = True

    def _show(self, queue: str, messages: list[ReceivedMessage]) -> None:
        for message in messages:
            self._queue.change_visibility(queue, message.receipt, 0)
