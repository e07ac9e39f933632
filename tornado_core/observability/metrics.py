"""Prometheus metrics of a worker and of the API: their families, and cheap updates on the hot paths.

No global registry: each process object owns a :class:`~prometheus_client.CollectorRegistry`
(:attr:`WorkerMetrics.registry`, :attr:`ApiMetrics.registry`) and hands it to whatever serves it
(``tornado worker --metrics-port``, the API's ``GET /metrics``). Labelled children are resolved
once and kept in dicts, so a job or a request costs a dict lookup and an increment. Every metric is
listed, with its labels, in docs/metrics.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tornado_core.observability.metrics_scrape import GaugeFamily, Sample, ScrapedGauges
from tornado_core.ports.insights import QueueSnapshot
from tornado_core.ports.jobs import JobCount

#: Seconds from submission to start: sub-second queueing up to an hour's backlog.
WAIT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600)
#: Seconds a job runs: trivial handlers up to long reports.
RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600)
#: Seconds an HTTP request takes.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: HTTP methods kept as they are in labels; anything else a client sends is counted as ``OTHER``.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: The outcome of a message whose run raised out of the runner (a backend error, a crash).
FAILED = "failed"
#: Outcomes of messages that ran no handler (a copy of a finished job, a job deferred).
NOT_RUN = frozenset({"skipped_already_done", "deferred_busy", "deferred_store_down"})

_VERSION = ("task", "version")
QUEUE_MESSAGES = GaugeFamily(
    "tornado_queue_messages", "Messages in a task version's queue, by state.", (*_VERSION, "state")
)
QUEUE_DEAD_LETTERS = GaugeFamily(
    "tornado_queue_dead_letters", "Messages in a task version's dead-letter queue.", _VERSION
)
QUEUE_OLDEST_AGE = GaugeFamily(
    "tornado_queue_oldest_age_seconds", "Age of the oldest message in a task version's queue.", _VERSION
)
STORE_JOBS = GaugeFamily(
    "tornado_store_jobs", "Jobs in the job store by task, version and status.", (*_VERSION, "status")
)


class WorkerMetrics:
    """The metrics of one worker process, serving one task version.

    Args:
        task: The task the worker serves.
        version: Its version.
        registry: Where the families are registered; a new registry by default.
    """

    def __init__(self, task: str, version: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._task, self._version = task, version
        reg = self.registry
        self._jobs = Counter(
            "tornado_jobs", "Messages run to an outcome, by task, version, tenant and outcome.",
            (*_VERSION, "tenant", "outcome"), registry=reg,
        )  # fmt: skip
        wait = Histogram(
            "tornado_job_wait_seconds", "Seconds from submission to the start of a job's first attempt.",
            _VERSION, buckets=WAIT_BUCKETS, registry=reg,
        )  # fmt: skip
        run = Histogram(
            "tornado_job_run_seconds", "Seconds an attempt runs (handler and result).",
            _VERSION, buckets=RUN_BUCKETS, registry=reg,
        )  # fmt: skip
        in_flight = Gauge("tornado_jobs_in_flight", "Jobs running now.", _VERSION, registry=reg)
        retries = Counter("tornado_job_retries", "Attempts started after the first.", _VERSION, registry=reg)
        last_poll = Gauge(
            "tornado_worker_last_poll_timestamp_seconds", "When the worker last polled its queue (epoch).",
            _VERSION, registry=reg,
        )  # fmt: skip
        self._limit_waits = Counter(
            "tornado_limit_waits", "Jobs held back by a limit (kind: global, concurrency, rate).",
            (*_VERSION, "kind"), registry=reg,
        )  # fmt: skip
        self._wait, self._run = wait.labels(task, version), run.labels(task, version)
        self._in_flight, self._retries = in_flight.labels(task, version), retries.labels(task, version)
        self._last_poll = last_poll.labels(task, version)
        self._outcomes: dict[tuple[str, str], Any] = {}
        self._kinds: dict[str, Any] = {}

    def polled(self) -> None:
        """The loop is about to poll (the "worker missing" alert watches this)."""
        self._last_poll.set(time.time())

    def started(self, attempt: int, submitted_at: float | None) -> None:
        """A job starts running.

        Args:
            attempt: Its attempt number (the message's receive count).
            submitted_at: When the API accepted it (epoch seconds; ``None``: unreadable message).
        """
        self._in_flight.inc()
        if attempt > 1:
            self._retries.inc()
        elif isinstance(submitted_at, int | float) and submitted_at > 0:  # envelopes are not type-checked
            self._wait.observe(max(0.0, time.time() - submitted_at))

    def ran(self, seconds: float, outcome: str | None) -> None:
        """A job's attempt ended after ``seconds`` (its outcome may become durable later).

        Only attempts that ran a handler are timed: not a copy of a finished job, nor one deferred.
        """
        self._in_flight.dec()
        if outcome not in NOT_RUN:
            self._run.observe(seconds)

    def finished(self, tenant: str | None, outcome: str | None) -> None:
        """A message reached its outcome (a success once it is durable); ``None``: it failed to run."""
        key = (tenant if isinstance(tenant, str) else "", outcome or FAILED)
        child = self._outcomes.get(key)
        if child is None:
            child = self._outcomes.setdefault(key, self._jobs.labels(self._task, self._version, *key))
        child.inc()

    def limit_wait(self, kind: str) -> None:
        """A job, or a receive, was held back by a limit: ``global``, ``concurrency`` or ``rate``."""
        child = self._kinds.get(kind)
        if child is None:
            child = self._kinds.setdefault(kind, self._limit_waits.labels(self._task, self._version, kind))
        child.inc()


class ApiMetrics:
    """The metrics of one API process: requests, submissions, and gauges read when scraped.

    Args:
        registry: Where the families are registered; a new registry by default.
        queues: Reads the queues' figures (depth, dead letters, oldest age); ``None``: not shown.
        job_counts: Reads the job store's counts; ``None``: not shown.
        queue_seconds: How long one read of the queues serves scrapes.
        store_seconds: How long one count of the job store serves scrapes (it scans every job).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        queues: Callable[[], Iterable[QueueSnapshot]] | None = None,
        job_counts: Callable[[], Iterable[JobCount]] | None = None,
        queue_seconds: float = 5.0,
        store_seconds: float = 15.0,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        self._requests = Counter(
            "tornado_http_requests", "HTTP requests answered, by route, method and status.",
            ("route", "method", "status"), registry=reg,
        )  # fmt: skip
        self._seconds = Histogram(
            "tornado_http_request_seconds", "Seconds to answer an HTTP request, by route and method.",
            ("route", "method"), buckets=HTTP_BUCKETS, registry=reg,
        )  # fmt: skip
        self._submitted = Counter(
            "tornado_jobs_submitted", "Jobs accepted by this API process, by task, version and tenant.",
            (*_VERSION, "tenant"), registry=reg,
        )  # fmt: skip
        self._scraped = ScrapedGauges()
        reg.register(self._scraped)
        self._by_request: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._by_job: dict[tuple[str, str, str], Any] = {}
        if queues is not None:
            families = (QUEUE_MESSAGES, QUEUE_DEAD_LETTERS, QUEUE_OLDEST_AGE)
            self._scraped.add(
                "queues", families, partial(_queue_samples, queues), cache_seconds=queue_seconds
            )
        if job_counts is not None:
            self._scraped.add(
                "store", (STORE_JOBS,), partial(_store_samples, job_counts), cache_seconds=store_seconds
            )

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request.

        Args:
            route: The handler that answered (a route's name, never the raw URI).
            method: The HTTP method (unknown ones are counted as ``OTHER``).
            status: The answer's status code.
            seconds: How long it took.
        """
        key = (route, method, status)
        children = self._by_request.get(key)
        if children is None:
            verb = method if method in METHODS else "OTHER"
            children = (self._requests.labels(route, verb, str(status)), self._seconds.labels(route, verb))
            self._by_request[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def submitted(self, task: str, version: str, tenant: str, count: int = 1) -> None:
        """Count ``count`` jobs of one task version accepted by this API."""
        key = (task, version, tenant)
        child = self._by_job.get(key)
        if child is None:
            child = self._by_job.setdefault(key, self._submitted.labels(*key))
        child.inc(count)

    def add_gauge(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        read: Callable[[], Iterable[tuple[Sequence[str], float]]],
        *,
        cache_seconds: float = 300.0,
    ) -> None:
        """Add a gauge read when scraped (a plugin's door, e.g. NF-e certificates' expiry).

        Args:
            name: The family's name (``tornado_...``).
            documentation: Its help text.
            labels: Its label names.
            read: Returns ``(label values, value)`` pairs; called at most every ``cache_seconds``.
            cache_seconds: How long one read serves scrapes.

        Raises:
            ValueError: A gauge of that name is already shown.
        """
        family = GaugeFamily(name, documentation, tuple(labels))

        def samples() -> Iterator[Sample]:
            return ((name, tuple(values), value) for values, value in read())

        self._scraped.add(name, (family,), samples, cache_seconds=cache_seconds)


def _queue_samples(read: Callable[[], Iterable[QueueSnapshot]]) -> Iterator[Sample]:
    """The queue gauges of each task version's snapshot (no age when no job waits)."""
    for snap in read():
        version = (snap.task, snap.version)
        states = {"visible": snap.visible, "in_flight": snap.in_flight, "delayed": snap.delayed}
        for state, count in states.items():
            yield QUEUE_MESSAGES.name, (*version, state), float(count)
        yield QUEUE_DEAD_LETTERS.name, version, float(snap.dead_letters)
        if snap.oldest_age is not None:
            yield QUEUE_OLDEST_AGE.name, version, float(snap.oldest_age)


def _store_samples(read: Callable[[], Iterable[JobCount]]) -> Iterator[Sample]:
    """The job store gauge of each (task, version, status) count."""
    for count in read():
        yield STORE_JOBS.name, (count.task, count.version, count.status), float(count.count)
