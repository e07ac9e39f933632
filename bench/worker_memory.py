"""Bench 4: a worker's memory over a long drain (does its RSS stay flat?).

One ``tornado worker --task demo.echo --concurrency 16`` process drains N pre-queued no-op jobs
(default 1,000,000) on the PostgreSQL queue of the local stack; its resident set size (VmRSS from
/proc) is sampled every second with the number of jobs done so far (messages left in its queue).
The table shows RSS at points of the drain and the growth per 100,000 jobs after a warm-up
(the first 10 %), the figure that tells a leak from a working set: a leak grows with the jobs
done, a working set does not. The jobs are written in chunks while the worker is not running
(the prefill is timed apart), with their ``queued`` rows, as the API writes them.

    .venv/bin/python -m bench.worker_memory [--jobs 1000000] [--concurrency 16]
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench._common import (
    ECHO,
    BenchStack,
    Scope,
    bench_args,
    bench_parser,
    log,
    pg_count,
    print_grid,
    scope,
    stack_from_args,
)
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.producer.submission import Submitter

CHUNK = 500
#: Drain points at which the table shows the RSS.
MARKS = (0.1, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Sample:
    seconds: float
    done: int
    rss_mb: float


def prefill_in_chunks(scoped: Scope, count: int) -> None:
    """``count`` demo.echo jobs with their ``queued`` rows, ``CHUNK`` per commit, never all in memory."""
    services, spec = scoped.services, scoped.spec
    services.queue.ensure_queue(spec)
    submitter = Submitter.for_services(services)
    for start in range(0, count, CHUNK):
        jobs = [
            submitter.prepare(task=ECHO, tenant=scoped.tenant, payload={"message": f"nota fiscal {i}"})
            for i in range(start, min(count, start + CHUNK))
        ]
        messages = [OutgoingMessage(job.body) for job in jobs]
        rows = [job.as_new_job() for job in jobs]
        if services.queue_and_jobs is not None:
            errors = services.queue_and_jobs.send_recorded(spec.name, messages, rows)
        else:
            errors = services.queue.send_batch(spec.name, messages)
            services.jobs.record_queued(rows)
        assert all(error is None for error in errors), errors
        if start and start % 100_000 == 0:
            log(f"worker_memory: {start:,} jobs queued")


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MB (VmRSS)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def left_in_queue(dsn: str, queue: str) -> int:
    return pg_count(dsn, "SELECT count(*) FROM tornado_messages WHERE queue = %s", (queue,))


def drain(stack: BenchStack, scoped: Scope, count: int, concurrency: int, timeout: float) -> list[Sample]:
    """Run one worker until the queue is empty; sample its RSS every second."""
    cluster = LocalCluster(stack.env("postgres", scoped.prefix), stack.log_dir / scoped.prefix)
    samples: list[Sample] = []
    try:
        worker = cluster.start_worker(ECHO, concurrency=concurrency, extra=["--poll-wait", "1"])
        began = time.monotonic()
        while True:
            if not worker.alive():
                raise RuntimeError(f"worker died:\n{worker.log_tail()}")
            done = count - left_in_queue(scoped.dsn, scoped.spec.name)
            samples.append(Sample(time.monotonic() - began, done, rss_mb(worker.pid)))
            if done >= count or time.monotonic() - began > timeout:
                return samples
            time.sleep(1.0)
    finally:
        cluster.stop_all(grace=15)


def _at(samples: list[Sample], fraction: float, count: int) -> Sample:
    return next((s for s in samples if s.done >= fraction * count), samples[-1])


def report(samples: list[Sample], count: int, concurrency: int, prefill_seconds: float) -> str:
    warm = _at(samples, 0.1, count)
    last = samples[-1]
    jobs_after = max(1, last.done - warm.done)
    growth = (last.rss_mb - warm.rss_mb) / jobs_after * 100_000
    peak = max(s.rss_mb for s in samples)
    points = [(m, _at(samples, m, count)) for m in MARKS]
    rows = [
        (f"{int(m * 100)} % ({s.done:,} jobs)", f"{s.rss_mb:.1f} MB", f"{s.seconds:.0f} s") for m, s in points
    ]
    rows.append(("growth after the first 10 %, per 100,000 jobs", f"{growth:+.2f} MB", ""))
    rows.append(("peak", f"{peak:.1f} MB", ""))
    rate = last.done / last.seconds if last.seconds else 0.0
    notes = [
        f"N={count:,} demo.echo jobs, one worker process, concurrency {concurrency}, PostgreSQL queue; "
        f"done {last.done:,} in {last.seconds:.0f} s ({rate:,.0f} jobs/s; done = messages gone)",
        f"prefill (not timed with the drain): {prefill_seconds:.0f} s, {CHUNK} jobs per commit",
        "RSS = VmRSS of the worker process from /proc, sampled every second",
    ]
    return print_grid(
        "Bench 4: worker RSS over a long drain", ("point of the drain", "worker RSS", "elapsed"), rows, notes
    )


def run(
    stack: BenchStack | None = None, *, jobs: int = 1_000_000, concurrency: int = 16, timeout: float = 1800.0
) -> str:
    """Prefill, drain, print the table."""
    with stack_from_args(stack) as bench_stack, scope(bench_stack, "postgres", "mem") as scoped:
        log(f"worker_memory: queueing {jobs:,} jobs")
        began = time.monotonic()
        prefill_in_chunks(scoped, jobs)
        prefill = time.monotonic() - began
        log(f"worker_memory: draining with one worker, concurrency {concurrency}")
        samples = drain(bench_stack, scoped, jobs, concurrency, timeout)
    return report(samples, jobs, concurrency, prefill)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="N")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the drain may take at most")
    options = bench_args(parser)
    options.pop("backends", None)  # PostgreSQL only: moto cannot hold a million messages
    run(**options)


if __name__ == "__main__":
    main()
