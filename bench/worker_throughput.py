"""Bench 2: no-op jobs one worker process finishes per second.

For each queue backend, in the same run, on a fresh queue pre-filled with the
same ``N`` ``demo.echo`` jobs (envelopes built exactly as the API builds them,
and their ``queued`` rows written as the API's write-behind writes them):

* **Tornado**: one ``tornado worker --task demo.echo`` process (default
  concurrency 4, and a higher one); the rate is ``N`` divided by the time from
  the first claim (``min(started_at)``) to the last success
  (``max(finished_at)``), read from the job store once all ``N`` succeeded.
* **Baseline**: a bare receive (10 at a time) + delete-batch loop on the same
  adapter, one thread, same ``N``, from the first receive to the last delete.
* **Baseline with the job store**: the same storage calls the worker makes per
  job (receive 10, then per message claim + record_success + delete) from as
  many threads as the worker's concurrency, without the worker's framework
  (no envelope parsing, pydantic, handler, logging, heartbeat). The gap to it is
  the framework's own cost; the gap between the two baselines is the job
  store's.

The worker writes the job store per batch, not per job: one claim statement per receive and one
durable commit per batch of finished jobs (with the deletes, on PostgreSQL). The raw loop writes
no job store at all, so it is the ceiling of the queue alone.

moto drains slowly (receive + delete cost grows with depth), so SQS runs use a
small ``N`` (default 200).

    .venv/bin/python -m bench.worker_throughput [--jobs 3000] [--sqs-jobs 200] [--backend postgres]
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench._common import (
    BACKENDS,
    ECHO,
    BenchStack,
    ClientRun,
    CpuMeter,
    Row,
    Scope,
    Stopwatch,
    backend_label,
    bench_args,
    bench_parser,
    log,
    pg_cursor,
    prepared_jobs,
    print_grid,
    print_table,
    ratio,
    rows_per_backend,
    run_gated,
    scope,
    stack_from_args,
    stack_groups,
)
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.ports.jobs import ClaimOutcome, NewJob
from tornado_core.ports.queue import OutgoingMessage, ReceivedMessage
from tornado_core.services import Services

TARGET = 0.8
CONCURRENCIES = (4, 16)


def prefill(scoped: Scope, count: int) -> str:
    """``count`` demo.echo jobs on a fresh queue with their ``queued`` rows; returns the queue name."""
    services, spec = scoped.services, scoped.spec
    services.queue.ensure_queue(spec)
    jobs = prepared_jobs(services, scoped.tenant, count)
    size = services.queue.max_send_batch
    for start in range(0, count, size):
        chunk = jobs[start : start + size]
        errors = services.queue.send_batch(spec.name, [OutgoingMessage(job.body) for job in chunk])
        assert all(e is None for e in errors), errors
    for start in range(0, count, 500):
        services.jobs.record_queued([job.as_new_job() for job in jobs[start : start + 500]])
    return spec.name


@dataclass
class WorkerRun:
    count: int
    seconds: float
    cpu: CpuMeter
    concurrency: int
    statuses: dict[str, int]

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def note(self) -> str:
        worker_cpu = self.cpu.used.get("worker", 0.0)
        return (
            f"N={self.count}, concurrency {self.concurrency}: first claim to last success "
            f"{self.seconds:.2f}s; statuses {self.statuses}; {worker_cpu / self.count * 1e6:.0f} us "
            f"worker CPU/job; cores used: worker {self.cpu.cores('worker'):.2f}, {self.cpu.stack_cores()}; "
            f"machine busy {self.cpu.machine_busy:.0%}"
        )


def _job_counts(dsn: str, tenant: str) -> tuple[dict[str, int], Any, Any]:
    with pg_cursor(dsn) as cur:
        cur.execute("SELECT status, count(*) FROM tornado_jobs WHERE tenant = %s GROUP BY status", (tenant,))
        statuses = dict(cur.fetchall())
        cur.execute("SELECT min(started_at), max(finished_at) FROM tornado_jobs WHERE tenant = %s", (tenant,))
        first, last = cur.fetchone() or (None, None)
    return statuses, first, last


def _wait_succeeded(
    scoped: Scope, count: int, timeout: float, check: Callable[[], None] = lambda: None
) -> tuple[dict[str, int], float]:
    """Poll the job store until ``count`` jobs succeeded (or ``timeout``, or ``check`` raises).

    Returns the statuses and the seconds from the first claim to the last success.
    """
    deadline = time.monotonic() + timeout
    while True:
        statuses, first, last = _job_counts(scoped.dsn, scoped.tenant)
        if statuses.get("succeeded", 0) >= count or time.monotonic() > deadline:
            return statuses, (last - first).total_seconds() if first and last else 0.0
        check()
        time.sleep(0.1)


def run_worker(
    stack: BenchStack, backend: str, count: int, *, concurrency: int, timeout: float = 240.0
) -> WorkerRun:
    """One worker process drains ``count`` pre-filled jobs."""
    with scope(stack, backend, "wk") as scoped:
        prefill(scoped, count)
        cluster = LocalCluster(stack.env(backend, scoped.prefix), stack.log_dir / scoped.prefix)
        try:
            worker = cluster.start_worker(ECHO, concurrency=concurrency, extra=["--poll-wait", "1"])

            def alive() -> None:
                if not worker.alive():
                    raise RuntimeError(f"worker died:\n{worker.log_tail()}")

            meter = CpuMeter({"worker": worker.pid, **stack_groups(stack)}).start()
            statuses, seconds = _wait_succeeded(scoped, count, timeout, alive)
            meter.stop()
        finally:
            cluster.stop_all(grace=15)
    if statuses.get("succeeded", 0) < count:
        raise RuntimeError(f"only {statuses} after {timeout:.0f}s")
    return WorkerRun(count, seconds, meter, concurrency, statuses)


@dataclass
class LoopRun(ClientRun):
    threads: int

    def note(self, what: str) -> str:
        return (
            f"{what}: N={self.count} in {self.seconds:.2f}s; {self.self_cpu / self.count * 1e6:.0f} us "
            f"client CPU/job; " + self.cores_note("client")
        )


def _run_stored(services: Services, queue_name: str, message: ReceivedMessage) -> bool:
    """The worker's storage calls for one message, without the worker; False if it did not run."""
    envelope = json.loads(message.body)
    job = NewJob(
        job_id=envelope["job_id"],
        tenant=envelope["tenant"],
        task=envelope["task"],
        version=envelope["version"],
        submitted_at=envelope["submitted_at"],
    )
    outcome = services.jobs.claim(
        job, attempt=message.receive_count, lease_seconds=60, worker=f"loop/{message.message_id}"
    )
    if outcome is ClaimOutcome.BUSY:
        return False  # a duplicate delivery being run by another thread
    if outcome is ClaimOutcome.CLAIMED:
        services.jobs.record_success(job.job_id, result={"message": "x"}, result_ref=None)
    services.queue.delete(queue_name, [message.receipt])
    return outcome is ClaimOutcome.CLAIMED


