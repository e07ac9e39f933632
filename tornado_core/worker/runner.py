"""Running one delivered message: the effectively-once gate, the handler, the outcome.

A :class:`Delivery` is built once per received message (:meth:`Delivery.received`),
which parses the body into its :class:`~tornado_core.message.Envelope` a single time;
:class:`JobRunner` works from that envelope and decides, for one message, between
acknowledging (through the :class:`~tornado_core.worker.acks.AckSink` it was given),
retrying through the visibility timeout (never republishing, so the queue's receive
count grows and its redrive policy fires) and dead-lettering (unreadable bodies too).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tornado_core.errors import (
    EnvelopeInvalid,
    JobCancelled,
    NonRetryable,
    ObjectStoreError,
    PayloadInvalid,
    Retry,
    StoreUnavailable,
)
from tornado_core.jsontext import compact
from tornado_core.message import Envelope
from tornado_core.naming import dead_letter_name, result_key
from tornado_core.observability.logs import job_log_fields
from tornado_core.ports.jobs import Claim, ClaimOutcome, Failure, JobStatus, NewJob, Success
from tornado_core.ports.queue import OutgoingMessage, ReceivedMessage
from tornado_core.ports.queue_and_jobs import Completion
from tornado_core.retry import backoff_delay
from tornado_core.services import Services
from tornado_core.task import TaskSpec
from tornado_core.task_context import TaskContext, job_logger
from tornado_core.worker.acks import AckSink, ImmediateAcks
from tornado_core.worker.children import ChildJobs
from tornado_core.worker.completions import GroupCommit, completion_writer

if TYPE_CHECKING:
    from tornado_core.observability.tracing import JobTrace

logger = logging.getLogger("tornado.worker")

#: Seconds to keep a message hidden when the job store cannot be reached.
STORE_DOWN_DELAY = 5.0


class Outcome(StrEnum):
    """What happened to a message (for logs, metrics and tests); each value is a plain string."""

    SUCCEEDED = "succeeded"
    SKIPPED_DONE = "skipped_already_done"
    DEFERRED_BUSY = "deferred_busy"
    DEFERRED_STORE_DOWN = "deferred_store_down"
    RETRYING = "retrying"
    DEAD = "dead"
    CANCELLED = "cancelled"


@dataclass(kw_only=True, slots=True)
class Delivery:
    """A message being worked on: where it came from and its envelope.

    Build it with :meth:`received`, which parses the body; the runner and the
    heartbeat read :attr:`envelope` instead of parsing the body again. The worker
    loop owns it: it sets :attr:`claim` after the batch claim and :attr:`started`
    when a job thread takes it.

    Attributes:
        queue: Name of the queue the message came from.
        message: The message as received.
        started: ``time.monotonic()`` when work on it started (the job's deadline counts from it).
        envelope: The parsed body, or ``None`` when it is not an envelope this version reads.
        unreadable: Why the body is not an envelope (``None`` when :attr:`envelope` is set).
        claim: The job store's answer when the worker claimed the job together with the rest
            of its receive (:meth:`JobRunner.claim_for`); ``None``: the runner claims it itself.
        cancel_requested: Set by the heartbeat when the job store says the job was cancelled;
            the handler's context reads it.
    """

    queue: str
    message: ReceivedMessage
    started: float
    envelope: Envelope | None
    unreadable: str | None = None
    claim: ClaimOutcome | None = None
    cancel_requested: bool = False

    @classmethod
    def received(cls, queue: str, message: ReceivedMessage, *, started: float) -> Delivery:
        """Parse a received message's body, once, into a delivery.

        Args:
            queue: Name of the queue the message came from.
            message: The message as received.
            started: ``time.monotonic()`` at receipt.

        Returns:
            The delivery; an unreadable body gives ``envelope=None`` and the reason
            (the runner dead-letters it).
        """
        try:
            envelope = Envelope.from_json(message.body)
        except EnvelopeInvalid as exc:
            return cls(queue=queue, message=message, started=started, envelope=None, unreadable=str(exc))
        return cls(queue=queue, message=message, started=started, envelope=envelope)


class JobRunner:
    """Runs delivered messages of one task version.

    Args:
        services: The process's services.
        spec: The task version this worker serves.
        worker_id: Identifies this worker in job leases.
        acks: Where finished messages are acknowledged; deleted at once by default
            (:class:`~tornado_core.worker.acks.ImmediateAcks`), batched by the worker
            loop (:class:`~tornado_core.worker.acks.Acknowledger`).
        finish: Where a success goes: by default it is recorded (group commit) before
            :meth:`run` returns; the worker loop passes its
            :class:`~tornado_core.worker.completions.BackgroundCompleter` instead.

    Jobs finishing together in the runner's threads record their success in one transaction
    (:class:`~tornado_core.worker.completions.GroupCommit`), each acknowledged only after (or in
    the same transaction, where the job store and the queue share a database).
    """

    def __init__(
        self,
        services: Services,
        spec: TaskSpec,
        *,
        worker_id: str,
        acks: AckSink | None = None,
        finish: Callable[[Completion], None] | None = None,
    ) -> None:
        self._services = services
        self._spec = spec
        self._worker_id = worker_id
        self._acks: AckSink = acks if acks is not None else ImmediateAcks(services.queue)
        self._finish = (
            finish
            or GroupCommit(completion_writer(services.jobs, services.queue_and_jobs, self._acks)).record
        )

    def run(self, delivery: Delivery) -> Outcome:
        """Process one message to its outcome; never raises for a job's own failure.

        Args:
            delivery: The received message and its envelope (see :meth:`Delivery.received`).

        Returns:
            What happened to the message.
        """
        message = delivery.message
        envelope = delivery.envelope
        if envelope is None:
            logger.error(
                "dead-lettering an unreadable message %s: %s", message.message_id, delivery.unreadable
            )
            self._dead_letter(delivery)
            return Outcome.DEAD
        claim = delivery.claim
        if claim is None:
            try:
                claim = self._claim(delivery, envelope)
            except StoreUnavailable as exc:
                logger.warning("job store unreachable, job %s postponed: %s", envelope.job_id, exc)
                self.postpone(delivery)
                return Outcome.DEFERRED_STORE_DOWN
        if claim is ClaimOutcome.ALREADY_DONE:
            self._acks.ack(delivery.queue, message.receipt)
            return Outcome.SKIPPED_DONE
        if claim is ClaimOutcome.BUSY:
            self._hide(delivery, self._spec.visibility_timeout)
            return Outcome.DEFERRED_BUSY
        return self._execute(delivery, envelope)

    def claim_for(self, delivery: Delivery) -> Claim | None:
        """What to ask the job store to run this delivery (``None`` for an unreadable message)."""
        envelope = delivery.envelope
        if envelope is None:
            return None
        job = NewJob(
            job_id=envelope.job_id,
            tenant=envelope.tenant,
            task=envelope.task,
            version=envelope.version,
            submitted_at=envelope.submitted_at,
        )
        # One holder per delivered message: a duplicate message of the same job
        # (a re-submitted idempotency key) is BUSY even in the same process.
        worker = f"{self._worker_id}/{delivery.message.message_id}"
        return Claim(job=job, attempt=delivery.message.receive_count, worker=worker)

    def postpone(self, delivery: Delivery) -> None:
        """Hide a message whose job could not be claimed because the job store is down."""
        self._hide(delivery, STORE_DOWN_DELAY)

    def _claim(self, delivery: Delivery, envelope: Envelope) -> ClaimOutcome:
        claim = self.claim_for(delivery)
        assert claim is not None
        return self._services.jobs.claim(
            claim.job, attempt=claim.attempt, lease_seconds=self._spec.lease_seconds, worker=claim.worker
        )

    def _execute(self, delivery: Delivery, envelope: Envelope) -> Outcome:
        """Run the job inside its log fields and, when tracing is on, its span (docs/observability.md)."""
        tracing = self._services.tracing
        if tracing is None:
            with job_log_fields(envelope):
                return self._run_job(delivery, envelope, None)
        attempt = delivery.message.receive_count
        with (
            tracing.job(envelope, attempt=attempt, queue=delivery.queue) as trace,
            job_log_fields(envelope, trace_id=trace.trace_id, span_id=trace.span_id),
        ):
            return trace.ended(self._run_job(delivery, envelope, trace))

    def _run_job(self, delivery: Delivery, envelope: Envelope, trace: JobTrace | None) -> Outcome:
        log = job_logger(logger, job=envelope.job_id, task=envelope.task, version=envelope.version)
        try:
            result = self._call_handler(delivery, envelope, log, trace)
            success = self._store_result(envelope, result)
        except Exception as exc:  # the handler's failure is data, not a crash
            if trace is not None:
                trace.failed(exc)
            return self._fail(delivery, envelope, exc, log)
        # Durable (and its message deleted with it or right after) when this returns, unless the
        # worker loop gave a background completer: then its outcome is reported once it is.
        self._finish(Completion(success=success, queue=delivery.queue, receipt=delivery.message.receipt))
        log.info("succeeded in %.3fs", time.monotonic() - delivery.started)
        return Outcome.SUCCEEDED

    def _call_handler(self, delivery: Delivery, envelope: Envelope, log: Any, trace: JobTrace | None) -> Any:
        payload = self._spec.parse_payload(self._load_payload(envelope))
        jobs = self._services.jobs
        objects, rds, redshift = self._services.objects, self._services.rds, self._services.redshift
        if trace is not None:  # the handler's calls to S3 and PostgreSQL become spans of the job's
            objects, rds, redshift = trace.ports(objects, rds, redshift)

        def report(fraction: float, note: str | None) -> None:
            jobs.record_progress(envelope.job_id, fraction=fraction, note=note)

        ctx = TaskContext(
            job_id=envelope.job_id,
            task=envelope.task,
            version=envelope.version,
            tenant=envelope.tenant,
            attempt=delivery.message.receive_count,
            s3=objects,
            rds=rds,
            redshift=redshift,
            logger=log,
            deadline=delivery.started + self._spec.timeout,
            _progress_sink=report,
            cancel_requested=lambda: delivery.cancel_requested,
        )
        ctx.children_port = ChildJobs(
            self._services,
            parent_job_id=envelope.job_id,
            tenant=envelope.tenant,
            check_deadline=ctx.check_deadline,
        )
        return self._spec.handler(ctx, payload)

    def _load_payload(self, envelope: Envelope) -> Any:
        if envelope.payload_ref is None:
            return envelope.payload
        try:
            return json.loads(self._services.objects.get(envelope.payload_ref))
        except ObjectStoreError as exc:
            raise Retry(f"claim-checked payload unavailable: {exc}") from exc

    def _store_result(self, envelope: Envelope, result: Any) -> Success:
        """The success to record: the result inline, or claim-checked in the object store if large."""
        try:
            text = compact(result)
        except (TypeError, ValueError) as exc:
            raise NonRetryable(f"result is not JSON-serialisable: {exc}") from exc
        encoded = text.encode()
        if len(encoded) <= self._services.settings.claim_check_bytes:
            return Success(job_id=envelope.job_id, result=result, result_json=text)
        key = result_key(envelope.task, envelope.job_id)
        self._services.objects.put(key, encoded, content_type="application/json")
        return Success(job_id=envelope.job_id, result=None, result_ref=key)

    def _fail(self, delivery: Delivery, envelope: Envelope, exc: Exception, log: Any) -> Outcome:
        failure = Failure(
            error_type=type(exc).__name__,
            message=str(exc),
            traceback="".join(traceback.format_exception(exc)),
        )
        attempt = delivery.message.receive_count
        if isinstance(exc, JobCancelled):
            self._services.jobs.record_failure(envelope.job_id, status=JobStatus.CANCELLED, failure=failure)
            self._acks.ack(delivery.queue, delivery.message.receipt)
            log.info("cancelled during attempt %d", attempt)
            return Outcome.CANCELLED
        final = isinstance(exc, NonRetryable | PayloadInvalid)
        if final or attempt >= self._spec.retry.max_attempts:
            self._services.jobs.record_failure(envelope.job_id, status=JobStatus.DEAD, failure=failure)
            if final:
                self._dead_letter(delivery)
            else:
                # Show it again at once: the queue's redrive policy moves it to the DLQ.
                self._hide(delivery, 0)
            log.error("dead after attempt %d: %s: %s", attempt, failure.error_type, failure.message)
            return Outcome.DEAD
        delay = exc.delay if isinstance(exc, Retry) and exc.delay is not None else None
        if delay is None:
            delay = backoff_delay(self._spec.retry, attempt)
        self._services.jobs.record_failure(envelope.job_id, status=JobStatus.RETRYING, failure=failure)
        self._hide(delivery, delay)
        log.warning("attempt %d failed (%s: %s); retry in %.1fs", attempt, failure.error_type, exc, delay)
        return Outcome.RETRYING

    def _hide(self, delivery: Delivery, seconds: float) -> None:
        self._services.queue.change_visibility(delivery.queue, delivery.message.receipt, seconds)

    def _dead_letter(self, delivery: Delivery) -> None:
        queue = self._services.queue
        errors = queue.send_batch(dead_letter_name(delivery.queue), [OutgoingMessage(delivery.message.body)])
        if errors[0] is None:
            queue.delete(delivery.queue, [delivery.message.receipt])
        else:  # leave it: the redrive policy will move it after its receives run out
            logger.error("could not dead-letter message %s: %s", delivery.message.message_id, errors[0])
