"""Bench: fairness — the small tenant's wait behind a big tenant's burst, without and with fair dispatch.

Two tenants share one task's queue. The big one submits a burst (default 5,000 jobs on
PostgreSQL, 500 on moto's SQS) through ``TornadoClient.submit_many``; as soon as the burst is
accepted, the small one submits 50 jobs. Every job sleeps a few ms and returns ``time.time()``
taken by the handler as it started; the pair of runs below is made for each sleep asked for
(default 5 ms, then 50 ms: the whole default run takes about 3 minutes on PostgreSQL). A small
job's **wait** is that start minus the bench's clock right before it called ``submit_many`` for
the small tenant (same machine, same clock); min, p50, p99 (linear interpolation) and max are
reported, and when the big burst finished (from the bench's first submit to the end of the last
big job).

The same run is made twice on the same stack, one after the other, each on a fresh queue prefix
with fresh tenants, one ``tornado api`` process and the same 2 worker processes (4 threads each):

* **without** fair dispatch: ``bench_fairness.plain`` (first come, first served);
* **with** it: ``bench_fairness.fair``, the same task declared ``fair=True``: each receive takes
  the waiting tenants' oldest jobs in turn (the PostgreSQL queue's fair receive; on SQS the jobs
  carry their tenant as ``MessageGroupId`` for SQS fair queues, which moto does not emulate).

Both tasks live in ``bench/fairness_tasks.py``, loaded by the API and the workers through
``TORNADO_TASKS_MODULES`` (what ``--tasks-module`` reads). The table puts the two runs side by side:
ratio = without / with (above 1: the small tenant waits less with fair dispatch; for the burst's
total time below 1 is what fairness costs the big tenant). On PostgreSQL the note also counts the
messages stored in the queue: the jobs plus every refused job sent again.

moto's SQS carries ~70 jobs/s here (each call costs it tens of ms of CPU), so the SQS burst is
500 by default, not 5,000.

    .venv/bin/python -m bench.fairness [--burst 5000] [--small 50] [--job-ms 5,50]
    .venv/bin/python -m bench.fairness --backend sqs [--sqs-burst 500]
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench import fairness_tasks
from bench._common import (
    BenchStack,
    CpuMeter,
    backend_label,
    bench_args,
    bench_parser,
    log,
    new_tenant,
    pg_cursor,
    print_grid,
    stack_from_args,
    stack_groups,
    unique,
)
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.naming import queue_spec
from tornado_core.services import Services

TASKS_MODULE = "bench.fairness_tasks"
WORKERS = 2
THREADS = 4
FINISHED = ("succeeded", "dead", "failed", "cancelled")
WARM_UP_JOBS = 8
DEFAULT_BURST = 5000
DEFAULT_SQS_BURST = 500
DEFAULT_SMALL = 50
DEFAULT_JOB_MS = (5.0, 50.0)


@dataclass
class ModeRun:
    """What one run (without or with fair dispatch) saw."""

    backend: str
    task: str
    burst: int
    small: int
    burst_submit_s: float = 0.0
    small_submit_s: float = 0.0
    small_waits: list[float] = field(default_factory=list)  # sorted, seconds
    small_done_s: float = 0.0  # small submission -> last small job ended
    big_done_s: float = 0.0  # first big submit -> last big job ended
    big_left: int = 0  # big jobs not yet started when the small tenant's last job ended
    not_succeeded: dict[str, int] = field(default_factory=dict)
    sent: int | None = None  # messages stored in the queue (PostgreSQL: jobs + refused jobs sent again)
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    machine_busy: float = 0.0

    @property
    def big_rate(self) -> float:
        return self.burst / self.big_done_s if self.big_done_s > 0 else 0.0


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` (0..100) quantile by linear interpolation between closest ranks."""
    if not sorted_values:
        return math.nan
    position = q / 100 * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@contextlib.contextmanager
