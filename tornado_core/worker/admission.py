"""Admission of received jobs under their task's per-key limits; refused ones go back to the queue's end.

A task's :mod:`~tornado_core.key_limits` (a concurrency cap per tenant, a rate per CNPJ and UF)
are checked when its jobs are received, before they are claimed: an admitted job holds its key's
slot until its outcome is durable; a refused one is sent again, due after the limit's wait, and
its received copy deleted. It was never claimed, so its attempts are not counted, and the jobs
of other keys behind it in the queue are received meanwhile: a tenant's burst does not starve
the tenants that share its queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from tornado_core.errors import BackendError
from tornado_core.key_limits import ConcurrencyLimit, KeyLimit, RateLimit, limit_key, needs_payload
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.schedules import QUEUE_DELAY_LIMIT
from tornado_core.producer.batching import chunks_of
from tornado_core.services import Services
from tornado_core.task import TaskSpec
from tornado_core.worker.runner import Delivery

logger = logging.getLogger("tornado.worker")


class Admission:
    """The per-key limits of one task version, checked for each received job.

    Args:
        services: The worker's services (limiter, rate buckets, queue, object store).
        spec: The task version; its ``limits`` are checked (none: everything is admitted).
        on_wait: Told ``"concurrency"`` or ``"rate"`` for each job a limit holds back (metrics).
    """

    def __init__(
        self, services: Services, spec: TaskSpec, *, on_wait: Callable[[str], None] | None = None
    ) -> None:
        self._services = services
        self._task = spec.name
        self._on_wait = on_wait or (lambda _kind: None)
        # Caps first: a job refused by a cap must not have spent a rate token.
        self._limits: list[tuple[int, KeyLimit]] = sorted(
            enumerate(spec.limits), key=lambda pair: isinstance(pair[1], RateLimit)
        )
        self._needs_payload = needs_payload(spec.limits)

    @property
    def active(self) -> bool:
        """Whether the task has limits to check."""
        return bool(self._limits)

    def admit(self, queue: str, deliveries: Sequence[Delivery]) -> list[tuple[Delivery, ExitStack]]:
        """The admitted deliveries, each with the key slots it holds; the refused ones are requeued.

        Raises:
            BackendError: The limiter's store cannot be reached (nothing is held then).
        """
        admitted: list[tuple[Delivery, ExitStack]] = []
        refused: list[tuple[Delivery, float]] = []
        try:
            for delivery in deliveries:
                held, wait = self._check(delivery)
                if held is not None:
                    admitted.append((delivery, held))
                else:
                    refused.append((delivery, wait))
        except BackendError:
            for _, holding in admitted:
                holding.close()
            raise
        if refused:
            self._requeue(queue, refused)
        return admitted

    def _check(self, delivery: Delivery) -> tuple[ExitStack | None, float]:
        envelope = delivery.envelope
        if envelope is None:  # the runner dead-letters it
            return ExitStack(), 0.0
        payload = self._payload(delivery) if self._needs_payload else None
        held = ExitStack()
        try:
            for index, limit in self._limits:
                key = f"{self._task}|{index}|{limit_key(limit, envelope.tenant, payload)}"
                wait = self._take(held, key, limit)
                if wait > 0:
                    held.close()
                    self._on_wait("rate" if isinstance(limit, RateLimit) else "concurrency")
                    return None, wait
        except BaseException:
            held.close()
            raise
        return held, 0.0

    def _take(self, held: ExitStack, key: str, limit: KeyLimit) -> float:
        if isinstance(limit, ConcurrencyLimit):
            slot = self._services.limiter.try_acquire(key, limit.max)
            if slot is None:
                return limit.retry_after
            held.enter_context(slot)
            return 0.0
        rates = self._services.rates
        if rates is None:  # nothing keeps buckets here (a test's services): the rate is not enforced
            return 0.0
        return rates.try_take(key, per_second=limit.per_second, capacity=limit.capacity)

    def _payload(self, delivery: Delivery) -> dict[str, Any] | None:
        envelope = delivery.envelope
        assert envelope is not None
        if envelope.payload_ref is None:
            return envelope.payload if isinstance(envelope.payload, dict) else None
        loaded = json.loads(self._services.objects.get(envelope.payload_ref))
        return loaded if isinstance(loaded, dict) else None

    def _requeue(self, queue: str, refused: list[tuple[Delivery, float]]) -> None:
        """Send refused jobs again, due after their wait, then delete the copies received."""
        port = self._services.queue
        for chunk in chunks_of(refused, _body, max(1, port.max_send_batch), port.max_send_batch_bytes):
            messages = [
                OutgoingMessage(d.message.body, min(wait, QUEUE_DELAY_LIMIT), _group(d)) for d, wait in chunk
            ]
            try:
                errors = port.send_batch(queue, messages)
            except BackendError as exc:
                logger.warning("could not requeue %d jobs held by their limits: %s", len(chunk), exc)
                errors = [str(exc)] * len(chunk)
            sent = [d.message.receipt for (d, _), error in zip(chunk, errors, strict=False) if error is None]
            with contextlib.suppress(BackendError):
                if sent:
                    port.delete(queue, sent)
            for (delivery, wait), error in zip(chunk, errors, strict=False):
                if error is not None:  # not sent again: the received copy reappears after the wait
                    with contextlib.suppress(BackendError):
                        port.change_visibility(queue, delivery.message.receipt, wait)
        logger.debug("%d jobs of %s wait for their limits", len(refused), self._task)


def _body(item: tuple[Delivery, float]) -> str:
    return item[0].message.body


def _group(delivery: Delivery) -> str | None:
    return delivery.envelope.tenant if delivery.envelope is not None else None
