"""The console's figures against a real PostgreSQL: counts, rates, percentiles, series and queues now."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from tornado_core.adapters.postgres import PostgresPool, PostgresQueue
from tornado_core.adapters.postgres.insights import PostgresJobFigures
from tornado_core.adapters.postgres.queue_samples import PostgresQueueSamples
from tornado_core.adapters.postgres.releases import PostgresReleaseStore
from tornado_core.console.figures import ConsoleFigures, Figures
from tornado_core.errors import QueueUnavailable
from tornado_core.naming import dead_letter_name, queue_name, queue_spec
from tornado_core.ports.queue import OutgoingMessage, QueueDepth, QueuePort
from tornado_core.ports.releases import ReleaseState, VersionRelease
from tornado_core.ports.routes import RouteTable
from tornado_core.registry import TaskRegistry
from tornado_core.task import TaskSpec, task
from tornado_core.toolchain.testing import memory_services

pytestmark = pytest.mark.integration

#: The figures' "now": a whole hour, so that five-minute buckets start on it.
NOW = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class Payload(BaseModel):
    n: int = 0


def spec(name: str, version: str) -> TaskSpec:
    """A task version with a handler that is never run."""
    return task(name=name, payload=Payload, version=version)(lambda ctx, payload: None)


@dataclasses.dataclass
class Db:
    """A fresh database with the console's stores on it and a clock that stands still at ``now``."""

    pool: PostgresPool
    queue: QueuePort
    registry: TaskRegistry
    now: datetime = NOW
    ids: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    def figures(self, pool: PostgresPool | None = None) -> ConsoleFigures:
        """Console figures on ``pool`` (another process's, say) or this database's own."""
        pool = pool or self.pool
        services = dataclasses.replace(memory_services(self.registry), queue=self.queue)
        return ConsoleFigures(
            services, PostgresJobFigures(pool), PostgresQueueSamples(pool), clock=lambda: self.now.timestamp()
        )

    def job(
        self,
        task: str,
        version: str,
        status: str,
        *,
        tenant: str = "acme",
        finished: datetime | None = None,
        run: float | None = None,
        wait: float | None = None,
        created: datetime | None = None,
    ) -> None:
        """A job row: it ran ``run`` seconds up to ``finished``, started ``wait`` seconds after submission."""
        started = finished - timedelta(seconds=run) if finished is not None and run is not None else None
        if created is None:
            created = (started or finished or self.now) - timedelta(seconds=wait or 0)
        with self.pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO tornado_jobs (job_id, tenant, task, version, status, created_at, started_at,"
                " finished_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    f"job-{next(self.ids)}",
                    tenant,
                    task,
                    version,
                    status,
                    created,
                    started,
                    finished,
                    self.now,
                ),
            )


@contextlib.contextmanager
def console_db(url: str, *versions: str) -> Iterator[Db]:
    """The database at ``url`` with the PostgreSQL queue, and ``acme.emit`` installed at ``versions``."""
    pool = PostgresPool(url, min_size=0, max_size=8)
    queue = PostgresQueue(pool)
    try:
        yield Db(pool=pool, queue=queue, registry=TaskRegistry([spec("acme.emit", v) for v in versions]))
    finally:
        queue.close()
        pool.close()


@pytest.fixture
def db(fresh_database_url: str) -> Iterator[Db]:
    with console_db(fresh_database_url, "1.0.0") as opened:
        yield opened


def numbers(row: Figures) -> tuple[object, ...]:
    return (
        row.finished, row.succeeded, row.failed, row.cancelled, row.per_minute, row.error_rate,
        row.wait_p50, row.wait_p95, row.wait_p99, row.run_p50, row.run_p95, row.run_p99,
    )  # fmt: skip


