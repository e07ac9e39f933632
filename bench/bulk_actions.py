"""Bench: console bulk actions over 10,000 and 100,000 matching jobs: their time, and flat Python memory.

For each N, N rows of a task of their own are written with one INSERT ... SELECT generate_series:
``queued`` jobs for a cancel; ``dead`` jobs with their letters in their version's DLQ (the PostgreSQL
queue) for a redrive. ``BulkActions.start(action, task=...)`` then runs to its end in the background
thread (batches of 500, progress written with each). Each runs twice: once timed, once under
``tracemalloc`` for the peak of Python memory (tracemalloc slows Python down, so it is not timed).

Baselines, same N, same database:

- **one statement**: the same change as one SQL statement (no batches, no progress, no audit): the
  database's own cost, which the batched action pays plus a few round trips and one commit per batch;
- **ids in memory**: the peak Python memory of only loading the matching ids into a list (what a
  page-driven or naive bulk action would hold): it grows with N, where the action's does not.

    .venv/bin/python -m bench.bulk_actions [--sizes 10000 100000] [--batch 500]
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from bench._common import BenchStack, bench_parser, log, pg_cursor, print_grid, stack_from_args, unique
from tornado_core.adapters.postgres import PostgresPool, PostgresQueue
from tornado_core.adapters.postgres.audit import PostgresAuditLog
from tornado_core.adapters.postgres.bulk_actions import PostgresBulkActions
from tornado_core.adapters.postgres.job_search import PostgresJobSearch
from tornado_core.console.bulk import BulkAction, BulkActionKind, BulkActions, BulkOptions
from tornado_core.console.dead_letters import DeadLetterRoutes
from tornado_core.console.filters import JobFilter
from tornado_core.ports.queue import QueueSpec

_INSERT = """
INSERT INTO tornado_jobs (job_id, tenant, task, version, status, created_at, updated_at)
SELECT %(task)s || '-' || lpad(g::text, 8, '0'), 'bench', %(task)s, '1.0.0', %(status)s,
       clock_timestamp() - interval '1 minute', clock_timestamp()
FROM generate_series(1, %(count)s) AS g
"""

# Each dead job's letter in its version's DLQ, as the PostgreSQL queue's receive leaves it.
_LETTERS = """
INSERT INTO tornado_messages (queue, body, visible_at)
SELECT %(dlq)s, json_build_object('job_id', job_id, 'task', task, 'version', version, 'tenant', tenant,
                                  'payload', json_build_object('n', job_id), 'schema', 1)::text,
       clock_timestamp()
FROM tornado_jobs WHERE task = %(task)s
"""


@dataclass(frozen=True)
class Measure:
    """One run of the action: seconds, peak Python memory, batches."""

    seconds: float
    peak_mb: float
    action: BulkAction


def insert(dsn: str, task: str, count: int, status: str = "queued", dlq: str | None = None) -> None:
    """``count`` jobs of ``task`` in ``status``; with ``dlq``, each one's letter in it."""
    with pg_cursor(dsn) as cur:
        cur.execute(_INSERT, {"task": task, "count": count, "status": status})
        if dlq is not None:
            cur.execute(_LETTERS, {"task": task, "dlq": dlq})


def delete(dsn: str, tasks: Sequence[str]) -> None:
    with pg_cursor(dsn) as cur:
        cur.execute("DELETE FROM tornado_jobs WHERE task = ANY(%s)", (list(tasks),))


@contextmanager
def traced(on: bool) -> Iterator[Callable[[], float]]:
    """Peak MB of Python memory allocated within the block (0 when not traced)."""
    if not on:
        yield lambda: 0.0
        return
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    peak = [0.0]
    try:
        yield lambda: peak[0]
    finally:
        peak[0] = (tracemalloc.get_traced_memory()[1] - base) / 1_048_576
        tracemalloc.stop()


def bulk_run(
    pool: PostgresPool, dsn: str, kind: BulkActionKind, count: int, batch: int, *, trace: bool
) -> Measure:
    """A cancel of ``count`` queued jobs, or a redrive of ``count`` dead ones from their DLQ."""
    task = unique("bulk")
    queue = PostgresQueue(pool)
    routes = DeadLetterRoutes(unique("q"), lambda task: None)
    source, dlq = routes.queues(task, "1.0.0")
    if kind is BulkActionKind.CANCEL:
        insert(dsn, task, count)
    else:
        queue.ensure_queue(
            QueueSpec(name=source, dead_letter_name=dlq, max_receive_count=3, visibility_timeout=30)
        )
        insert(dsn, task, count, "dead", dlq)
    bulk = BulkActions(
        store=PostgresBulkActions(pool), search=PostgresJobSearch(pool), queue=queue,
        audit=PostgresAuditLog(pool), routes=routes, letters_in_store=True,
        options=BulkOptions(batch_size=batch),
    )  # fmt: skip
    try:
        with traced(trace) as peak:
            began = time.monotonic()
            started = bulk.start(kind, JobFilter(task=task), actor="bench")
            while (action := bulk.get(started.id)) is not None and action.status == "running":
                time.sleep(0.05)
            seconds = time.monotonic() - began
        assert action is not None and action.done == count, action
        return Measure(seconds, peak(), action)
    finally:
        bulk.close()
        queue.delete_queue(source)
        queue.delete_queue(dlq)
        queue.close()
        delete(dsn, [task])


