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

import argparse
import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench._common import (
    BACKENDS,
    ECHO,
    BenchStack,
    Row,
    api_server,
    drop_queues,
    echo_spec,
    log,
    new_tenant,
    percentile,
    print_table,
    ratio,
    stack_from_args,
    unique,
)
from bench._loadgen import HttpConnection, post_request
from tornado_core.adapters.postgres.pool import connect
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.ports.queue import OutgoingMessage

WORKER_CONCURRENCY = 16
MAX_CONNECTIONS = 64
POLL_EVERY = 0.010
BODY = json.dumps(
    {"task": ECHO, "payload": {"message": "nota fiscal 35240112345678000190550010000012341000012345"}}
)


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
        conn = connect(self._dsn, autocommit=True)
        try:
            with conn.cursor() as cur:
                while not self._stop_event.wait(POLL_EVERY):
                    with self._lock:
                        ids = list(self._pending)
                    if not ids:
                        continue
                    cur.execute(
                        "SELECT job_id FROM tornado_jobs WHERE job_id = ANY(%s) AND status = 'succeeded'",
                        (ids,),
                    )
                    now = time.perf_counter()
                    with self._lock:
                        for (job_id,) in cur.fetchall():
                            sent_at = self._pending.pop(job_id, None)
                            if sent_at is not None:
                                self.seen[job_id] = now - sent_at
        finally:
            conn.close()


async def _open_loop(
    url: str, token: str, rate: float, seconds: float, observer: Observer, out: Observed
) -> None:
    raw = post_request(url + "/v1/jobs", BODY, token)
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
    prefix = unique("lat")
    settings = stack.settings(backend, prefix)
    out = Observed(rate=rate, seconds=seconds)
    with stack.services(backend, prefix) as services:
        tenant, token = new_tenant(services, "lat")
        try:
            with api_server(stack, backend, prefix) as server:
                cluster = LocalCluster(stack.env(backend, prefix), stack.log_dir / prefix)
                try:
                    cluster.start_worker(ECHO, concurrency=WORKER_CONCURRENCY, extra=["--poll-wait", "1"])
                    _warm_up(server.url, token)
                    observer = Observer(settings.database_url)
                    observer.start()
                    first_id = _newest_id(settings.database_url, tenant)
                    asyncio.run(_open_loop(server.url, token, rate, seconds, observer, out))
                    deadline = time.monotonic() + 60
                    while observer.pending() and time.monotonic() < deadline:
                        time.sleep(0.05)
                    observer.stop()
                    observer.join()
                    out.unfinished = observer.pending()
                    out.client_ms = sorted(v * 1000 for v in observer.seen.values())
                    out.store_ms, out.completed_rate = _store_latencies(
                        settings.database_url, tenant, first_id
                    )
                finally:
                    cluster.stop_all(grace=15)
        finally:
            drop_queues(services)
    out.answer_ms.sort()
    return out


