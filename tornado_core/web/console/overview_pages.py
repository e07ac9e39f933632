"""The console's look-only pages: the overview, the queues with their charts, the figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from tornado.web import HTTPError

from tornado_core.console.charts import bar_series, sparkline
from tornado_core.errors import TornadoError
from tornado_core.releases.view import VersionStatus
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
class TaskOverview:
    """One task on the overview: its versions' status rows, or why they could not be read."""

    task: str
    versions: list[VersionStatus]
    installed: list[str]
    problem: str | None = None


class OverviewHandler(ConsoleHandler):
    """``/console``: every task's versions and routes, queues now, the last hour's figures."""

    async def get(self) -> None:
        """The overview."""
        tasks = await self.blocking(self._tasks)
        queues = await self.blocking(self.console.figures.queues)
        figures = await self.blocking(self.console.figures.per_version, window=WINDOWS["1h"])
        recent = await self.blocking(self.console.bulk.recent, 5)
        self.render(
            "overview.html", tasks=tasks, queues=queues, figures=figures, recent=recent, page_title=""
        )

    def _tasks(self) -> list[TaskOverview]:
        registry = self.console.services.registry
        rows = []
        for name in registry.names():
            if registry.is_internal(name):
                continue
            installed = [spec.version for spec in registry.versions(name)]
            try:
                versions = self.console.releases.status(name)
            except TornadoError as exc:  # one task's trouble does not hide the others
                rows.append(TaskOverview(task=name, versions=[], installed=installed, problem=str(exc)))
                continue
            rows.append(TaskOverview(task=name, versions=versions, installed=installed))
        return rows


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
