"""The consume loop of one task version.

Guarantees (docs/operations.md, "Worker semantics"; where this file sits: docs/architecture.md):

* long-poll batch receive of up to the queue's batch (10 on SQS, 100 on PostgreSQL): ``concurrency``
  threads plus a prefetch of as many; the jobs of each receive claimed together, in one job store
  transaction (:class:`~tornado_core.worker.claims.ReceiveClaims`);
* ``concurrency`` jobs at once in threads, capped per task by the concurrency limiter (slots taken
  *before* receiving; capped tasks do not prefetch, so a full cap never inflates receive counts),
  and per key by the task's limits, checked on receipt (:mod:`~tornado_core.worker.admission`);
* each body is parsed once, on receipt, into a :class:`~tornado_core.worker.runner.Delivery`
  carrying its envelope: the heartbeat takes the job id from it and the runner runs from it;
* a heartbeat keeps running, finishing and prefetched messages hidden and leases alive;
* a job thread hands a success to the :class:`~tornado_core.worker.completions.BackgroundCompleter`
  and takes the next job; the completer commits the successes that pile up in one transaction (on
  PostgreSQL with their messages' deletes; elsewhere the messages are deleted in batches right
  after), and only then is the job finished here: its message was never acknowledged before its
  outcome was durable, and a failed commit lets it reappear;
* on stop (SIGTERM): no more polling, prefetched messages visible again at once (their claims
  given back), running jobs finish within the grace period, and anything still unfinished after
  it is made visible again too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from queue import SimpleQueue

from tornado_core.errors import BackendError, StoreUnavailable
from tornado_core.naming import queue_spec
from tornado_core.observability.metrics import WorkerMetrics
from tornado_core.ports.queue import ReceivedMessage
from tornado_core.ports.queue_and_jobs import Completion
from tornado_core.services import Services
from tornado_core.task import TaskSpec
from tornado_core.worker.acks import Acknowledger
from tornado_core.worker.admission import Admission
from tornado_core.worker.claims import ReceiveClaims
from tornado_core.worker.completions import BackgroundCompleter, completion_writer
from tornado_core.worker.heartbeat import Heartbeat
from tornado_core.worker.options import WorkerOptions, default_worker_id
from tornado_core.worker.runner import Delivery, JobRunner, Outcome

logger = logging.getLogger("tornado.worker")

__all__ = ["Worker", "WorkerOptions", "default_worker_id"]


@dataclass(slots=True)
class _Running:
    delivery: Delivery
    slot: AbstractContextManager[object]
    #: The job whose lease the heartbeat extends (none for an unreadable message).
    job_id: str | None = field(init=False)

    def __post_init__(self) -> None:
        envelope = self.delivery.envelope
        # The envelope's fields are not type-checked when parsed: only a string id is a lease key.
        self.job_id = envelope.job_id if envelope is not None and isinstance(envelope.job_id, str) else None


class Worker:
    """Pulls and runs the jobs of one task version until stopped.

    Args:
        services: The process's services.
        spec: The task version to serve; the worker polls only its queue.
        options: Concurrency, grace period, poll wait.
        on_outcome: Called with each message's outcome (metrics, tests).
        metrics: The process's Prometheus metrics (a private, unserved set by default).
    """

    def __init__(
        self,
        services: Services,
        spec: TaskSpec,
        options: WorkerOptions | None = None,
        *,
        on_outcome: Callable[[str], None] | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._services = services
        self._spec = spec
        self._metrics = metrics or WorkerMetrics(spec.name, spec.version)
        self._options = options or WorkerOptions()
        self._queue = queue_spec(services.settings.queue_prefix, spec)
        # Constructing the acknowledger starts nothing: its thread runs from run() to its end.
        self._acks = Acknowledger(services.queue)
        # Successes are made durable in batches in the background; each job's outcome is reported
        # (and its slot freed) once its batch is committed.
        self._completer = BackgroundCompleter(
            completion_writer(services.jobs, services.queue_and_jobs, self._acks), self._durable
        )
        self._runner = JobRunner(
            services, spec, worker_id=self._options.worker_id, acks=self._acks, finish=self._completer.submit
        )
        # Uncapped tasks keep up to a batch of messages waiting, so that a receive fetches
        # many at once; capped tasks take no more than the global slots they hold.
        batch = services.queue.max_receive_batch
        default_prefetch = 0 if spec.max_concurrency or spec.limits else min(batch, self._options.concurrency)
        self._prefetch = default_prefetch if self._options.prefetch is None else self._options.prefetch
        self._waiting: deque[_Running] = deque()
        self._on_outcome = on_outcome or (lambda _outcome: None)
        self._running: dict[str, _Running] = {}  # started and not yet finished (or durable)
        self._executing = 0  # of those, the ones a job thread is running now
        self._running_jobs: Counter[str | None] = Counter()  # job id -> its runs here (0 or 1)
        self._ready: SimpleQueue[Delivery | None] = SimpleQueue()  # to the job threads
        self._lock = threading.Lock()
        self._slot_freed = threading.Event()
        self._store_down = threading.Event()
        self._stop = threading.Event()
        # Duplicates of a job that runs here, held until it ends (then they find it done).
        self._parked: dict[str, list[_Running]] = {}
        self._heartbeat = Heartbeat(services, spec, self._held)
        self._claims = ReceiveClaims(services.jobs, self._runner, lease_seconds=spec.lease_seconds)
        self._admission = Admission(services, spec, on_wait=self._metrics.limit_wait)
        self._busy = False
        self._busy_lock = threading.Lock()

    @property
    def queue_name(self) -> str:
        """The queue this worker polls."""
        return self._queue.name

    @property
    def metrics(self) -> WorkerMetrics:
        """Its Prometheus metrics (served by ``tornado worker --metrics-port``)."""
        return self._metrics

    def stop(self) -> None:
        """Ask the loop to stop polling and drain (safe from a signal handler)."""
        self._stop.set()
        self._slot_freed.set()

    def run(self) -> None:
        """Poll and run jobs until :meth:`stop`, then drain within the grace period."""
        self._services.queue.ensure_queue(self._queue)
        logger.info(
            "worker %s polling %s (concurrency %d)",
            self._options.worker_id,
            self._queue.name,
            self._options.concurrency,
        )
        self._acks.start()
        self._completer.start()
        threads = [
            threading.Thread(target=self._run_jobs, name=f"tornado-job-{n}")
            for n in range(self._options.concurrency)
        ]
        try:
            for thread in threads:
                thread.start()
            self._heartbeat.start()
            while not self._stop.is_set():
                self._touch_health_file()
                self._metrics.polled()
                self._poll_once()
            self._return_waiting()
            self._drain()
        finally:
            for _ in threads:
                self._ready.put(None)  # each job thread ends after its current job
            for thread in threads:
                thread.join()
            self._completer.close()  # before the acknowledger: it hands it the messages to delete
            self._heartbeat.stop()
            self._acks.close()
        logger.info("worker %s stopped", self._options.worker_id)

    def _touch_health_file(self) -> None:
        path = self._options.health_file
        if path is None:
            return
        try:
            path.touch()
        except OSError as exc:
            logger.warning("cannot touch health file %s: %s", path, exc)

    def _store_answers(self) -> bool:
        """After a job store outage, poll again only once it answers."""
        if not self._store_down.is_set():
            return True
        try:
            self._services.jobs.ping()
        except BackendError:
            self._stop.wait(1.0)
            return False
        logger.info("job store answers again: polling resumes")
        self._store_down.clear()
        return True

    def _poll_once(self) -> None:
        if not self._store_answers():
            return
        self._start_waiting()
        with self._lock:
            blocked = bool(self._waiting)
        slots = [] if blocked else self._take_slots()
        if not slots:  # all busy, or messages wait for a free thread: wait for one
            self._slot_freed.wait(timeout=0.5)
            self._slot_freed.clear()
            return
        try:
            messages = self._services.queue.receive(
                self._queue.name,
                max_messages=len(slots),
                wait_seconds=self._options.poll_wait,
                visibility_timeout=self._spec.visibility_timeout,
            )
        except BackendError as exc:
            logger.warning("receive failed: %s; retrying in 1s", exc)
            self._release_all(slots)
            self._stop.wait(1.0)
            return
        if self._stop.is_set():
            self._return_unstarted(messages)
            self._release_all(slots)
            return
        self._hold(messages, slots)
        self._start_waiting()

    def _hold(self, messages: Sequence[ReceivedMessage], slots: list[AbstractContextManager[None]]) -> None:
        """Parse each received message once, admit them under their task's per-key limits (the
        refused go back to the queue), claim their jobs together, queue each with its slots."""
        deliveries = [Delivery.received(self._queue.name, m, started=time.monotonic()) for m in messages]
        admitted = self._admit(deliveries)
        with self._lock:
            held = {job_id for _, job_id in self._held_unlocked() if job_id is not None}
        self._claims.claim_together([delivery for delivery, _ in admitted], held=held)
        with self._lock:
            for delivery, keys in admitted:
                keys.push(slots.pop())  # the task's slot goes with the key slots
                self._waiting.append(_Running(delivery, keys))
        self._release_all(slots)

    def _admit(self, deliveries: list[Delivery]) -> list[tuple[Delivery, ExitStack]]:
        if not self._admission.active:
            return [(delivery, ExitStack()) for delivery in deliveries]
        try:
            return self._admission.admit(self._queue.name, deliveries)
        except Exception as exc:  # the limits' store is down (or a bug): the messages reappear later
            logger.warning("per-key limits unavailable: %r; %d jobs wait", exc, len(deliveries))
            self._return_unstarted([delivery.message for delivery in deliveries])
            self._stop.wait(1.0)
            return []

    def _start_waiting(self) -> None:
        while True:
            with self._lock:
                if not self._waiting or self._executing >= self._options.concurrency:
                    return
                item = self._waiting.popleft()
                if self._park_if_running(item):
                    continue
            self._start(item)

    def _park_if_running(self, item: _Running) -> bool:
        """Hold a redelivered copy of a job that runs here; it goes on once that run ends.

        A message reappears when its visibility could not be extended (a stalled backend). Its
        job must not run twice at once in one worker; after the run, the copy finds the job done
        (or retries it), and its newer receipt is the one that deletes the message.
        """
        job_id = item.job_id
        if job_id is None or not self._running_jobs[job_id]:
            return False
        self._parked.setdefault(job_id, []).append(item)
        logger.info("job %s arrived again while it runs here: held until that run ends", job_id)
        return True

    def _held(self) -> list[tuple[Delivery, str | None]]:
        """Every delivery this worker holds (running, waiting or parked), for the heartbeat."""
        with self._lock:
            return self._held_unlocked()

    def _held_unlocked(self) -> list[tuple[Delivery, str | None]]:
        parked = [item for items in self._parked.values() for item in items]
        return [(i.delivery, i.job_id) for i in (*self._running.values(), *self._waiting, *parked)]

    def _return_waiting(self) -> None:
        with self._lock:
            parked = [item for items in self._parked.values() for item in items]
            waiting, self._waiting, self._parked = [*self._waiting, *parked], deque(), {}
        self._claims.release([item.delivery for item in waiting])
        self._return_unstarted([item.delivery.message for item in waiting])
        for item in waiting:
            item.slot.__exit__(None, None, None)

    def _take_slots(self) -> list[AbstractContextManager[None]]:
        """As many slots as the worker could start jobs now: of the task's global cap, taken in one go."""
        with self._lock:
            free = self._options.concurrency + self._prefetch - self._executing - len(self._waiting)
        wanted = min(free, self._services.queue.max_receive_batch)
        cap = self._spec.max_concurrency
        if not cap:
            return [contextlib.nullcontext() for _ in range(wanted)]
        try:
            slots = self._services.limiter.try_acquire_many(self._spec.name, cap, wanted)
        except BackendError as exc:  # the limiter's database is down: poll again later, do not die
            logger.warning("concurrency limiter unavailable: %s; retrying in 1s", exc)
            self._stop.wait(1.0)
            return []
        if len(slots) < wanted:
            self._metrics.limit_wait("global")
        for slot in slots:
            slot.__enter__()
        return slots

    def _release_all(self, slots: list[AbstractContextManager[None]]) -> None:
        """Release slots handed to no job (together)."""
        if slots:
            self._services.limiter.release_many(slots)
            slots.clear()

    def _start(self, item: _Running) -> None:
        item.delivery.started = time.monotonic()  # the deadline counts from here
        attempt, envelope = item.delivery.message.receive_count, item.delivery.envelope
        self._metrics.started(attempt, envelope.submitted_at if envelope else None)
        with self._lock:
            self._running[item.delivery.message.receipt] = item
            self._running_jobs[item.job_id] += 1
            self._executing += 1
        self._report_busy()
        self._ready.put(item.delivery)

    def _run_jobs(self) -> None:
        """One job thread: runs deliveries until it gets ``None``."""
        while (delivery := self._ready.get()) is not None:
            receipt = delivery.message.receipt
            error: BaseException | None = None
            try:
                outcome: Outcome | None = self._runner.run(delivery)
            except BaseException as exc:  # reported by _finished; the thread goes on
                outcome, error = None, exc
            self._metrics.ran(time.monotonic() - delivery.started, outcome)
            with self._lock:
                self._executing -= 1
            if outcome is Outcome.SUCCEEDED:  # handed to the completer, which finishes it when durable
                self._slot_freed.set()
            else:
                self._finished(receipt, outcome, error)

    def _durable(self, batch: list[Completion], error: BaseException | None) -> None:
        """The completer's report: these successes are durable (or could not be written)."""
        for completion in batch:
            self._finished(completion.receipt, Outcome.SUCCEEDED if error is None else None, error)

    def _finished(self, receipt: str, outcome: Outcome | None, exc: BaseException | None) -> None:
        with self._lock:
            running = self._running.pop(receipt, None)
            if running is not None:
                self._running_jobs[running.job_id] -= 1
                if not self._running_jobs[running.job_id]:
                    del self._running_jobs[running.job_id]
            if running is not None and running.job_id in self._parked:
                self._waiting.extendleft(reversed(self._parked.pop(running.job_id or "")))
        if running is not None:
            running.slot.__exit__(None, None, None)
            envelope = running.delivery.envelope
            self._metrics.finished(envelope.tenant if envelope else None, outcome)
        self._report_busy()
        if isinstance(exc, BackendError):
            logger.warning(
                "%s: %s while running message %s; it reappears after its visibility timeout and the "
                "job is tried again (its effects are keyed by its job id)",
                type(exc).__name__, exc, receipt[:16],
            )  # fmt: skip
            if isinstance(exc, StoreUnavailable):
                self._store_down.set()  # stop receiving until the store answers
        elif exc is not None:
            logger.error("job runner crashed: %r (the message will reappear)", exc)
        elif outcome is not None:
            if outcome is Outcome.DEFERRED_STORE_DOWN:
                self._store_down.set()  # stop receiving: each receive would burn a delivery attempt
            self._on_outcome(outcome)
        self._slot_freed.set()

    def _report_busy(self) -> None:
        """Tell ``on_busy_change`` when the worker goes from idle to busy or back."""
        hook = self._options.on_busy_change
        if hook is None:
            return
        with self._busy_lock:  # serialized, and re-read: the last call matches the current state
            with self._lock:
                busy = bool(self._running)
            if busy == self._busy:
                return
            self._busy = busy
            try:
                hook(busy)
            except Exception:  # a hook must never break the loop
                logger.exception("on_busy_change hook failed")

    def _drain(self) -> None:
        deadline = time.monotonic() + self._options.grace_period
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return
            time.sleep(0.05)
        with self._lock:
            leftovers = [r.delivery.message for r in self._running.values()]
        logger.warning("grace period over: %d unfinished job(s) made visible again", len(leftovers))
        self._return_unstarted(leftovers)

    def _return_unstarted(self, messages: Sequence[ReceivedMessage]) -> None:
        for message in messages:
            with contextlib.suppress(BackendError):
                self._services.queue.change_visibility(self._queue.name, message.receipt, 0)