def one_statement(dsn: str, kind: BulkActionKind, count: int) -> float:
    """Seconds of the same change as one SQL statement (the database's own cost)."""
    task = unique("one")
    dlq = f"{task}-dlq"
    insert(dsn, task, count, "queued" if kind is BulkActionKind.CANCEL else "dead", dlq)
    try:
        with pg_cursor(dsn) as cur:
            began = time.monotonic()
            if kind is BulkActionKind.CANCEL:
                cur.execute(
                    "UPDATE tornado_jobs SET status = 'cancelled', finished_at = clock_timestamp(),"
                    " cancel_requested_at = clock_timestamp(), updated_at = clock_timestamp()"
                    " WHERE task = %s AND status IN ('scheduled', 'queued', 'retrying')",
                    (task,),
                )
            else:
                cur.execute(
                    "UPDATE tornado_messages SET queue = %s, visible_at = clock_timestamp() WHERE queue = %s;"
                    " UPDATE tornado_jobs SET status = 'queued', finished_at = NULL WHERE task = %s",
                    (task, dlq, task),
                )
            return time.monotonic() - began
    finally:
        with pg_cursor(dsn) as cur:
            cur.execute("DELETE FROM tornado_messages WHERE queue IN (%s, %s)", (task, dlq))
        delete(dsn, [task])


def ids_in_memory(dsn: str, count: int) -> float:
    task = unique("ids")
    insert(dsn, task, count)
    try:
        with pg_cursor(dsn) as cur, traced(True) as peak:
            cur.execute("SELECT job_id FROM tornado_jobs WHERE task = %s ORDER BY job_id", (task,))
            ids = [row[0] for row in cur.fetchall()]
            assert len(ids) == count
        return peak()
    finally:
        delete(dsn, [task])


def _row(count: int, timed: Measure, memory: Measure, floor: float, naive: float) -> tuple[str, ...]:
    return (
        f"{count:,}", f"{timed.seconds:.1f} s", f"{count / timed.seconds:,.0f}", f"{memory.peak_mb:.2f} MB",
        f"{floor:.1f} s", f"{timed.seconds / floor:.1f}x", f"{naive:.2f} MB",
    )  # fmt: skip


def run(
    stack: BenchStack | None = None, *, sizes: Sequence[int] = (10_000, 100_000), batch: int = 500
) -> str:
    """Measure each size, print the table."""
    rows = []
    with stack_from_args(stack) as bench_stack:
        dsn = bench_stack.info.database_url
        pool = PostgresPool(dsn, min_size=0, max_size=6)
        try:
            for kind in (BulkActionKind.CANCEL, BulkActionKind.REDRIVE):
                for count in sizes:
                    log(f"bulk_actions: bulk {kind} of {count:,} jobs")
                    timed = bulk_run(pool, dsn, kind, count, batch, trace=False)
                    memory = bulk_run(pool, dsn, kind, count, batch, trace=True)
                    floor = one_statement(dsn, kind, count)
                    rows.append((str(kind), *_row(count, timed, memory, floor, ids_in_memory(dsn, count))))
        finally:
            pool.close()
    notes = [
        f"PostgreSQL job store and queue of the local stack; batches of {batch}, each one transaction: a "
        "cancel locks the next jobs by job-id keyset; a redrive reads the next letters of the DLQ in index "
        "order and finds their jobs by primary key; the progress is written with each; two audit entries",
        "time: from start() to the action read back as ended (polled every 50 ms)",
        "peak Python memory: tracemalloc over the whole process during the action (a separate, untimed run)",
        "one statement: the same change as one SQL statement, no batches (cancel: one UPDATE of the jobs; "
        "redrive: one UPDATE of the letters and one of the jobs)",
        "ids in memory: tracemalloc peak of fetching the matching ids into a list (the baseline of memory)",
    ]
    header = (
        "action",
        "jobs",
        "time",
        "jobs/s",
        "peak Python memory",
        "one statement",
        "vs it",
        "ids in memory",
    )
    return print_grid("Bulk actions: cancel and redrive", header, rows, notes)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="numbers of matching jobs")
    parser.add_argument("--batch", type=int, default=None, help="jobs per batch")
    run(**{k: v for k, v in vars(parser.parse_args()).items() if v is not None})


if __name__ == "__main__":
    main()
