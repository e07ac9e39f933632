"""The queue sampler: every known queue's counts recorded once per interval across the API processes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tornado_core.console.figures import ConsoleFigures
from tornado_core.errors import TornadoError
from tornado_core.ports.insights import QueueSamplesPort

logger = logging.getLogger("tornado.console")

#: Share of the interval after which a sample is due: a timer that fires a little early does not
#: skip a whole turn.
DUE_AFTER = 0.9


class QueueSampler:
    """Samples every known queue every ``interval`` seconds; prunes samples older than ``keep``.

    Each API process runs one; the store lets one of them record per interval (an advisory lock,
    and nothing recorded while the newest sample is younger than the interval), so several
    processes write what one would.

    Args:
        figures: Where the queues are read (:meth:`ConsoleFigures.queues`).
        samples: Where the samples are kept.
        interval: Seconds between samples.
        keep: How long samples are kept.
        clock: Epoch seconds now (the samples' time stamps).
    """

    def __init__(
        self,
        figures: ConsoleFigures,
        samples: QueueSamplesPort,
        *,
        interval: float = 30.0,
        keep: timedelta = timedelta(days=7),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self._figures = figures
        self._samples = samples
        self._interval = interval
        self._keep = keep
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_once(self) -> int:
        """Record one sample of every queue if it is this process's turn, and prune old samples.

        Returns:
            Samples written (0 when another process sampled within the interval, or sampling now).

        Raises:
            QueueUnavailable: The queue service does not answer.
            StoreUnavailable: The job store does not answer.
        """
        at = datetime.fromtimestamp(self._clock(), UTC)
        written = self._samples.record_due(at, self._figures.queues, interval=self._interval * DUE_AFTER)
        if written is None:
            return 0
        self._samples.prune(at - self._keep)
        return written

    def start(self) -> None:
        """Sample now and then every interval, on a daemon thread, until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tornado-queue-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, waiting up to ``timeout`` seconds for a sample under way."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        """Whether the sampling thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample_once()
            except TornadoError as exc:  # the service comes back: the next turn samples again
                logger.warning("queue sampler: no sample this turn: %s", exc)
            except Exception:  # a bug must not end the console's charts for the process's life
                logger.exception("queue sampler: sample failed")
            self._stop.wait(self._interval)