def test_figures_per_version_count_the_window_and_take_percentiles_of_waits_and_runs(db: Db) -> None:
    for n in range(1, 5):  # waits 1..4 s, runs 10..40 s
        db.job("acme.emit", "1.0.0", "succeeded", finished=NOW - n * MINUTE, run=10 * n, wait=n)
    db.job("acme.emit", "1.0.0", "dead", finished=NOW - 20 * MINUTE, run=50, wait=5)
    db.job("acme.emit", "1.0.0", "failed", finished=NOW - 59 * MINUTE, run=60, wait=6)
    db.job("acme.emit", "1.0.0", "cancelled", finished=NOW - 5 * MINUTE, wait=100)  # counted apart
    db.job("acme.emit", "1.0.0", "succeeded", finished=NOW - 61 * MINUTE, run=1000, wait=1000)  # before
    db.job("acme.emit", "1.0.0", "running", run=None, wait=3)  # not finished
    db.job("acme.emit", "2.0.0", "succeeded", finished=NOW - 30 * MINUTE, run=1, wait=0.5)
    db.job("acme.sign", "1.0.0", "dead", finished=NOW - 30 * MINUTE)  # never started

    rows = db.figures().per_version(window=timedelta(hours=1))

    assert [(r.task, r.version, r.tenant) for r in rows] == [
        ("acme.emit", "1.0.0", None), ("acme.emit", "2.0.0", None), ("acme.sign", "1.0.0", None),
    ]  # fmt: skip
    # percentile_cont interpolates: p95 of 1..6 is 5 + 0.75 * (6 - 5).
    assert numbers(rows[0]) == pytest.approx((6, 4, 2, 1, 0.1, 2 / 6, 3.5, 5.75, 5.95, 35, 57.5, 59.5))
    assert numbers(rows[1]) == pytest.approx((1, 1, 0, 0, 1 / 60, 0, 0.5, 0.5, 0.5, 1, 1, 1))
    assert numbers(rows[2]) == pytest.approx((1, 0, 1, 0, 1 / 60, 1, None, None, None, None, None, None))


def test_a_shorter_window_leaves_older_jobs_out_and_an_empty_one_has_no_rows(db: Db) -> None:
    db.job("acme.emit", "1.0.0", "succeeded", finished=NOW - 2 * MINUTE, run=4, wait=2)
    db.job("acme.emit", "1.0.0", "dead", finished=NOW - 20 * MINUTE, run=8, wait=4)
    (row,) = db.figures().per_version(window=timedelta(minutes=15))
    assert numbers(row) == pytest.approx((1, 1, 0, 0, 1 / 15, 0, 2, 2, 2, 4, 4, 4))
    db.now = NOW + timedelta(hours=2)
    assert db.figures().per_version(window=timedelta(hours=1)) == []


def test_figures_per_tenant_put_the_busiest_first_within_the_limit(db: Db) -> None:
    for tenant, count in (("padaria", 1), ("mercado", 3), ("oficina", 2)):
        for n in range(count):
            db.job("acme.emit", f"1.{n}.0", "succeeded", tenant=tenant, finished=NOW - MINUTE, run=2, wait=1)
    db.job("acme.emit", "1.0.0", "failed", tenant="padaria", finished=NOW - MINUTE, run=2, wait=1)
    db.job("acme.sign", "1.0.0", "succeeded", tenant="mercado", finished=NOW - MINUTE, run=2, wait=1)

    rows = db.figures().per_tenant(window=timedelta(hours=1), task="acme.emit", limit=2)
    assert [(r.task, r.version, r.tenant, r.finished) for r in rows] == [
        ("acme.emit", None, "mercado", 3), ("acme.emit", None, "oficina", 2),
    ]  # fmt: skip
    every_task = db.figures().per_tenant(window=timedelta(hours=1))
    assert [(r.task, r.tenant, r.succeeded, r.failed) for r in every_task] == [
        ("acme.emit", "mercado", 3, 0), ("acme.emit", "oficina", 2, 0), ("acme.emit", "padaria", 1, 1),
        ("acme.sign", "mercado", 1, 0),
    ]  # fmt: skip
    assert every_task[2].error_rate == pytest.approx(0.5)


def test_throughput_series_has_every_bucket_of_the_window_oldest_first(db: Db) -> None:
    db.job("acme.emit", "1.0.0", "succeeded", finished=NOW - 29 * MINUTE, run=1)  # 11:31
    db.job("acme.emit", "1.0.0", "succeeded", finished=NOW - 26 * MINUTE, run=1)  # 11:34
    db.job("acme.emit", "1.0.0", "dead", finished=NOW - 25 * MINUTE, run=1)  # 11:35
    db.job("acme.emit", "2.0.0", "failed", finished=NOW - 25 * MINUTE, run=1)  # 11:35, another version
    db.job("acme.emit", "1.0.0", "cancelled", finished=NOW - 25 * MINUTE)  # not a success nor a failure
    db.job("acme.emit", "1.0.0", "succeeded", finished=NOW - 40 * MINUTE, run=1)  # before the window
    db.job("acme.sign", "1.0.0", "succeeded", finished=NOW - 10 * MINUTE, run=1)  # another task

    def series(version: str | None) -> list[tuple[str, int, int]]:
        buckets = db.figures().throughput_series(
            "acme.emit", version, window=timedelta(minutes=30), step=timedelta(minutes=5)
        )
        return [(start.strftime("%H:%M"), ok, bad) for start, ok, bad in buckets]

    empty = [("11:40", 0, 0), ("11:45", 0, 0), ("11:50", 0, 0), ("11:55", 0, 0), ("12:00", 0, 0)]
    assert series("1.0.0") == [("11:30", 2, 0), ("11:35", 0, 1), *empty]
    assert series(None) == [("11:30", 2, 0), ("11:35", 0, 2), *empty]
    with pytest.raises(ValueError):
        db.figures().throughput_series("acme.emit", None, step=timedelta(0))


