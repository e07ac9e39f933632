"""One batch of messages that someone else received, run to its outcomes (a Lambda invocation's work).

The worker loop receives its messages itself; a Lambda function is handed a batch that Lambda's
poller received. :class:`BatchRunner` runs such a batch with the loop's own parts: per-key
admission, the claims of the batch in one job store transaction (the effectively-once gate),
the task's global cap, the heartbeat, and :class:`~tornado_core.worker.runner.JobRunner` for each
job, a few at once. A message counts as done when the runner acknowledged it (its outcome is
durable: a success, a job found already done, a cancellation); every other message is reported
failed, so the queue delivers it again after the delay the runner gave it, and the queue's
redrive policy dead-letters it once its receives run out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass

from tornado_core.errors import BackendError
from tornado_core.ports.queue import ReceivedMessage
from tornado_core.services import Services
from tornado_core.task import TaskSpec
from tornado_core.worker.admission import Admission
from tornado_core.worker.claims import ReceiveClaims
from tornado_core.worker.heartbeat import Heartbeat
from tornado_core.worker.runner import Delivery, JobRunner, Outcome

logger = logging.getLogger("tornado.worker")

#: Seconds between tries for a slot of the task's global cap.
SLOT_POLL = 0.05


class _Acknowledged:
    """An ack sink that remembers instead of deleting: whoever handed the batch deletes those messages."""

    def __init__(self) -> None:
        self._receipts: set[str] = set()
        self._lock = threading.Lock()

    def ack(self, queue: str, receipt: str) -> None:
        """Remember that this message is done with."""
        with self._lock:
            self._receipts.add(receipt)

    def __contains__(self, receipt: object) -> bool:
        with self._lock:
            return receipt in self._receipts


@dataclass(frozen=True)
class BatchOutcome:
    """What became of a batch.

    Attributes:
        failed: Ids of the messages to report failed (delivered again later), in batch order.
        outcomes: Each message's outcome by id (``None``: the runner crashed on it).
    """

    failed: list[str]
    outcomes: dict[str, Outcome | None]


class BatchRunner:
    """Runs received batches of one task version's queue.

    Args:
        services: The process's services.
        spec: The task version.
        worker_id: Identifies this process in job leases.
        concurrency: Jobs of a batch run at once.
    """

    def __init__(self, services: Services, spec: TaskSpec, *, worker_id: str, concurrency: int = 10) -> None:
        self._services = services
        self._spec = spec
        self._worker_id = worker_id
        self._concurrency = max(1, concurrency)
        self._admission = Admission(services, spec)

    def run(self, queue: str, messages: Sequence[ReceivedMessage], *, deadline: float) -> BatchOutcome:
        """Run every message of the batch to its outcome.

        Args:
            queue: Name of the queue the messages came from.
            messages: The batch, as received.
            deadline: ``time.monotonic()`` by which the caller must answer; a job waiting for a
                slot of the task's cap gives up halfway there.

        Returns:
            The messages to report failed, and each one's outcome.
        """
        acks = _Acknowledged()
        runner = JobRunner(self._services, self._spec, worker_id=self._worker_id, acks=acks)
        deliveries = [Delivery.received(queue, m, started=time.monotonic()) for m in messages]
        admitted = self._admit(queue, deliveries, runner)
        claims = ReceiveClaims(self._services.jobs, runner, lease_seconds=self._spec.lease_seconds)
        claims.claim_together([delivery for delivery, _ in admitted], held=set())
        unfinished = {id(delivery): delivery for delivery, _ in admitted}
        lock = threading.Lock()

        def held() -> list[tuple[Delivery, str | None]]:
            with lock:
                return [(delivery, _job_id(delivery)) for delivery in unfinished.values()]

        def one(delivery: Delivery, keys: ExitStack) -> Outcome | None:
            try:
                return self._one(runner, claims, delivery, keys, slot_until=_halfway(deadline))
            finally:
                with lock:
                    unfinished.pop(id(delivery), None)

        outcomes: dict[str, Outcome | None] = {m.message_id: None for m in messages}
        heartbeat = Heartbeat(self._services, self._spec, held)
        heartbeat.start()
        try:
            workers = min(self._concurrency, max(1, len(admitted)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tornado-job") as pool:
                futures = [(d, pool.submit(one, d, keys)) for d, keys in admitted]
                for delivery, future in futures:
                    outcomes[delivery.message.message_id] = future.result()
        finally:
            heartbeat.stop()
        failed = [m.message_id for m in messages if m.receipt not in acks]
        return BatchOutcome(failed=failed, outcomes=outcomes)

    def _admit(
        self, queue: str, deliveries: list[Delivery], runner: JobRunner
    ) -> list[tuple[Delivery, ExitStack]]:
        """The deliveries the task's per-key limits let through now (the others are requeued)."""
        if not self._admission.active:
            return [(delivery, ExitStack()) for delivery in deliveries]
        try:
            return self._admission.admit(queue, deliveries)
        except Exception as exc:  # the limits' store is down: every message comes back a bit later
            logger.warning("per-key limits unavailable: %r; %d jobs postponed", exc, len(deliveries))
            for delivery in deliveries:
                with contextlib.suppress(BackendError):
                    runner.postpone(delivery)
            return []

    def _one(
        self,
        runner: JobRunner,
        claims: ReceiveClaims,
        delivery: Delivery,
        keys: ExitStack,
        *,
        slot_until: float,
    ) -> Outcome | None:
        """One job: its slot of the task's cap (if any), then the runner; never raises."""
        with keys:
            slot = self._slot(slot_until)
            if slot is None:  # the cap stays full: the job runs at a later delivery
                claims.release([delivery])
                with contextlib.suppress(BackendError):
                    runner.postpone(delivery)
                return Outcome.DEFERRED_BUSY
            with slot:
                delivery.started = time.monotonic()  # the job's deadline counts from here
                try:
                    return runner.run(delivery)
                except Exception as exc:  # reported failed: the message reappears after its visibility
                    logger.error("job runner crashed on message %s: %r", delivery.message.message_id, exc)
                    return None

    def _slot(self, until: float) -> AbstractContextManager[object] | None:
        """A slot of the task's global cap (a no-op without a cap); ``None`` if none frees up in time."""
        cap = self._spec.max_concurrency
        if not cap:
            return contextlib.nullcontext()
        while True:
            try:
                slot = self._services.limiter.try_acquire(self._spec.name, cap)
            except BackendError as exc:
                logger.warning("concurrency limiter unavailable: %s", exc)
                return None
            if slot is not None or time.monotonic() + SLOT_POLL > until:
                return slot
            time.sleep(SLOT_POLL)


def _job_id(delivery: Delivery) -> str | None:
    """The job whose lease the heartbeat extends (none for an unreadable message)."""
    envelope = delivery.envelope
    return envelope.job_id if envelope is not None and isinstance(envelope.job_id, str) else None


def _halfway(deadline: float) -> float:
    now = time.monotonic()
    return now + max(0.0, deadline - now) / 2
