"""Bench 3: submit-to-done latency at a steady rate over HTTP (p50 / p99).

For each queue backend, in the same run:

* **Tornado**: an open-loop generator (Python asyncio, keep-alive connections;
  a request is sent at each tick whatever the previous answers did) posts
  ``demo.echo`` jobs to the API (one process) at a fixed rate; one worker
  process (``--concurrency 16 --poll-wait 1``) runs them. Latency is measured
  twice:

  - *job store*: ``finished_at - created_at`` of every job (``created_at`` is
    the API's clock when it accepted the job, ``finished_at`` the database's
    when the worker recorded success; same machine, same clock);
  - *client*: from just before the request is written to the moment an
    observer saw the job ``succeeded`` in the job store (it polls the jobs
    still pending by primary key every 10 ms, so it adds 0-10 ms).

  The HTTP answer time (send to 202) is reported too.
* **Baseline**: the same rate through the bare queue adapter: one thread sends
  each message when due (whatever is due at once goes in one ``send_batch``, as
  the API's batcher does), one thread receives (10, long poll 1 s) and deletes;
  latency = delete done - the message's due time. It is the floor the queue
  itself sets (NOTIFY wake-up on PostgreSQL, moto's long poll on SQS).

PostgreSQL runs at 200 jobs/s for 20 s. moto cannot sustain that (its calls
slow down as the queue grows), so SQS runs at 20 jobs/s for 10 s.

    .venv/bin/python -m bench.latency [--rate 200] [--seconds 20] [--sqs-rate 20] [--sqs-seconds 10]
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench._common import (
    BACKENDS,
    ECHO,
    ECHO_BODY,
    BenchStack,
    Row,
    Scope,
    api_server,
    backend_label,
    bench_args,
    bench_parser,
    log,
    percentile,
    pg_cursor,
    print_table,
    ratio,
    rows_per_backend,
    scope,
    warm_up,
)
from bench._loadgen import HttpConnection, post_request
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.ports.queue import OutgoingMessage, QueuePort

WORKER_CONCURRENCY = 16
MAX_CONNECTIONS = 64
POLL_EVERY = 0.010


@dataclass
class Observed:
    """What the open-loop run saw."""

    rate: float
    seconds: float
    sent: int = 0
    accepted: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    max_lateness_ms: float = 0.0
    answer_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)
    store_ms: list[float] = field(default_factory=list)
    completed_rate: float = 0.0
    unfinished: int = 0


class Observer(threading.Thread):
    """Polls the job store for pending jobs by id; records when each was seen succeeded."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self._dsn = dsn
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}
        self.seen: dict[str, float] = {}  # job id -> client latency seconds
        self._stop_event = threading.Event()

    def expect(self, job_id: str, sent_at: float) -> None:
        with self._lock:
            self._pending[job_id] = sent_at

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        with pg_cursor(self._dsn) as cur:
            # By primary key only: the table grows during the run faster than its statistics, and a
            # planner that still thinks it small reads it whole (or scans the status index) at every
            # poll, taking from the machine's two cores what the API, worker and database need.
            cur.execute("SET enable_seqscan = off")
            while not self._stop_event.wait(POLL_EVERY):
                with self._lock:
                    ids = list(self._pending)
                if not ids:
                    continue
                cur.execute("SELECT job_id, status FROM tornado_jobs WHERE job_id = ANY(%s)", (ids,))
                now = time.perf_counter()
                with self._lock:
                    for job_id, status in cur.fetchall():
                        if status != "succeeded":
                            continue
                        sent_at = self._pending.pop(job_id, None)
                        if sent_at is not None:
                            self.seen[job_id] = now - sent_at


