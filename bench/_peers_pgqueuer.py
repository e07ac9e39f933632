"""pgqueuer (asyncpg driver) as a peer of ``bench.peers``; run as a module, its worker.

    python -m bench._peers_pgqueuer --dsn postgresql://... --concurrency 4 --ready-file /tmp/x.ready

The worker is a ``QueueManager`` with one entrypoint that does nothing, on one
asyncpg connection (``AsyncpgDriver``, as pgqueuer's documentation sets it up),
run with uvloop as ``pgq run`` does. "Concurrency c" maps to the entrypoint's
``concurrency_limit=c`` (at most c jobs picked at once, enforced in SQL) and
``batch_size=c`` (jobs per dequeue; completions are logged in batches of up to c).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries

from bench._common import Stopwatch, pg_count, pg_cursor
from bench._peers_base import message

ENTRYPOINT = "noop"
_TABLES = "pgqueuer, pgqueuer_log, pgqueuer_statistics"


def _payload(index: int) -> bytes:
    return json.dumps({"message": message(index)}).encode()


class PgQueuerPeer:
    """pgqueuer driven through :class:`bench._peers_base.Peer`."""

    name = "pgqueuer"

    def version(self) -> str:
        """Installed version."""
        return metadata.version("pgqueuer")

    def concurrency_note(self, concurrency: int) -> str:
        """What ``concurrency`` is mapped to."""
        return f"entrypoint concurrency_limit={concurrency}, batch_size={concurrency}, 1 asyncpg connection"

    def install(self, dsn: str) -> None:
        """``Queries.install()`` (what ``pgq install`` runs): durable (logged) tables."""
        asyncio.run(self._with_queries(dsn, lambda queries: queries.install()))

    def reset(self, dsn: str) -> None:
        """Truncate the queue, its log and statistics."""
        with pg_cursor(dsn) as cur:
            cur.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY")

    def prefill(self, dsn: str, count: int) -> None:
        """``Queries.enqueue`` with lists, 1,000 jobs per call."""

        async def fill(queries: Queries) -> None:
            for start in range(0, count, 1000):
                indexes = range(start, min(count, start + 1000))
                await queries.enqueue(
                    [ENTRYPOINT] * len(indexes), [_payload(i) for i in indexes], [0] * len(indexes)
                )

        asyncio.run(self._with_queries(dsn, fill))

    def done(self, dsn: str) -> int:
        """Jobs logged ``successful`` (the worker deletes the job and logs it in one statement)."""
        return pg_count(dsn, "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'")

    def statuses(self, dsn: str) -> dict[str, int]:
        """Rows left in the queue, and ``pgqueuer_log`` rows by status."""
        with pg_cursor(dsn) as cur:
            cur.execute("SELECT 'queue rows left', count(*) FROM pgqueuer")
            found = dict(cur.fetchall())
            cur.execute("SELECT 'log ' || status, count(*) FROM pgqueuer_log GROUP BY status ORDER BY 1")
            found.update(cur.fetchall())
        return {str(k): int(v) for k, v in found.items()}

    def span(self, dsn: str) -> tuple[datetime | None, datetime | None]:
        """First ``picked`` and last ``successful`` rows of ``pgqueuer_log`` (``created``: now())."""
        with pg_cursor(dsn) as cur:
            cur.execute(
                "SELECT min(created) FILTER (WHERE status = 'picked'), "
                "max(created) FILTER (WHERE status = 'successful') FROM pgqueuer_log"
            )
            first, last = cur.fetchone() or (None, None)
        return first, last

    def enqueue(self, dsn: str, count: int, batch: int, watch: Stopwatch) -> int:
        """``Queries.enqueue(entrypoint, payload)`` per job, or with lists of ``batch`` jobs."""

        async def run(queries: Queries) -> None:
            watch.start()
            if batch == 1:
                for i in range(count):
                    await queries.enqueue(ENTRYPOINT, _payload(i))
            else:
                for start in range(0, count, batch):
                    indexes = range(start, min(count, start + batch))
                    await queries.enqueue(
                        [ENTRYPOINT] * len(indexes), [_payload(i) for i in indexes], [0] * len(indexes)
                    )
            watch.stop()

        asyncio.run(self._with_queries(dsn, run))
        return pg_count(dsn, "SELECT count(*) FROM pgqueuer WHERE status = 'queued'")

    def enqueue_call(self, batch: int) -> str:
        """The call :meth:`enqueue` makes."""
        if batch == 1:
            return "await Queries.enqueue(entrypoint, payload) per job (asyncpg, 1 connection)"
        return f"await Queries.enqueue([entrypoint] * {batch}, payloads, priorities) (asyncpg, 1 connection)"

    def worker_module(self) -> str:
        """This module."""
        return __name__

    @staticmethod
    async def _with_queries(dsn: str, use: Callable[[Queries], Awaitable[None]]) -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await use(Queries(AsyncpgDriver(connection)))
        finally:
            await connection.close()


async def _work(dsn: str, concurrency: int, ready: Path) -> None:
    """The worker: until SIGTERM/SIGINT."""
    connection = await asyncpg.connect(dsn)
    manager = QueueManager(Queries(AsyncpgDriver(connection)))

    @manager.entrypoint(ENTRYPOINT, concurrency_limit=concurrency)
    async def noop(job: Job) -> None:
        return None

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, manager.shutdown.set)
    ready.touch()
    try:
        await manager.run(batch_size=concurrency, dequeue_timeout=timedelta(seconds=5))
    finally:
        await connection.close()


def main() -> None:
    """Command line of the worker child."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pgqueuer installs it on Linux; plain asyncio otherwise
        asyncio.run(_work(args.dsn, args.concurrency, args.ready_file))
    else:
        uvloop.run(_work(args.dsn, args.concurrency, args.ready_file))


if __name__ == "__main__":
    main()
