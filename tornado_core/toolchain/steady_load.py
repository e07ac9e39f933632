"""A steady open-loop HTTP load of jobs through the Python client, for release rehearsals.

Release tests and the release benchmark submit jobs at a fixed rate while a version is
deployed, ramped, promoted and drained, and then check every answer.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tornado_core.client import TornadoClient
from tornado_core.errors import ApiError


@dataclass(frozen=True)
class Submitted:
    """One accepted job: its id, the version it was routed to, when it was sent and answered."""

    job_id: str
    version: str
    sent: float
    answered: float


@dataclass
class SteadyLoad:
    """Submits jobs of ``task`` at ``rate`` per second over HTTP until stopped (open loop).

    Use it as a context manager. Every answer is kept: accepted jobs in ``submitted``,
    refusals in ``failures``.

    Attributes:
        api_url: The API's address.
        token: A tenant's bearer token.
        task: The task to submit.
        rate: Jobs per second, all threads together.
        payload: The payload of job number ``n``.
        threads: Client threads (each sends when its turn comes).
    """

    api_url: str
    token: str
    task: str
    rate: float
    payload: Callable[[int], dict[str, Any]] = lambda n: {"n": n}
    threads: int = 4
    submitted: list[Submitted] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _counter: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> SteadyLoad:
        started = time.monotonic()
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, args=(started,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=30)

    def _run(self, started: float) -> None:
        client = TornadoClient(self.api_url, self.token, timeout=30)
        while not self._stop.is_set():
            with self._lock:
                n = next(self._counter)
            delay = started + n / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            sent = time.time()
            try:
                receipt = client.submit(self.task, self.payload(n))
            except ApiError as exc:
                self.failures.append(f"{exc.status} {exc}")
                continue
            self.submitted.append(Submitted(receipt["id"], receipt["version"], sent, time.time()))