def _cluster(stack: BenchStack, backend: str, prefix: str) -> Iterator[tuple[LocalCluster, str]]:
    """API + the workers of both tasks' module, under ``prefix``; stopped at the end."""
    env = stack.env(backend, prefix)
    env.update(TORNADO_TASKS_MODULES=TASKS_MODULE)
    cluster = LocalCluster(env, stack.log_dir / prefix)
    try:
        _, url = cluster.start_api()
        yield cluster, url
    finally:
        codes = cluster.stop_all(grace=20)
        bad = {name: code for name, code in codes.items() if code not in (0, -15)}
        if bad:
            log(f"warning: exit codes {bad}")


def _drop_queues(services: Services) -> None:
    prefix = services.settings.queue_prefix
    for spec in (fairness_tasks.plain, fairness_tasks.fair):
        names = queue_spec(prefix, spec)
        for name in (names.name, names.dead_letter_name):
            with contextlib.suppress(Exception):
                services.queue.delete_queue(name)


def _finished(dsn: str, ids: list[str]) -> int:
    with pg_cursor(dsn) as cur:
        cur.execute(
            "SELECT count(*) FROM tornado_jobs WHERE job_id = ANY(%s) AND status = ANY(%s)",
            (ids, list(FINISHED)),
        )
        row = cur.fetchone()
    return int(row[0]) if row else 0


