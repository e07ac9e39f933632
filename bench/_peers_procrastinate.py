"""procrastinate (psycopg 3 connector) as a peer of ``bench.peers``; run as a module, its worker.

    python -m bench._peers_procrastinate --dsn postgresql://... --concurrency 4 --ready-file /tmp/x.ready

The worker is ``App.run_worker_async(concurrency=c)`` (c async sub-workers, each
fetching one job at a time) with one async task that does nothing, on the
default ``PsycopgConnector`` pool; jobs are kept (``delete_jobs`` never, the default).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path

from procrastinate import App, PsycopgConnector
from procrastinate.types import JSONDict

from bench._common import Stopwatch, pg_count, pg_cursor
from bench._peers_base import message

TASK = "noop"


async def _noop(message: str) -> None:
    """The task: nothing."""
    return None


def _kwargs(start: int, stop: int) -> list[JSONDict]:
    return [{"message": message(i)} for i in range(start, stop)]


def _app(dsn: str) -> App:
    app = App(connector=PsycopgConnector(conninfo=dsn))
    app.task(name=TASK)(_noop)
    return app


async def _with_app(dsn: str, use: Callable[[App], Awaitable[None]]) -> None:
    app = _app(dsn)
    async with app.open_async():
        await use(app)


class ProcrastinatePeer:
    """procrastinate driven through :class:`bench._peers_base.Peer`."""

    name = "procrastinate"

    def version(self) -> str:
        """Installed version."""
        return metadata.version("procrastinate")

    def concurrency_note(self, concurrency: int) -> str:
        """What ``concurrency`` is mapped to."""
        return f"run_worker_async(concurrency={concurrency}), one job per fetch"

    def install(self, dsn: str) -> None:
        """``schema_manager.apply_schema_async()`` (what ``procrastinate schema --apply`` runs)."""
        asyncio.run(_with_app(dsn, lambda app: app.schema_manager.apply_schema_async()))

    def reset(self, dsn: str) -> None:
        """Truncate jobs, their events, workers and periodic defers."""
        with pg_cursor(dsn) as cur:
            cur.execute(
                "TRUNCATE procrastinate_events, procrastinate_jobs, procrastinate_workers, "
                "procrastinate_periodic_defers RESTART IDENTITY CASCADE"
            )

    def prefill(self, dsn: str, count: int) -> None:
        """``batch_defer_async``, 1,000 jobs per call."""

        async def fill(app: App) -> None:
            task = app.tasks[TASK]
            for start in range(0, count, 1000):
                await task.batch_defer_async(*_kwargs(start, min(count, start + 1000)))

        asyncio.run(_with_app(dsn, fill))

    def done(self, dsn: str) -> int:
        """Jobs with status ``succeeded``."""
        return pg_count(dsn, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")

    def statuses(self, dsn: str) -> dict[str, int]:
        """``procrastinate_jobs`` rows by status."""
        with pg_cursor(dsn) as cur:
            cur.execute("SELECT status, count(*) FROM procrastinate_jobs GROUP BY status ORDER BY 1")
            return {str(k): int(v) for k, v in cur.fetchall()}

    def span(self, dsn: str) -> tuple[datetime | None, datetime | None]:
        """First ``started`` and last ``succeeded`` event (``procrastinate_events.at``: now())."""
        with pg_cursor(dsn) as cur:
            cur.execute(
                "SELECT min(at) FILTER (WHERE type = 'started'), "
                "max(at) FILTER (WHERE type = 'succeeded') FROM procrastinate_events"
            )
            first, last = cur.fetchone() or (None, None)
        return first, last

    def enqueue(self, dsn: str, count: int, batch: int, watch: Stopwatch) -> int:
        """``defer_async`` per job, or ``batch_defer_async`` of ``batch`` jobs."""

        async def run(app: App) -> None:
            task = app.tasks[TASK]
            watch.start()
            if batch == 1:
                for i in range(count):
                    await task.defer_async(message=message(i))
            else:
                for start in range(0, count, batch):
                    await task.batch_defer_async(*_kwargs(start, min(count, start + batch)))
            watch.stop()

        asyncio.run(_with_app(dsn, run))
        return pg_count(dsn, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")

    def enqueue_call(self, batch: int) -> str:
        """The call :meth:`enqueue` makes."""
        if batch == 1:
            return "await task.defer_async(message=...) per job (psycopg 3 pool)"
        return f"await task.batch_defer_async(*{batch} kwargs) (psycopg 3 pool)"

    def worker_module(self) -> str:
        """This module."""
        return __name__


async def _work(dsn: str, concurrency: int, ready: Path) -> None:
    """The worker: until SIGTERM/SIGINT (procrastinate installs its own handlers)."""
    app = _app(dsn)
    async with app.open_async():
        ready.touch()
        await app.run_worker_async(concurrency=concurrency, name="bench", install_signal_handlers=True)


def main() -> None:
    """Command line of the worker child."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(_work(args.dsn, args.concurrency, args.ready_file))


if __name__ == "__main__":
    main()