@dataclass
class _Drain:
    """The consumers of :func:`run_loop`: they count distinct finished messages and stop at ``count``."""

    services: Services
    name: str
    count: int
    with_store: bool
    timeout: float
    deadline: float = field(init=False)
    done: set[str] = field(default_factory=set)  # a queue may deliver a message twice
    finished: list[float] = field(default_factory=list)  # perf_counter() when the last was done
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def consume(self, gate: threading.Barrier) -> None:
        try:
            self._consume(gate)
        except BaseException as exc:
            self.errors.append(exc)
            self.stop.set()

    def _consume(self, gate: threading.Barrier) -> None:
        queue, name = self.services.queue, self.name
        queue.ping()
        gate.wait()
        while not self.stop.is_set():
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"only {len(self.done)} of {self.count} done after {self.timeout:.0f}s")
            messages = queue.receive(name, max_messages=10, wait_seconds=1, visibility_timeout=60)
            finished_ids = [m.message_id for m in messages]
            if not self.with_store:
                queue.delete(name, [m.receipt for m in messages])
            else:
                finished_ids = [m.message_id for m in messages if _run_stored(self.services, name, m)]
            with self.lock:
                self.done.update(finished_ids)
                if len(self.done) >= self.count and not self.stop.is_set():
                    self.finished.append(time.perf_counter())
                    self.stop.set()


