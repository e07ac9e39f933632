"""Queue samples in PostgreSQL: kept across restarts, one per interval across processes, pruned."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from tests.integration.test_console_figures import Db, console_db, spec
from tornado_core.adapters.postgres import PostgresPool
from tornado_core.console.sampler import QueueSampler
from tornado_core.naming import queue_name, queue_spec
from tornado_core.ports.queue import OutgoingMessage

pytestmark = pytest.mark.integration

VERSIONS = ("1.0.0", "2.0.0")


@pytest.fixture
def db(fresh_database_url: str) -> Iterator[Db]:
    """A fresh database (the samples' table is shared by every queue) with two queues of ``acme.emit``."""
    with console_db(fresh_database_url, *VERSIONS) as opened:
        for version in VERSIONS:
            opened.queue.ensure_queue(queue_spec("tornado", spec("acme.emit", version)))
        yield opened


def sampler(db: Db, pool: PostgresPool | None = None, *, skew: float = 0.0) -> QueueSampler:
    """A sampler as an API process runs it, on its own pool if given, its clock ``skew`` seconds off."""
    figures = db.figures(pool)
    return QueueSampler(figures, figures.samples, interval=30.0, clock=lambda: db.now.timestamp() + skew)


def sample_times(db: Db, version: str = "1.0.0", window: timedelta = timedelta(days=30)) -> list[datetime]:
    return [s.at for s in db.figures().queue_series("acme.emit", version, window=window)]


def test_samples_survive_a_restart_and_are_read_back_oldest_first(db: Db, fresh_database_url: str) -> None:
    first = sampler(db)
    v1 = queue_name("tornado", "acme.emit", "1.0.0")
    start = db.now
    for sent in (1, 2, 0):
        db.queue.send_batch(v1, [OutgoingMessage("job")] * sent)
        assert first.sample_once() == 2  # both versions' queues
        db.now += timedelta(seconds=30)

    restarted = PostgresPool(fresh_database_url, min_size=0, max_size=4)
    try:
        series = db.figures(restarted).queue_series("acme.emit", "1.0.0", window=timedelta(hours=6))
        other = db.figures(restarted).queue_series("acme.emit", "2.0.0", window=timedelta(seconds=45))
    finally:
        restarted.close()
    assert [(s.at, s.visible, s.queue) for s in series] == [
        (start, 1, v1),
        (start + timedelta(seconds=30), 3, v1),
        (start + timedelta(seconds=60), 3, v1),
    ]
    assert [(s.at, s.visible) for s in other] == [(start + timedelta(seconds=60), 0)]  # the last 45 s only


def test_samplers_of_many_processes_at_once_write_one_sample_per_interval(
    db: Db, fresh_database_url: str
) -> None:
    pools = [PostgresPool(fresh_database_url, min_size=0, max_size=4) for _ in range(6)]
    # Clocks a few milliseconds apart: only the lock and the interval keep them from all writing.
    samplers = [sampler(db, pool, skew=index / 1000) for index, pool in enumerate(pools)]

    def all_at_once() -> int:
        barrier, written = threading.Barrier(len(samplers)), []

        def run(one: QueueSampler) -> None:
            barrier.wait()
            written.append(one.sample_once())

        threads = [threading.Thread(target=run, args=(one,)) for one in samplers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(written)

    try:
        assert all_at_once() == 2
        db.now += timedelta(seconds=10)
        assert all_at_once() == 0  # the newest sample is younger than the interval
        db.now += timedelta(seconds=20)
        assert all_at_once() == 2
    finally:
        for pool in pools:
            pool.close()
    assert len(sample_times(db)) == 2 and len(sample_times(db, "2.0.0")) == 2


def test_samples_older_than_the_kept_days_are_pruned(db: Db) -> None:
    one = sampler(db)
    start = db.now
    for days in (0, 1, 8):
        db.now = start + timedelta(days=days)
        assert one.sample_once() == 2
    assert sample_times(db) == [start + timedelta(days=1), start + timedelta(days=8)]


def test_the_sampling_thread_starts_only_when_asked_and_stops(db: Db) -> None:
    background = sampler(db)
    assert not background.running and sample_times(db) == []
    background.start()
    try:
        deadline = time.monotonic() + 10.0
        while not sample_times(db):
            assert time.monotonic() < deadline, "the sampler thread recorded nothing within 10 s"
            time.sleep(0.02)
    finally:
        background.stop()
    assert not background.running
    assert sample_times(db) == [db.now]