def test_the_figure_queries_read_a_window_of_a_long_history_through_the_finished_index(db: Db) -> None:
    """A month of jobs, one every 15 minutes: an hour's figures read ``tornado_jobs_finished_idx``."""
    from tornado_core.adapters.postgres import insights

    with db.pool.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO tornado_jobs (job_id, tenant, task, version, status, created_at, started_at,"
            " finished_at, updated_at) SELECT 'old-' || i, 'acme', 'acme.emit', '1.0.0', 'succeeded',"
            " f, f, f, f FROM generate_series(1, 3000) AS i,"
            " LATERAL (SELECT %s - i * interval '15 minutes') AS t (f)",
            (NOW,),
        )
        cur.execute("ANALYZE tornado_jobs")
    since, step = NOW - timedelta(hours=1), 300.0
    window = {"since": since, "until": NOW, "minutes": 60.0, "limit": 50, "version": None, "step": step}
    slots = {"first": int(since.timestamp() // step), "last": int(NOW.timestamp() // step)}
    queries = [
        (insights._PER_VERSION, {**window, "task": None}),
        (insights._PER_TENANT, {**window, "task": "acme.emit"}),
        (insights._THROUGHPUT, {**window, **slots, "task": "acme.emit"}),
    ]
    with db.pool.connection() as conn, conn.cursor() as cur:
        for sql, params in queries:
            cur.execute("EXPLAIN " + sql, params)
            assert "tornado_jobs_finished_idx" in "\n".join(row[0] for row in cur.fetchall())


def test_queues_now_cover_registered_and_released_versions_whose_queue_exists(db: Db) -> None:
    releases = PostgresReleaseStore(db.pool)
    releases.save(
        operation="test",
        route=RouteTable(task="acme.emit", current="2.0.0", pins={"padaria": "3.0.0"}),
        releases=[
            VersionRelease(task="acme.emit", version="2.0.0", state=ReleaseState.CURRENT),
            VersionRelease(task="acme.emit", version="0.9.0", state=ReleaseState.RETIRED),
        ],
    )
    for version in ("1.0.0", "2.0.0", "0.9.0"):  # 3.0.0, pinned, has no queue; 0.9.0 is retired
        db.queue.ensure_queue(queue_spec("tornado", spec("acme.emit", version)))
    v1 = queue_name("tornado", "acme.emit", "1.0.0")
    db.queue.send_batch(v1, [OutgoingMessage("a"), OutgoingMessage("b"), OutgoingMessage("c", delay=600)])
    db.queue.receive(v1, max_messages=1, wait_seconds=0, visibility_timeout=600)
    db.queue.send_batch(dead_letter_name(v1), [OutgoingMessage("d")] * 2)
    db.job("acme.emit", "1.0.0", "queued", created=NOW - 90 * timedelta(seconds=1))
    db.job("acme.emit", "1.0.0", "queued", created=NOW - 30 * timedelta(seconds=1))
    db.job("acme.emit", "1.0.0", "running", created=NOW - 500 * timedelta(seconds=1))

    snapshots = db.figures().queues()

    assert [(s.task, s.version, s.visible, s.in_flight, s.delayed, s.dead_letters) for s in snapshots] == [
        ("acme.emit", "1.0.0", 1, 1, 1, 2),
        ("acme.emit", "2.0.0", 0, 0, 0, 0),
    ]
    assert [s.queue for s in snapshots] == [v1, queue_name("tornado", "acme.emit", "2.0.0")]
    assert [s.oldest_age for s in snapshots] == [pytest.approx(90), None]


class DownQueue:
    """A queue service that does not answer at all."""

    def depth(self, queue: str) -> QueueDepth:
        raise QueueUnavailable("connection refused")

    def ping(self) -> None:
        raise QueueUnavailable("connection refused")


def test_a_queue_service_that_does_not_answer_is_an_error_not_an_empty_list(db: Db) -> None:
    db.queue = DownQueue()  # type: ignore[assignment]  # the part of QueuePort the snapshot uses
    with pytest.raises(QueueUnavailable):
        db.figures().queues()