def _wait_all(dsn: str, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = _finished(dsn, ids)
        if done >= len(ids):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {len(ids)} jobs finished within {timeout:.0f}s")
        time.sleep(0.25)


def _results(dsn: str, ids: list[str]) -> tuple[list[dict[str, float]], dict[str, int]]:
    """The handlers' ``{"started", "ended"}`` of the succeeded jobs, and the count of the others by status."""
    with pg_cursor(dsn) as cur:
        cur.execute("SELECT status, result FROM tornado_jobs WHERE job_id = ANY(%s)", (ids,))
        rows = cur.fetchall()
    got: list[dict[str, float]] = []
    others: dict[str, int] = {}
    for status, result in rows:
        if status == "succeeded":
            got.append(result if isinstance(result, dict) else json.loads(result))
        else:
            others[status] = others.get(status, 0) + 1
    return got, others


def _ids(receipts: list[dict[str, Any]]) -> list[str]:
    refused = [r for r in receipts if "id" not in r]
    if refused:
        raise RuntimeError(f"{len(refused)} jobs refused by the API, e.g. {refused[0]}")
    return [str(r["id"]) for r in receipts]


def run_mode(
    stack: BenchStack, backend: str, *, fair: bool, burst: int, small: int, job_ms: float
) -> ModeRun:
    """One run: the big tenant's burst, then the small tenant's jobs, all on one task."""
    task = fairness_tasks.FAIR_TASK if fair else fairness_tasks.PLAIN_TASK
    out = ModeRun(backend=backend, task=task, burst=burst, small=small)
    prefix = unique("fair" if fair else "fifo")
    job = {"task": task, "payload": {"seconds": job_ms / 1000}}
    with stack.services(backend, prefix, pool_size=4) as services:
        dsn = services.settings.database_url
        try:
            _, big_token = new_tenant(services, "big")
            _, small_token = new_tenant(services, "small")
            with _cluster(stack, backend, prefix) as (cluster, url):
                for _ in range(WORKERS):
                    cluster.start_worker(task, concurrency=THREADS, extra=["--poll-wait", "1"])
                big, little = TornadoClient(url, big_token), TornadoClient(url, small_token)
                # Warm-up (not measured): token caches, pools, job threads, the limiter's connections.
                warm = _ids(big.submit_many([job] * WARM_UP_JOBS)) + _ids(
                    little.submit_many([job] * WARM_UP_JOBS)
                )
                _wait_all(dsn, warm, 60)
                time.sleep(1.0)
                _measure(stack, cluster, dsn, big, little, job, out)
        finally:
            _drop_queues(services)
    return out


def _measure(
    stack: BenchStack,
    cluster: LocalCluster,
    dsn: str,
    big: TornadoClient,
    little: TornadoClient,
    job: dict[str, Any],
    out: ModeRun,
) -> None:
    groups: dict[str, int | None] = {**stack_groups(stack)}
    for process in cluster.processes:
        groups[process.name] = process.pid
    meter = CpuMeter(groups).start()
    sequence = _message_sequence(dsn) if out.backend == "postgres" else None
    burst_at = time.time()
    big_ids = _ids(big.submit_many([job] * out.burst, parallel=2))
    small_at = time.time()  # right before the small tenant submits
    out.burst_submit_s = small_at - burst_at
    small_ids = _ids(little.submit_many([job] * out.small))
    out.small_submit_s = time.time() - small_at
    _wait_all(dsn, big_ids + small_ids, timeout=600)
    meter.stop()
    if sequence is not None:
        out.sent = _message_sequence(dsn) - sequence
    big_runs, big_bad = _results(dsn, big_ids)
    small_runs, small_bad = _results(dsn, small_ids)
    out.not_succeeded = {f"big {k}": v for k, v in big_bad.items()} | {
        f"small {k}": v for k, v in small_bad.items()
    }
    out.small_waits = sorted(r["started"] - small_at for r in small_runs)
    small_last = max(r["ended"] for r in small_runs)
    out.small_done_s = small_last - small_at
    out.big_done_s = max(r["ended"] for r in big_runs) - burst_at
    out.big_left = sum(1 for r in big_runs if r["started"] > small_last)
    out.wall, out.machine_busy = meter.wall, meter.machine_busy
    workers = sum(v for k, v in meter.used.items() if k.startswith("worker"))
    out.cpu = {"workers": workers, "api": meter.used.get("api", 0.0)}
    out.cpu |= {k: meter.used[k] for k in ("postgres", "moto") if meter.used.get(k, 0.0) >= 0.05}


def _message_sequence(dsn: str) -> int:
    """The last id the PostgreSQL queue's messages took (one per message stored, requeues included)."""
    with pg_cursor(dsn) as cur:
        cur.execute("SELECT last_value FROM tornado_messages_id_seq")
        row = cur.fetchone()
    return int(row[0]) if row else 0


def _rows(label: str, job_ms: float, plain: ModeRun, fair: ModeRun) -> list[tuple[str, ...]]:
    def seconds(value: float) -> str:
        return f"{value:,.2f} s"

    def times(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b > 0 else "n/a"

    def row(measure: str, without: str, with_: str, ratio: str = "", note: str = "") -> tuple[str, ...]:
        return (label, f"{job_ms:g} ms", measure, without, with_, ratio, note)

    rows: list[tuple[str, ...]] = []
    for name, q in (("min", 0.0), ("p50", 50.0), ("p99", 99.0), ("max", 100.0)):
        a, b = quantile(plain.small_waits, q), quantile(fair.small_waits, q)
        note = ""
        if name == "min":
            note = (
                f"{plain.small} small jobs submitted right after the burst was accepted "
                f"(in {plain.burst_submit_s:.2f} / {fair.burst_submit_s:.2f} s)"
            )
        if name == "max":
            note = (
                f"the small jobs started in {_groups(plain.small_waits)} / {_groups(fair.small_waits)} "
                "groups (a new group after a pause > 0.5 s)"
            )
        measure = f"small tenant: wait {name}"
        rows.append(
            row(measure if name == "min" else f"**{measure}**", seconds(a), seconds(b), times(a, b), note)
        )
    rows.append(
        row(
            "small tenant: submit to its last job ended",
            seconds(plain.small_done_s),
            seconds(fair.small_done_s),
            times(plain.small_done_s, fair.small_done_s),
        )
    )
    rows.append(
        row(
            "big jobs not started yet when the small tenant's last ended",
            f"{plain.big_left:,}",
            f"{fair.big_left:,}",
            note=f"of {plain.burst:,}",
        )
    )
    rows.append(
        row(
            f"**big burst ({plain.burst:,} jobs): first submit to last job ended**",
            seconds(plain.big_done_s),
            seconds(fair.big_done_s),
            times(plain.big_done_s, fair.big_done_s),
            f"{plain.big_rate:,.0f} / {fair.big_rate:,.0f} big jobs/s; "
            "below 1: what fairness costs the big tenant",
        )
    )
    sent = ""
    if plain.sent is not None and fair.sent is not None:
        jobs = plain.burst + plain.small
        sent = (
            f"; messages stored in the queue {plain.sent:,} / {fair.sent:,} for {jobs:,} jobs "
            "(refused jobs are sent again)"
        )
    rows.append(
        row(
            "CPU seconds",
            _cpu(plain),
            _cpu(fair),
            note=f"machine {plain.machine_busy:.0%} / {fair.machine_busy:.0%} busy{sent}; not succeeded: "
            f"{plain.not_succeeded or 'none'} / {fair.not_succeeded or 'none'}",
        )
    )
    return rows


def _cpu(run: ModeRun) -> str:
    names = ("workers", "api", "postgres", "moto")
    return ", ".join(f"{name} {run.cpu[name]:.1f}" for name in names if name in run.cpu)


def _groups(starts: Sequence[float], gap: float = 0.5) -> int:
    """How many groups the sorted start times make, a new one after each pause longer than ``gap`` s."""
    return sum(1 for i, value in enumerate(starts) if i == 0 or value - starts[i - 1] > gap)


def run(
    stack: BenchStack | None = None,
    *,
    backends: Sequence[str] = ("postgres",),
    burst: int = DEFAULT_BURST,
    sqs_burst: int = DEFAULT_SQS_BURST,
    small: int = DEFAULT_SMALL,
    job_ms: Sequence[float] = DEFAULT_JOB_MS,
) -> str:
    """Run both modes for each job duration on each backend asked for; print the table, return its text."""
    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    started = time.monotonic()
    rows: list[tuple[str, ...]] = []
    with stack_from_args(stack) as bench_stack:
        for backend in ("postgres", "sqs"):
            if backend not in backends:
                continue
            size = burst if backend == "postgres" else sqs_burst
            for ms in job_ms:
                runs = []
                for fair in (False, True):
                    mode = "with fair dispatch" if fair else "first come, first served"
                    log(f"fairness: {backend}, {mode}: burst {size}, small {small}, {ms:g} ms per job")
                    runs.append(run_mode(bench_stack, backend, fair=fair, burst=size, small=small, job_ms=ms))
                rows += _rows(backend_label(backend), ms, runs[0], runs[1])
    header = (
        "backend",
        "job sleeps",
        "measure",
        "without fair dispatch",
        "with fair dispatch (fair=True)",
        "ratio without / with",
        "note",
    )
    notes = [
        f"one `tornado api` process; {WORKERS} `tornado worker` processes, {THREADS} threads each "
        "(`--poll-wait 1`), the same for both runs",
        f"without: `{fairness_tasks.PLAIN_TASK}` (first come, first served); with: "
        f"`{fairness_tasks.FAIR_TASK}` (`fair=True`: tenants in turn); both from `{TASKS_MODULE}`",
        "wait = the handler's `time.time()` at its start - the bench's clock right before the small "
        "tenant's `submit_many`; p99 by linear interpolation",
        "the runs are sequential on the same stack, each on its own queue prefix and tenants, "
        f"after {WARM_UP_JOBS} warm-up jobs per tenant",
        f"`os.getloadavg()` before: {load_before}; after: "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
        + f"; {time.monotonic() - started:.0f} s in all",
    ]
    return print_grid("Fairness: the small tenant's wait behind a big tenant's burst", header, rows, notes)


def _durations(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--burst", type=int, help=f"big tenant's jobs on postgres (default {DEFAULT_BURST})")
    parser.add_argument(
        "--sqs-burst", type=int, help=f"big tenant's jobs on sqs (moto) (default {DEFAULT_SQS_BURST})"
    )
    parser.add_argument("--small", type=int, help=f"small tenant's jobs (default {DEFAULT_SMALL})")
    parser.add_argument(
        "--job-ms",
        type=_durations,
        help="each job's sleep in ms, one pair of runs per value (default "
        + ",".join(f"{ms:g}" for ms in DEFAULT_JOB_MS)
        + ")",
    )
    run(**bench_args(parser))


if __name__ == "__main__":
    main()