def _warm_up(url: str, token: str) -> None:
    for _ in range(3):
        request = urllib.request.Request(
            url + "/v1/jobs",
            data=BODY.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 202
    time.sleep(1.0)


def _newest_id(dsn: str, tenant: str) -> str:
    conn = connect(dsn, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(max(job_id), '') FROM tornado_jobs WHERE tenant = %s", (tenant,))
            row = cur.fetchone()
    finally:
        conn.close()
    return str(row[0]) if row else ""


def _store_latencies(dsn: str, tenant: str, after_id: str) -> tuple[list[float], float]:
    """``finished_at - created_at`` (ms) of the tenant's succeeded jobs issued after the warm-up,
    and the rate they were completed at (count / (last finished - first created))."""
    conn = connect(dsn, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT extract(epoch FROM finished_at - created_at) * 1000,"
                " extract(epoch FROM max(finished_at) OVER () - min(created_at) OVER ())"
                " FROM tornado_jobs WHERE tenant = %s AND job_id > %s AND status = 'succeeded'",
                (tenant, after_id),
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    span = float(rows[0][1]) if rows else 0.0
    return sorted(float(r[0]) for r in rows), (len(rows) / span if span > 0 else 0.0)


@dataclass
class RawRun:
    sent: int
    latencies_ms: list[float]
    max_lateness_ms: float


def run_raw(stack: BenchStack, backend: str, rate: float, seconds: float) -> RawRun:
    """Bare adapter at the same rate: send one message per tick; receive(10) + delete in another thread."""
    prefix = unique("lraw")
    total = int(rate * seconds)
    with stack.services(backend, prefix) as services:
        spec = echo_spec(services)
        queue = services.queue
        try:
            queue.ensure_queue(spec)
            latencies: list[float] = []
            done = threading.Event()
            lateness = 0.0

            def consume() -> None:
                got = 0
                while got < total and not done.is_set():
                    messages = queue.receive(
                        spec.name, max_messages=10, wait_seconds=1, visibility_timeout=60
                    )
                    if messages:
                        queue.delete(spec.name, [m.receipt for m in messages])
                        now = time.time()
                        latencies.extend((now - float(m.body)) * 1000 for m in messages)
                        got += len(messages)

            consumer = threading.Thread(target=consume, daemon=True)
            consumer.start()
            time.sleep(0.5)  # the consumer is long-polling
            # Message i is due at start + i / rate and carries that (wall-clock) time; whatever
            # is due when the sender comes round goes in one send_batch, as the API's batcher
            # does, so a slow commit delays messages (measured) instead of the schedule.
            start_wall, start = time.time(), time.perf_counter()
            sent = 0
            while sent < total:
                due_now = min(total, int((time.perf_counter() - start) * rate) + 1)
                if due_now <= sent:
                    time.sleep(max(0.0, (start + sent / rate) - time.perf_counter()))
                    continue
                batch = [OutgoingMessage(repr(start_wall + i / rate)) for i in range(sent, due_now)]
                batch = batch[: queue.max_send_batch]
                lateness = max(lateness, time.perf_counter() - (start + sent / rate))
                errors = queue.send_batch(spec.name, batch)
                assert all(e is None for e in errors), errors
                sent += len(batch)
            consumer.join(timeout=60)
            done.set()
        finally:
            drop_queues(services)
    return RawRun(total, sorted(latencies), lateness * 1000)


def _rows(stack: BenchStack, backend: str, rate: float, seconds: float) -> list[Row]:
    label = "postgres" if backend == "postgres" else "sqs (moto)"
    log(f"latency: {backend} bare adapter at {rate:g}/s for {min(seconds, 10):g}s")
    raw = run_raw(stack, backend, rate, min(seconds, 10))
    log(f"latency: {backend} API + worker at {rate:g}/s for {seconds:g}s")
    run = run_tornado(stack, backend, rate, seconds)
    raw50, raw99 = percentile(raw.latencies_ms, 50), percentile(raw.latencies_ms, 99)
    context = (
        f"{rate:g} jobs/s for {seconds:g}s: sent {run.sent}, 202 {run.accepted}, statuses {run.statuses}, "
        f"socket errors {run.errors}, unfinished {run.unfinished}; generator max lateness "
        f"{run.max_lateness_ms:.0f} ms; 1 API process, 1 worker (concurrency {WORKER_CONCURRENCY}); "
        f"completed at {run.completed_rate:.0f} jobs/s"
        + (
            " (below the offered rate: the system was saturated, latency is queueing)"
            if run.completed_rate < 0.95 * rate
            else ""
        )
    )
    base_note = (
        f"baseline: bare adapter, send what is due + receive(10)+delete, {raw.sent} msgs "
        f"in {min(seconds, 10):g}s, "
        f"got {len(raw.latencies_ms)}, sender max lateness {raw.max_lateness_ms:.0f} ms"
    )
    rows = []
    for q in (50, 99):
        base = raw50 if q == 50 else raw99
        store, client = percentile(run.store_ms, q), percentile(run.client_ms, q)
        rows.append(
            Row(
                label,
                f"submit-to-done p{q}, job store (finished_at - created_at)",
                f"{store:,.0f} ms",
                f"{base:,.0f} ms",
                ratio(store, base),
                "-",
                f"{len(run.store_ms)} jobs; " + (context if q == 50 else base_note),
            )
        )
        rows.append(
            Row(
                label,
                f"submit-to-done p{q}, client (send to seen succeeded)",
                f"{client:,.0f} ms",
                f"{base:,.0f} ms",
                ratio(client, base),
                "-",
                f"{len(run.client_ms)} jobs; observer polls every {POLL_EVERY * 1000:.0f} ms",
            )
        )
    rows.append(
        Row(
            label,
            "HTTP answer p50 / p99 (send to 202)",
            f"{percentile(run.answer_ms, 50):,.0f} / {percentile(run.answer_ms, 99):,.0f} ms",
            "",
            "",
            "",
            "202 comes after the queue stored the message",
        )
    )
    return rows


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
    with stack_from_args(stack) as bench_stack:
        rows: list[Row] = []
        if "postgres" in backends:
            rows += _rows(bench_stack, "postgres", rate, seconds)
        if "sqs" in backends:
            rows += _rows(bench_stack, "sqs", sqs_rate, sqs_seconds)
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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="jobs/s on postgres")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds on postgres")
    parser.add_argument("--sqs-rate", type=float, default=20.0, help="jobs/s on sqs")
    parser.add_argument("--sqs-seconds", type=float, default=10.0, help="seconds on sqs")
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="only this backend (repeatable)")
    args = parser.parse_args()
    run(
        backends=args.backend or BACKENDS,
        rate=args.rate,
        seconds=args.seconds,
        sqs_rate=args.sqs_rate,
        sqs_seconds=args.sqs_seconds,
    )


if __name__ == "__main__":
    main()