def run_loop(
    stack: BenchStack, backend: str, count: int, *, with_store: bool, threads: int = 1, timeout: float = 180.0
) -> LoopRun:
    """Bare receive + delete loop; ``with_store`` adds the worker's claim + success per job."""
    with scope(stack, backend, "lp", pool_size=max(4, threads + 2)) as scoped:
        name = prefill(scoped, count)
        drain = _Drain(scoped.services, name, count, with_store, timeout)
        gate = threading.Barrier(threads + 1)
        workers = [threading.Thread(target=drain.consume, args=(gate,)) for _ in range(threads)]
        watch = run_gated(workers, gate, Stopwatch(CpuMeter(stack_groups(stack))))
        if drain.errors:
            raise drain.errors[0]
    return LoopRun(count, drain.finished[0] - watch.started, watch.cpu, watch.self_cpu, threads)


class _Timed:
    """Delegates to a port and adds up the wall time of each method, per calling thread kind."""

    def __init__(self, inner: Any, tag: str, totals: dict[str, list[float]], lock: threading.Lock) -> None:
        self._inner, self._tag, self._totals, self._lock = inner, tag, totals, lock
        self.max_send_batch = getattr(inner, "max_send_batch", 0)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                thread = "job" if threading.current_thread().name.startswith("tornado-job") else "poll"
                with self._lock:
                    entry = self._totals.setdefault(f"{self._tag}.{name} ({thread} thread)", [0, 0.0])
                    entry[0] += 1
                    entry[1] += elapsed

        return timed


def breakdown(stack: BenchStack, backend: str, count: int, concurrency: int) -> str:
    """Where one worker's wall time goes: the port calls of the real loop, timed in-process.

    Runs :class:`tornado_core.worker.loop.Worker` (the code ``tornado worker`` runs) in
    this process with its queue and job store wrapped by timers, on ``count``
    pre-filled jobs.
    """
    totals, wall = _timed_worker(stack, backend, count, concurrency)
    rows: list[tuple[str, ...]] = []
    for name, (calls, seconds) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        if "ensure_queue" in name:
            continue
        capacity = wall * (concurrency if "(job thread)" in name else 1)
        rows.append(
            (
                backend,
                name,
                f"{seconds / calls * 1000:.2f} ms",
                f"{calls / count:.2f}",
                f"{seconds / count * 1000:.2f} ms",
                f"{seconds / capacity:.0%}",
            )
        )
    return print_grid(
        f"Bench 2b: where the worker's time goes ({backend}, concurrency {concurrency}, timed port calls)",
        ("backend", "port call (thread)", "mean per call", "calls per job", "thread time per job", "share"),
        rows,
        _breakdown_notes(count, concurrency, wall),
    )


def _timed_worker(
    stack: BenchStack, backend: str, count: int, concurrency: int
) -> tuple[dict[str, list[float]], float]:
    """The real worker loop, in this process, on ``count`` pre-filled jobs, its ports timed.

    Returns ``{"queue.receive (poll thread)": [calls, seconds], ...}`` and the seconds
    from the first claim to the last success.
    """
    from tornado_core.worker.loop import Worker, WorkerOptions

    totals: dict[str, list[float]] = {}
    lock = threading.Lock()
    with scope(stack, backend, "bd") as scoped:
        services = scoped.services
        prefill(scoped, count)
        timed = dataclasses.replace(
            services,
            queue=_Timed(services.queue, "queue", totals, lock),  # type: ignore[arg-type]
            jobs=_Timed(services.jobs, "jobs", totals, lock),  # type: ignore[arg-type]
            queue_and_jobs=(
                _Timed(services.queue_and_jobs, "queue_and_jobs", totals, lock)
                if services.queue_and_jobs
                else None
            ),
        )
        worker = Worker(
            timed, services.registry.get(ECHO), WorkerOptions(concurrency=concurrency, poll_wait=1)
        )
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        _statuses, wall = _wait_succeeded(scoped, count, timeout=240)
        worker.stop()
        thread.join(timeout=30)
    return totals, wall


