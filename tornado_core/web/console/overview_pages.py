"""The console's look-only pages: the overview, the queues with their charts, the figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tornado.web import HTTPError

from tornado_core.console.charts import bar_series, sparkline
from tornado_core.errors import TornadoError
from tornado_core.ports.insights import Figures, QueueSnapshot
from tornado_core.web.console.base import ConsoleHandler

#: The windows the figures can be read over, by their name in the page's menu.
WINDOWS = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


def window_of(name: str | None) -> tuple[str, timedelta]:
    """The window a page was asked for (one hour by default).

    Raises:
        HTTPError: 400 for a window the menu does not offer.
    """
    chosen = name or "1h"
    if chosen not in WINDOWS:
        raise HTTPError(400, reason=f"window: must be one of {', '.join(WINDOWS)}")
    return chosen, WINDOWS[chosen]


@dataclass(frozen=True, kw_only=True)
class VersionRow:
    """One task version on the overview: its release, its queue now, its last hour.

    Attributes:
        task: Task name.
        version: Task version.
        state: Release state, or ``installed`` for a task never released (the newest version gets jobs).
        role: How new jobs reach it (``current``, ``ramping 10%``, ``pinned: acme``).
        workers: ``healthy/wanted`` for a released version, else ``None``.
        healthy: Whether every wanted worker is healthy (or none are wanted).
        queue: Its queue's counts now (``None`` when the queue does not exist).
        figures: Its jobs finished in the last hour (``None`` when none did).
        problem: Why its release could not be read.
    """

    task: str
    version: str
    state: str
    role: str
    workers: str | None = None
    healthy: bool = True
    queue: QueueSnapshot | None = None
    figures: Figures | None = None
    problem: str | None = None


@dataclass(frozen=True, kw_only=True)
class Totals:
    """The overview's tiles: the whole installation at a glance."""

    waiting: int
    in_flight: int
    dead_letters: int
    oldest_age: float | None
    finished: int
    failed: int

    @property
    def error_rate(self) -> float | None:
        """Failed jobs among those finished in the last hour."""
        return self.failed / self.finished if self.finished else None


def totals_of(queues: list[QueueSnapshot], figures: list[Figures]) -> Totals:
    """Sums over every version's queue and last hour."""
    ages = [q.oldest_age for q in queues if q.oldest_age is not None]
    return Totals(
        waiting=sum(q.visible + q.delayed for q in queues),
        in_flight=sum(q.in_flight for q in queues),
        dead_letters=sum(q.dead_letters for q in queues),
        oldest_age=max(ages) if ages else None,
        finished=sum(f.finished for f in figures),
        failed=sum(f.failed for f in figures),
    )


class OverviewHandler(ConsoleHandler):
    """``/console``: every task version with its release, queue and last hour; totals; bulk actions."""

    async def get(self) -> None:
        """The overview."""
        queues = await self.blocking(self.console.figures.queues)
        figures = await self.blocking(self.console.figures.per_version, window=WINDOWS["1h"])
        rows = await self.blocking(self._rows, queues, figures)
        recent = await self.blocking(self.console.bulk.recent, 5)
        self.render(
            "overview.html", rows=rows, totals=totals_of(queues, figures), recent=recent, page_title=""
        )

    def _rows(self, queues: list[QueueSnapshot], figures: list[Figures]) -> list[VersionRow]:
        registry = self.console.services.registry
        now = _Now({(q.task, q.version): q for q in queues}, {(f.task, f.version or ""): f for f in figures})
        public = {name for name in registry.names() if not registry.is_internal(name)}
        released = {
            task for task, _version in self.console.figures.versions() if not registry.is_internal(task)
        }
        rows: list[VersionRow] = []
        for task in sorted(public | released):
            try:
                statuses = self.console.releases.status(task)
            except TornadoError as exc:  # one task's trouble does not hide the others
                rows.append(VersionRow(task=task, version="-", state="unknown", role="", problem=str(exc)))
                continue
            for status in statuses:
                release = status.release
                workers = f"{status.healthy}/{release.replicas}"
                rows.append(
                    now.row(task, release.version, str(release.state), status.role or "-", workers=workers,
                            healthy=status.healthy >= release.replicas)
                )  # fmt: skip
            if not statuses and task in public:
                rows.append(now.row(task, registry.get(task).version, "installed", "current (not released)"))
        return rows


@dataclass(frozen=True)
class _Now:
    """Each version's queue now and last hour, to fill its overview row."""

    queues: dict[tuple[str, str], QueueSnapshot]
    figures: dict[tuple[str, str], Figures]

    def row(self, task: str, version: str, state: str, role: str, **more: Any) -> VersionRow:
        key = (task, version)
        return VersionRow(
            task=task, version=version, state=state, role=role, queue=self.queues.get(key),
            figures=self.figures.get(key), **more,
        )  # fmt: skip


class QueuesHandler(ConsoleHandler):
    """``/console/queues``: each version's queue now, with its counts over the last hours."""

    async def get(self) -> None:
        """The queues and their charts (samples kept in PostgreSQL survive restarts)."""
        window_name, window = window_of(self.arg("window", "6h"))
        queues = await self.blocking(self.console.figures.queues)
        charts = {}
        for queue in queues:
            series = await self.blocking(
                self.console.figures.queue_series, queue.task, queue.version, window=window
            )
            waiting = [float(s.visible + s.delayed) for s in series]
            dead = [float(s.dead_letters) for s in series]
            charts[queue.queue] = {
                "waiting": sparkline(waiting, title=f"{queue.task} {queue.version}: waiting messages"),
                "dead": sparkline(dead, title=f"{queue.task} {queue.version}: dead letters"),
                "samples": len(series),
            }
        self.render(
            "queues.html", queues=queues, charts=charts, window_name=window_name, windows=WINDOWS,
            page_title="Queues",
        )  # fmt: skip


class FiguresHandler(ConsoleHandler):
    """``/console/figures``: throughput, latency percentiles and error rate per version and per tenant."""

    async def get(self) -> None:
        """The figures over the chosen window, with each version's finished jobs over time."""
        window_name, window = window_of(self.arg("window"))
        task = self.arg("task")
        per_version = await self.blocking(self.console.figures.per_version, window=window)
        per_tenant = await self.blocking(self.console.figures.per_tenant, window=window, task=task, limit=50)
        charts = {}
        for row in per_version:
            step = max(window / 24, timedelta(minutes=1))
            buckets = await self.blocking(
                self.console.figures.throughput_series, row.task, row.version, window=window, step=step
            )
            labels = [(start.strftime("%H:%M"), float(ok), float(bad)) for start, ok, bad in buckets]
            charts[(row.task, row.version)] = bar_series(
                labels, title=f"{row.task} {row.version}: finished jobs"
            )
        self.render(
            "figures.html", per_version=per_version, per_tenant=per_tenant, charts=charts,
            window_name=window_name, windows=WINDOWS, task=task or "", page_title="Figures",
        )  # fmt: skip
