"""Gauges read from a backend when Prometheus scrapes (queue depths, the job store's counts), cached a while.

:class:`ScrapedGauges` is one prometheus collector holding every such source. At each scrape a
source is read again only when its last read is older than its ``cache_seconds`` (so scrapes from
several Prometheus servers, or a dashboard's bursts, cost one read), and a scrape never fails: a
source that fails is logged, reported as ``tornado_metrics_source_up{source} 0``, and its gauges
are left out of that scrape rather than shown stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

logger = logging.getLogger("tornado.metrics")

#: One sample a source reads: (family name, its label values in the family's order, value).
Sample = tuple[str, tuple[str, ...], float]
#: The family telling whether each source's last read worked.
SOURCE_UP = "tornado_metrics_source_up"


@dataclass(frozen=True)
class GaugeFamily:
    """A gauge family a source fills: its name, help text and label names."""

    name: str
    documentation: str
    labels: tuple[str, ...]


class ScrapedGauges:
    """A collector of gauges whose values come from sources read at scrape time.

    Args:
        clock: Monotonic seconds (tests pass a fake).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sources: list[_Source] = []
        self._names: set[str] = {SOURCE_UP}

    def add(
        self,
        source: str,
        families: Sequence[GaugeFamily],
        read: Callable[[], Iterable[Sample]],
        *,
        cache_seconds: float,
    ) -> None:
        """Add a source: its name (the ``source`` label), the families it fills and how to read it.

        Raises:
            ValueError: A family of that name is already shown.
        """
        names = {family.name for family in families}
        if names & self._names:
            raise ValueError(f"metrics already registered: {', '.join(sorted(names & self._names))}")
        self._names |= names
        self._sources.append(_Source(source, tuple(families), read, cache_seconds, self._clock))

    def collect(self) -> Iterator[Metric]:
        """Every source's families with the samples of its last read, then whether each read worked."""
        up = GaugeMetricFamily(SOURCE_UP, "Whether the last read of a scraped source worked (1) or not (0).",
                               labels=("source",))  # fmt: skip
        for source in self._sources:
            ok, samples = source.current()
            up.add_metric((source.name,), 1.0 if ok else 0.0)
            yield from source.families(samples)
        if self._sources:
            yield up


class _Source:
    """One source: read at most every ``cache_seconds``, one read at a time."""

    def __init__(
        self,
        name: str,
        families: tuple[GaugeFamily, ...],
        read: Callable[[], Iterable[Sample]],
        cache_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self._families = families
        self._read = read
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._last: tuple[bool, list[Sample]] = (False, [])

    def current(self) -> tuple[bool, list[Sample]]:
        """Whether the last read worked, and its samples (reading again if it is too old)."""
        with self._lock:  # concurrent scrapes share one read
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._cache_seconds:
                self._read_at = now
                self._last = self._read_safely()
            return self._last

    def families(self, samples: list[Sample]) -> list[GaugeMetricFamily]:
        """The source's families holding ``samples``."""
        built = {f.name: GaugeMetricFamily(f.name, f.documentation, labels=f.labels) for f in self._families}
        for name, labels, value in samples:
            if name in built:
                built[name].add_metric(labels, value)
        return list(built.values())

    def _read_safely(self) -> tuple[bool, list[Sample]]:
        try:
            return True, list(self._read())
        except Exception as exc:  # a scrape never fails because one source does
            logger.warning("metrics source %s unavailable: %s", self.name, exc)
            return False, []