async def _open_loop(
    url: str, token: str, rate: float, seconds: float, observer: Observer, out: Observed
) -> None:
    raw = post_request(url + "/v1/jobs", ECHO_BODY, token)
    host, port = url.removeprefix("http://").split(":")
    idle: list[HttpConnection] = []
    opened = 0
    total = int(rate * seconds)
    tasks: set[asyncio.Task[None]] = set()

    async def one(conn: HttpConnection) -> None:
        sent_at = time.perf_counter()
        try:
            status, body = await conn.request(raw)
        except OSError:
            out.errors += 1
            conn.close()
            return
        finally:
            idle.append(conn)
        out.answer_ms.append((time.perf_counter() - sent_at) * 1000)
        out.statuses[status] = out.statuses.get(status, 0) + 1
        if status == 202:
            out.accepted += 1
            observer.expect(json.loads(body)["id"], sent_at)

    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        out.max_lateness_ms = max(out.max_lateness_ms, (time.perf_counter() - due) * 1000)
        while not idle and opened >= MAX_CONNECTIONS:
            await asyncio.sleep(0.001)  # every connection busy: the run falls behind (reported as lateness)
        if idle:
            conn = idle.pop()
        else:
            conn = HttpConnection(host, int(port))
            opened += 1
        out.sent += 1
        task = asyncio.get_running_loop().create_task(one(conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()


def run_tornado(stack: BenchStack, backend: str, rate: float, seconds: float) -> Observed:
    """API + one worker at a steady ``rate`` for ``seconds``; latencies from both ends."""
    out = Observed(rate=rate, seconds=seconds)
    with scope(stack, backend, "lat") as scoped, api_server(stack, backend, scoped.prefix) as server:
        cluster = LocalCluster(stack.env(backend, scoped.prefix), stack.log_dir / scoped.prefix)
        try:
            cluster.start_worker(ECHO, concurrency=WORKER_CONCURRENCY, extra=["--poll-wait", "1"])
            warm_up(server.url, scoped.token)
            time.sleep(1.0)
            _observe(server.url, scoped, out)
        finally:
            cluster.stop_all(grace=15)
    out.answer_ms.sort()
    return out


def _observe(url: str, scoped: Scope, out: Observed) -> None:
    """The open-loop run at ``out.rate``, then the latencies the observer and the job store saw."""
    observer = Observer(scoped.dsn)
    observer.start()
    first_id = _newest_id(scoped.dsn, scoped.tenant)
    # The generator's own full collections walked every module this process imported (100 ms here):
    # a pause in the schedule, then a burst of overdue requests. Startup's objects are left out.
    gc.collect()
    gc.freeze()
    try:
        asyncio.run(_open_loop(url, scoped.token, out.rate, out.seconds, observer, out))
    finally:
        gc.unfreeze()
    deadline = time.monotonic() + 60
    while observer.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    observer.stop()
    observer.join()
    out.unfinished = observer.pending()
    out.client_ms = sorted(v * 1000 for v in observer.seen.values())
    out.store_ms, out.completed_rate = _store_latencies(scoped.dsn, scoped.tenant, first_id)


def _newest_id(dsn: str, tenant: str) -> str:
    with pg_cursor(dsn) as cur:
        cur.execute("SELECT coalesce(max(job_id), '') FROM tornado_jobs WHERE tenant = %s", (tenant,))
        row = cur.fetchone()
    return str(row[0]) if row else ""


def _store_latencies(dsn: str, tenant: str, after_id: str) -> tuple[list[float], float]:
    """``finished_at - created_at`` (ms) of the tenant's succeeded jobs issued after the warm-up,
    and the rate they were completed at (count / (last finished - first created))."""
    with pg_cursor(dsn) as cur:
        cur.execute(
            "SELECT extract(epoch FROM finished_at - created_at) * 1000,"
            " extract(epoch FROM max(finished_at) OVER () - min(created_at) OVER ())"
            " FROM tornado_jobs WHERE tenant = %s AND job_id > %s AND status = 'succeeded'",
            (tenant, after_id),
        )
        rows = cur.fetchall()
    span = float(rows[0][1]) if rows else 0.0
    return sorted(float(r[0]) for r in rows), (len(rows) / span if span > 0 else 0.0)


@dataclass
class RawRun:
    sent: int
    seconds: float
    latencies_ms: list[float]
    max_lateness_ms: float


def run_raw(stack: BenchStack, backend: str, rate: float, seconds: float) -> RawRun:
    """Bare adapter at the same rate: send one message per tick; receive(10) + delete in another thread."""
    total = int(rate * seconds)
    with scope(stack, backend, "lraw") as scoped:
        queue, name = scoped.services.queue, scoped.spec.name
        queue.ensure_queue(scoped.spec)
        latencies: list[float] = []
        done = threading.Event()

        def consume() -> None:
            got = 0
            while got < total and not done.is_set():
                messages = queue.receive(name, max_messages=10, wait_seconds=1, visibility_timeout=60)
                if messages:
                    queue.delete(name, [m.receipt for m in messages])
                    now = time.time()
                    latencies.extend((now - float(m.body)) * 1000 for m in messages)
                    got += len(messages)

        consumer = threading.Thread(target=consume, daemon=True)
        consumer.start()
        time.sleep(0.5)  # the consumer is long-polling
        lateness = _send_at_rate(queue, name, rate, total)
        consumer.join(timeout=60)
        done.set()
    return RawRun(total, seconds, sorted(latencies), lateness * 1000)


def _send_at_rate(queue: QueuePort, name: str, rate: float, total: int) -> float:
    """Send ``total`` messages at ``rate``, each carrying its due time; returns the max lateness (s).

    Message i is due at start + i / rate and carries that (wall-clock) time; whatever
    is due when the sender comes round goes in one send_batch, as the API's batcher
    does, so a slow commit delays messages (measured) instead of the schedule.
    """
    start_wall, start = time.time(), time.perf_counter()
    sent, lateness = 0, 0.0
    while sent < total:
        due_now = min(total, int((time.perf_counter() - start) * rate) + 1)
        if due_now <= sent:
            time.sleep(max(0.0, (start + sent / rate) - time.perf_counter()))
            continue
        batch = [OutgoingMessage(repr(start_wall + i / rate)) for i in range(sent, due_now)]
        batch = batch[: queue.max_send_batch]
        lateness = max(lateness, time.perf_counter() - (start + sent / rate))
        errors = queue.send_batch(name, batch)
        assert all(e is None for e in errors), errors
        sent += len(batch)
    return lateness


def _rows(stack: BenchStack, backend: str, rate: float, seconds: float) -> list[Row]:
    label = backend_label(backend)
    log(f"latency: {backend} bare adapter at {rate:g}/s for {min(seconds, 10):g}s")
    raw = run_raw(stack, backend, rate, min(seconds, 10))
    log(f"latency: {backend} API + worker at {rate:g}/s for {seconds:g}s")
    run = run_tornado(stack, backend, rate, seconds)
    rows = _percentile_rows(label, run, raw, 50, _run_note(run))
    rows += _percentile_rows(label, run, raw, 99, _raw_note(raw))
    rows.append(
        Row(
            label,
            "HTTP answer p50 / p99 (send to 202)",
            f"{percentile(run.answer_ms, 50):,.0f} / {percentile(run.answer_ms, 99):,.0f} ms",
            note="202 comes after the queue stored the message",
        )
    )
    return rows


def _run_note(run: Observed) -> str:
    saturated = run.completed_rate < 0.95 * run.rate
    return (
        f"{run.rate:g} jobs/s for {run.seconds:g}s: sent {run.sent}, 202 {run.accepted}, "
        f"statuses {run.statuses}, socket errors {run.errors}, unfinished {run.unfinished}; "
        f"generator max lateness {run.max_lateness_ms:.0f} ms; 1 API process, 1 worker "
        f"(concurrency {WORKER_CONCURRENCY}); completed at {run.completed_rate:.0f} jobs/s"
        + (" (below the offered rate: the system was saturated, latency is queueing)" if saturated else "")
    )


def _raw_note(raw: RawRun) -> str:
    return (
        f"baseline: bare adapter, send what is due + receive(10)+delete, {raw.sent} msgs "
        f"in {raw.seconds:g}s, "
        f"got {len(raw.latencies_ms)}, sender max lateness {raw.max_lateness_ms:.0f} ms"
    )


def _percentile_rows(label: str, run: Observed, raw: RawRun, q: int, note: str) -> list[Row]:
    """Tornado's p``q`` from the job store and from the client against the bare adapter's."""
    base = percentile(raw.latencies_ms, q)
    store, client = percentile(run.store_ms, q), percentile(run.client_ms, q)
    return [
        Row(
            label,
            f"submit-to-done p{q}, job store (finished_at - created_at)",
            f"{store:,.0f} ms",
            f"{base:,.0f} ms",
            ratio(store, base),
            "-",
            f"{len(run.store_ms)} jobs; {note}",
        ),
        Row(
            label,
            f"submit-to-done p{q}, client (send to seen succeeded)",
            f"{client:,.0f} ms",
            f"{base:,.0f} ms",
            ratio(client, base),
            "-",
            f"{len(run.client_ms)} jobs; observer polls every {POLL_EVERY * 1000:.0f} ms",
        ),
    ]


def run(
    stack: BenchStack | None = None,
    *,
    backends: Sequence[str] = BACKENDS,
    rate: float = 200.0,
    seconds: float = 20.0,
    sqs_rate: float = 20.0,
    sqs_seconds: float = 10.0,
) -> str:
    """Run bench 3 and print its table; returns the table's text."""
    rows = rows_per_backend(
        stack,
        backends,
        lambda bench_stack, backend: (
            _rows(bench_stack, "postgres", rate, seconds)
            if backend == "postgres"
            else _rows(bench_stack, "sqs", sqs_rate, sqs_seconds)
        ),
    )
    notes = [
        "open loop: requests leave at fixed ticks whatever the answers do (Python asyncio, keep-alive "
        f"connections, at most {MAX_CONNECTIONS}); ratio = tornado / bare adapter "
        "(lower is better; no target)",
        f"postgres at {rate:g}/s for {seconds:g}s; sqs (moto) at {sqs_rate:g}/s for {sqs_seconds:g}s "
        "only: moto's "
        "calls slow down as its queue grows and cannot keep 200/s",
        "worker runs `tornado worker --task demo.echo --concurrency 16 --poll-wait 1` "
        "(the default concurrency 4 "
        "does not sustain 200 jobs/s on PostgreSQL here: see bench 2)",
    ]
    return print_table("Bench 3: submit-to-done latency at a steady rate", rows, notes)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rate", type=float, default=200.0, help="jobs/s on postgres")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds on postgres")
    parser.add_argument("--sqs-rate", type=float, default=20.0, help="jobs/s on sqs")
    parser.add_argument("--sqs-seconds", type=float, default=10.0, help="seconds on sqs")
    run(**bench_args(parser))


if __name__ == "__main__":
    main()
