"""Keeping a worker's jobs alive: their messages hidden in the queue, their leases in the job store.

Two threads, one per backend, so that a stalled job store never holds up the queue's visibility
extensions: otherwise a running job's message would reappear, and run again beside itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from tornado_core.errors import BackendError
from tornado_core.services import Services
from tornado_core.task import TaskSpec
from tornado_core.worker.runner import Delivery

logger = logging.getLogger("tornado.worker")

#: What the heartbeat keeps alive: each delivery held by the worker, with its job id (if readable).
Held = Callable[[], Sequence[tuple[Delivery, str | None]]]


class Heartbeat:
    """Extends the visibility of held messages and the leases of their jobs, a third of a timeout apart.

    The lease's answer also carries a cancellation request, handed to the running job's context.

    A delivery past the task's timeout is left alone: its message reappears for another attempt.

    Args:
        services: The process's services.
        spec: The task version (its visibility timeout and job timeout).
        held: Returns the deliveries to keep alive now (running, waiting or parked).
    """

    def __init__(self, services: Services, spec: TaskSpec, held: Held) -> None:
        self._services = services
        self._spec = spec
        self._held = held
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._threads = [
            threading.Thread(target=self._loop, args=(self._hide,), name="tornado-heartbeat", daemon=True),
            threading.Thread(target=self._loop, args=(self._lease,), name="tornado-leases", daemon=True),
        ]

    def start(self) -> None:
        """Start both threads."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads (a call blocked on a stalled backend is not waited for long)."""
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=1)

    def _loop(self, beat: Callable[[Delivery, str | None], None]) -> None:
        interval = max(self._spec.visibility_timeout / 3, 0.2)
        while not self._stop.wait(self._until_next_beat(interval)):
            now = time.monotonic()
            for delivery, job_id in self._held():
                if now - delivery.started > self._spec.timeout:
                    continue  # past its timeout: let the message reappear for another attempt
                try:
                    beat(delivery, job_id)
                except BackendError as exc:
                    logger.warning("heartbeat failed for %s: %s", delivery.message.message_id, exc)

    def _until_next_beat(self, interval: float) -> float:
        """Seconds to the next point of the one schedule both threads share (start + k intervals).

        Not an interval after the thread's last call: a thread whose calls are slow, or that
        missed beats, still beats with the other, so the lease (a moment shorter than the
        message's hiding) keeps ending first. A point closer than a tenth of an interval is
        left for the next one: a beat is never repeated at once.
        """
        remaining = interval - (time.monotonic() - self._started) % interval
        return remaining if remaining > interval / 10 else remaining + interval

    def _hide(self, delivery: Delivery, _job_id: str | None) -> None:
        self._services.queue.change_visibility(
            delivery.queue, delivery.message.receipt, self._spec.visibility_timeout
        )

    def _lease(self, delivery: Delivery, job_id: str | None) -> None:
        if job_id and self._services.jobs.extend_lease(job_id, lease_seconds=self._spec.lease_seconds):
            delivery.cancel_requested = True  # the handler's context sees it at its next check