def _breakdown_notes(count: int, concurrency: int, wall: float) -> list[str]:
    return [
        f"N={count}, concurrency {concurrency}: {count / wall:.0f} jobs/s in-process "
        "(first claim to last success "
        f"{wall:.2f}s)",
        f"share = the call's total wall time / the threads' wall time (job threads: {concurrency} x wall; "
        "poll thread: wall); on PostgreSQL each call is one transaction, i.e. one commit and WAL flush",
        "calls per job below 1 are batches: a receive (up to the queue's batch) and its claims, the "
        "successes committed together by the completer (with their deletes on PostgreSQL)",
    ]


def _rows(stack: BenchStack, backend: str, count: int, concurrencies: Sequence[int]) -> list[Row]:
    label = backend_label(backend)
    log(f"worker_throughput: {backend} raw receive + delete loop, N={count}")
    raw = run_loop(stack, backend, count, with_store=False)
    rows = []
    for concurrency in concurrencies:
        log(f"worker_throughput: {backend} worker, concurrency {concurrency}, N={count}")
        worker = run_worker(stack, backend, count, concurrency=concurrency)
        log(f"worker_throughput: {backend} loop with the job store, {concurrency} threads, N={count}")
        stored = run_loop(stack, backend, count, with_store=True, threads=concurrency)
        measure = f"worker no-op jobs/s, 1 proc, concurrency {concurrency}"
        rows.append(
            Row(
                label,
                f"{measure} vs raw receive+delete loop",
                f"{worker.rate:,.0f}/s",
                f"{raw.rate:,.0f}/s",
                ratio(worker.rate, raw.rate),
                f">= {TARGET}",
                worker.note()
                + " | baseline "
                + raw.note("1 thread: receive(10) + delete(batch)")
                + "; the raw loop writes no job store",
            )
        )
        rows.append(
            Row(
                label,
                f"{measure} vs same storage calls, no framework",
                f"{worker.rate:,.0f}/s",
                f"{stored.rate:,.0f}/s",
                ratio(worker.rate, stored.rate),
                "-",
                stored.note(f"{concurrency} threads: receive(10), then per job claim + success + delete"),
            )
        )
    return rows


def run(
    stack: BenchStack | None = None,
    *,
    backends: Sequence[str] = BACKENDS,
    jobs: int = 3000,
    sqs_jobs: int = 200,
    concurrencies: Sequence[int] = CONCURRENCIES,
    breakdown_jobs: int = 1500,
) -> str:
    """Run bench 2 and print its table; returns the table's text."""
    rows = rows_per_backend(
        stack,
        backends,
        lambda bench_stack, backend: _rows(
            bench_stack, backend, jobs if backend == "postgres" else sqs_jobs, concurrencies
        ),
    )
    notes = [
        "every run starts on a fresh queue pre-filled with N demo.echo envelopes and their 'queued' rows",
        "worker: `tornado worker --task demo.echo --poll-wait 1`; it claims the jobs of each receive in "
        "one transaction, runs the handlers, and commits the successes that finish together in one "
        "durable transaction (on PostgreSQL with their messages' deletes); the raw loop writes no job store",
        f"sqs runs use N={sqs_jobs} (moto's receive/delete cost grows with queue depth)",
    ]
    table = print_table("Bench 2: worker no-op jobs/s, one process", rows, notes)
    if breakdown_jobs:  # on SQS its "calls per job" column is what the API bills
        with stack_from_args(stack) as bench_stack:
            for backend in backends:
                count = breakdown_jobs if backend == "postgres" else min(breakdown_jobs, sqs_jobs)
                log(f"worker_throughput: breakdown of the worker's time, {backend}, N={count}")
                table += "\n" + breakdown(bench_stack, backend, count, concurrencies[0])
    return table


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=3000, help="N on postgres")
    parser.add_argument("--sqs-jobs", type=int, default=200, help="N on sqs")
    parser.add_argument(
        "--concurrency",
        dest="concurrencies",
        metavar="CONCURRENCY",
        type=int,
        action="append",
        help="worker concurrency (repeatable)",
    )
    parser.add_argument("--breakdown-jobs", type=int, default=1500, help="N of the timed breakdown (0: skip)")
    run(**bench_args(parser))


if __name__ == "__main__":
    main()
