"""The dispatcher: claims due deliveries, POSTs them on a pool of threads, records each attempt.

Several dispatchers may run at once (the store hands each delivery to one of them). A failed
attempt is retried after an exponential, jittered back-off; after the last one the delivery is dead
(the dead-letter list) until someone redelivers it. :meth:`Dispatcher.stop` (SIGTERM) lets the
attempts under way finish and returns.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tornado_core.errors import BackendError
from tornado_core.ports.webhooks import AttemptResult, ClaimedDelivery, WebhookStorePort
from tornado_core.retry import RetryPolicy, backoff_delay
from tornado_core.webhooks.events import delivery_body, delivery_headers
from tornado_core.webhooks.sender import Sender, http_post

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DispatchOptions:
    """How a dispatcher works.

    Attributes:
        concurrency: POSTs under way at once.
        max_attempts: Attempts before a delivery is dead.
        backoff_base: Seconds before the second attempt; doubled for each further one.
        backoff_max: Longest wait between two attempts.
        timeout: Seconds a receiver has to answer.
        poll_interval: Longest sleep between two looks at the store (a new delivery usually wakes
            the dispatcher at once).
    """

    concurrency: int = 8
    max_attempts: int = 8
    backoff_base: float = 10.0
    backoff_max: float = 3600.0
    timeout: float = 10.0
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.timeout <= 0 or self.poll_interval <= 0:
            raise ValueError("timeout and poll_interval must be positive")
        self.policy()  # checks attempts and delays

    def policy(self) -> RetryPolicy:
        """The retry policy of deliveries (jitter: up to half of each delay)."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_max=self.backoff_max,
            jitter=0.5,
        )

    @property
    def lease_seconds(self) -> float:
        """How long a claimed delivery stays with its dispatcher (an attempt takes at most ``timeout``)."""
        return 2 * self.timeout + 30.0


class Dispatcher:
    """Delivers a store's due deliveries until stopped.

    Args:
        store: Where deliveries wait.
        options: Concurrency, attempts, back-off, timeouts.
        sender: Sends one POST (HTTP by default; unit tests pass their own).
        rng: The back-off's jitter.
        clock: Unix seconds, for signatures.
    """

    def __init__(
        self,
        store: WebhookStorePort,
        options: DispatchOptions,
        *,
        sender: Sender = http_post,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._store = store
        self._options = options
        self._policy = options.policy()
        self._send = sender
        self._rng = rng or random.Random()
        self._clock = clock
        self._stop = threading.Event()
        self._slots = threading.Semaphore(options.concurrency)

    def stop(self) -> None:
        """Ask :meth:`run` to return once the attempts under way are recorded (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> None:
        """Claim and deliver until :meth:`stop`."""
        with ThreadPoolExecutor(self._options.concurrency, thread_name_prefix="tornado-webhook") as pool:
            while not self._stop.is_set():
                claimed = self._claim()
                if not claimed:
                    continue
                for delivery in claimed:
                    pool.submit(self._attempt_and_release, delivery)
        _log.info("webhook dispatcher stopped")

    def deliver_due(self) -> int:
        """Deliver what is due now, one at a time, on this thread; returns how many were attempted."""
        claimed = self._store.claim_due(
            limit=self._options.concurrency, lease_seconds=self._options.lease_seconds
        )
        for delivery in claimed:
            self.attempt(delivery)
        return len(claimed)

    def attempt(self, claimed: ClaimedDelivery) -> AttemptResult:
        """POST one claimed delivery and record the outcome (retry, delivered or dead)."""
        body = delivery_body(claimed)
        timestamp = int(self._clock()) if self._clock is not None else None
        result = self._send(
            claimed.url, body, delivery_headers(claimed, body, timestamp=timestamp), self._options.timeout
        )
        retry_in = None if result.delivered else self._retry_in(claimed.attempt)
        self._store.record_attempt(claimed, result, retry_in=retry_in)
        self._log(claimed, result, retry_in)
        return result

    def _retry_in(self, attempt: int) -> float | None:
        if attempt >= self._policy.max_attempts:
            return None
        return backoff_delay(self._policy, attempt, self._rng)

    def _claim(self) -> list[ClaimedDelivery]:
        """Wait for a free slot, then claim as many due deliveries as there are free slots."""
        free = self._take_slots()
        if not free:
            return []
        claimed: list[ClaimedDelivery] = []
        try:
            claimed = self._store.claim_due(limit=free, lease_seconds=self._options.lease_seconds)
        except BackendError as exc:
            _log.warning("webhook store unavailable: %s", exc)
            self._stop.wait(self._options.poll_interval)
        finally:
            for _ in range(free - len(claimed)):
                self._slots.release()
        if not claimed and not self._stop.is_set():
            self._wait_for_work()
        return claimed

    def _take_slots(self) -> int:
        """Block (until stopped) for one free slot, then take every other free one."""
        while not self._slots.acquire(timeout=self._options.poll_interval):
            if self._stop.is_set():
                return 0
        if self._stop.is_set():
            self._slots.release()
            return 0
        taken = 1
        while taken < self._options.concurrency and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _wait_for_work(self) -> None:
        try:
            self._store.wait_for_work(self._options.poll_interval)
        except BackendError:
            self._stop.wait(self._options.poll_interval)

    def _attempt_and_release(self, claimed: ClaimedDelivery) -> None:
        try:
            self.attempt(claimed)
        except BackendError as exc:  # its lease runs out and it is attempted again
            _log.warning("could not record delivery %s: %s", claimed.delivery_id, exc)
        except Exception:
            _log.exception("delivery %s failed unexpectedly", claimed.delivery_id)
        finally:
            self._slots.release()

    def _log(self, claimed: ClaimedDelivery, result: AttemptResult, retry_in: float | None) -> None:
        what = f"delivery {claimed.delivery_id} ({claimed.event}) attempt {claimed.attempt} to {claimed.url}"
        if result.delivered:
            _log.info("%s: delivered (HTTP %s, %d ms)", what, result.status_code, result.duration_ms)
        elif retry_in is not None:
            _log.info("%s: failed (%s); retry in %.1fs", what, result.error, retry_in)
        else:
            _log.warning("%s: failed (%s); dead after %d attempts", what, result.error, claimed.attempt)
