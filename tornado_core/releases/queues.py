"""What releases do with a version's queues: wait until drained, move jobs to another version."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from tornado_core.errors import EnvelopeInvalid, ReleaseError
from tornado_core.message import Envelope
from tornado_core.naming import dead_letter_name
from tornado_core.ports.queue import OutgoingMessage, QueuePort, ReceivedMessage
from tornado_core.ports.releases import ReleaseStorePort

#: Seconds a message being moved stays hidden in its source queue.
_MOVE_HIDE = 30.0


@dataclass(frozen=True)
class Backlog:
    """What a version still has to do.

    Attributes:
        visible: Messages waiting in its queue.
        in_flight: Messages received and not yet deleted (running, or retrying later).
        delayed: Messages sent with a delay, not yet visible.
        running: Jobs of the version running under a live lease (job store).
        dead: Messages in its dead-letter queue (not part of draining).
    """

    visible: int
    in_flight: int
    delayed: int
    running: int
    dead: int = 0

    @property
    def remaining(self) -> int:
        """Messages and running jobs left; 0 means drained."""
        return self.visible + self.in_flight + self.delayed + self.running

    def describe(self) -> str:
        """``3 visible, 1 in flight, 0 delayed, 1 running``."""
        return (
            f"{self.visible} visible, {self.in_flight} in flight, {self.delayed} delayed, "
            f"{self.running} running"
        )


@dataclass(frozen=True, kw_only=True)
class Pace:
    """How patiently release operations watch queues.

    Attributes:
        poll: Seconds between looks.
        settle: Seconds a queue must stay empty (and since the route change)
            before it counts as drained: jobs routed by an API cache just before
            the change are still arriving, and SQS counts are approximate.
        clock: Epoch seconds.
        sleep: Sleeps (tests pass a fake).
    """

    poll: float = 0.25
    settle: float = 2.0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


class QueueWatch:
    """Backlog, drain waits and job moves of task versions.

    Args:
        queue: The queue port.
        store: The release store (running jobs, requeue records).
        pace: Poll interval, settle time, clock.
    """

    def __init__(self, queue: QueuePort, store: ReleaseStorePort, pace: Pace) -> None:
        self._queue = queue
        self._store = store
        self._pace = pace

    def backlog(self, task: str, version: str, queue: str) -> Backlog:
        """The version's queue counts and running jobs now."""
        depth = self._queue.depth(queue)
        dead = self._queue.depth(dead_letter_name(queue)).total
        running = self._store.stats(task, version).running
        return Backlog(depth.visible, depth.in_flight, depth.delayed, running, dead)

    def wait_empty(
        self,
        check: Callable[[], Backlog],
        *,
        quiet_since: float,
        timeout: float | None,
        on_progress: Callable[[Backlog], None],
        what: str,
        then: str,
    ) -> None:
        """Return once ``check()`` stays at 0 for the settle time (and since ``quiet_since``).

        Raises:
            ReleaseError: ``timeout`` seconds passed first: says ``what`` is left and ``then``.
        """
        pace = self._pace
        deadline = None if timeout is None else pace.clock() + timeout
        empty_since: float | None = None
        while True:
            backlog = check()
            on_progress(backlog)
            now = pace.clock()
            if backlog.remaining:
                empty_since = None
            else:
                empty_since = now if empty_since is None else empty_since
                if now - empty_since >= pace.settle and now - quiet_since >= pace.settle:
                    return
            if deadline is not None and now >= deadline:
                raise ReleaseError(f"{what} not done after {timeout:g}s ({backlog.describe()} left); {then}")
            pace.sleep(pace.poll)

    def move(self, source: str, target: str, *, version: str) -> int:
        """Move the visible messages of ``source`` to ``target``, re-pinned to ``version``.

        Envelopes get the new version (a job is pinned to its queue's version),
        the job store records them queued on it. Unreadable bodies go to the
        target's dead-letter queue unchanged. Returns how many moved.
        """
        moved = 0
        while True:
            batch = self._queue.receive(
                source, max_messages=10, wait_seconds=0, visibility_timeout=_MOVE_HIDE
            )
            if not batch:
                return moved
            moved += self._move_batch(source, target, version, batch)

    def _move_batch(self, source: str, target: str, version: str, batch: list[ReceivedMessage]) -> int:
        good: list[tuple[ReceivedMessage, Envelope]] = []
        bad: list[ReceivedMessage] = []
        for message in batch:
            try:
                good.append((message, Envelope.from_json(message.body)))
            except EnvelopeInvalid:
                bad.append(message)
        bodies = [dataclasses.replace(env, version=version).to_json() for _, env in good]
        sent = self._send(target, [m for m, _ in good], bodies)
        sent += self._send(dead_letter_name(target), bad, [m.body for m in bad])
        self._queue.delete(source, [m.receipt for m in sent])
        moved_ids = {m.receipt for m in sent}
        self._store.requeue([env.job_id for m, env in good if m.receipt in moved_ids], version=version)
        return len(sent)

    def _send(self, queue: str, messages: list[ReceivedMessage], bodies: list[str]) -> list[ReceivedMessage]:
        if not messages:
            return []
        errors = self._queue.send_batch(queue, [OutgoingMessage(body) for body in bodies])
        return [m for m, error in zip(messages, errors, strict=True) if error is None]
