"""How ``bench.celery_peers`` measures one system: a drain of pre-queued jobs, then a steady offered load.

The clock is the same for every system: the handler's :func:`bench._celery_tasks.nap`
records ``index sent started ended`` (``time.time()``) in a file. A drain's rate is N /
(last ``ended`` - first ``started``); a latency is ``ended - sent``. The worker's CPU is
sampled from /proc every 0.1 s and read at those two instants (interpolated), so its
start-up (imports, connections) is not counted.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench._celery_brokers import Calls, PgCalls, RedisCalls, SqsCalls
from bench._celery_rabbitmq import RabbitCalls
from bench._celery_systems import System, Worker
from bench._common import log, percentile, tree_cpu

#: Job numbers of the steady run start here (the drain's are below).
STEADY_FIRST = 1_000_000


@dataclass(frozen=True)
class Done:
    """One finished job, by the handler's clock."""

    sent: float
    started: float
    ended: float


def read_done(path: Path) -> tuple[dict[int, Done], int]:
    """The jobs recorded in ``path`` (first record of each) and how many were recorded twice."""
    found: dict[int, Done] = {}
    repeats = 0
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return found, 0
    for line in lines:
        parts = line.split()
        if len(parts) != 4:
            continue  # a line being written
        index = int(parts[0])
        if index in found:
            repeats += 1
        else:
            found[index] = Done(float(parts[1]), float(parts[2]), float(parts[3]))
    return found, repeats


class CpuSampler(threading.Thread):
    """CPU seconds of a process tree, sampled every 0.1 s with the wall clock."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._pid = pid
        self._stop_event = threading.Event()
        self.times: list[float] = []
        self.cpu: list[float] = []

    def run(self) -> None:
        while True:
            now, used = time.time(), tree_cpu(self._pid)
            self.times.append(now)
            self.cpu.append(used)
            if self._stop_event.wait(0.1):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def at(self, when: float) -> float:
        """CPU seconds used by ``when`` (linear between samples)."""
        i = bisect.bisect_left(self.times, when)
        if i <= 0:
            return self.cpu[0]
        if i >= len(self.times):
            return self.cpu[-1]
        t0, t1, c0, c1 = self.times[i - 1], self.times[i], self.cpu[i - 1], self.cpu[i]
        return c0 + (c1 - c0) * (when - t0) / (t1 - t0) if t1 > t0 else c1

    def between(self, start: float, end: float) -> float:
        """CPU seconds used from ``start`` to ``end``."""
        return self.at(end) - self.at(start)


def wait_done(path: Path, indexes: range, worker: Worker, timeout: float) -> dict[int, Done]:
    """Poll ``path`` until every job of ``indexes`` is recorded; fails if the worker dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        found, _ = read_done(path)
        mine = {i: d for i, d in found.items() if i in indexes}
        if len(mine) >= len(indexes):
            return mine
        if not worker.alive():
            raise RuntimeError(f"the worker died:\n{worker.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(mine)} of {len(indexes)} jobs done after {timeout:.0f}s")
        time.sleep(0.1)


@dataclass
class Drain:
    """N pre-queued jobs drained by one worker process."""

    count: int
    seconds: float
    cpu: float
    calls: dict[str, Calls] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def drain(worker: Worker, sampler: CpuSampler, path: Path, count: int, timeout: float) -> Drain:
    """Wait for the ``count`` pre-queued jobs; the rate from the first start to the last end."""
    done = wait_done(path, range(count), worker, timeout)
    first = min(d.started for d in done.values())
    last = max(d.ended for d in done.values())
    time.sleep(0.15)  # one more CPU sample after the last job
    return Drain(count, last - first, sampler.between(first, last))


@dataclass
class Steady:
    """An open-loop run at a fixed offered rate."""

    rate: float
    seconds: float
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    completed_rate: float = 0.0
    max_lateness_ms: float = 0.0
    repeats: int = 0
    worker_cpu: float = 0.0
    calls: dict[str, Calls] = field(default_factory=dict)

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


@dataclass
class Counters:
    """The call counters every run reads (those of a broker the system does not use read zero).

    ``rabbit`` is None when RabbitMQ is not running (its rows are not measured).
    """

    redis: RedisCalls
    sqs: SqsCalls
    pg: PgCalls
    rabbit: RabbitCalls | None = None

    def start(self) -> None:
        if self.rabbit is not None:  # first: it waits for the management API's counters to settle
            self.rabbit.start()
        self.pg.start()
        self.sqs.start()
        self.redis.start()

    def stop(self) -> dict[str, Calls]:
        redis_sent, redis_executed = self.redis.stop()
        sqs = self.sqs.stop()
        statements, commits = self.pg.stop()  # waits a second: RabbitMQ's counters catch up meanwhile
        amqp_ops, amqp_reads = self.rabbit.stop() if self.rabbit is not None else (Calls(0, {}), Calls(0, {}))
        return {
            "redis": redis_sent,
            "redis executed": redis_executed,
            "sqs": sqs,
            "amqp": amqp_ops,
            "amqp reads": amqp_reads,
            "pg": statements,
            "pg commits": commits,
        }


def steady(
    system: System,
    worker: Worker,
    sampler: CpuSampler,
    path: Path,
    counters: Counters,
    *,
    rate: float,
    seconds: float,
    job_seconds: float,
) -> Steady:
    """Submit one job every 1/``rate`` s for ``seconds``, wait for all; latencies and calls per job."""
    out = Steady(rate=rate, seconds=seconds)
    total = int(rate * seconds)
    indexes = range(STEADY_FIRST, STEADY_FIRST + total)
    counters.start()
    start = time.perf_counter()
    for n, index in enumerate(indexes):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        out.max_lateness_ms = max(out.max_lateness_ms, (time.perf_counter() - due) * 1000)
        system.submit(index, job_seconds)
        out.sent += 1
    done = wait_done(path, indexes, worker, timeout=max(60.0, 3 * seconds))
    out.calls = counters.stop()
    first_sent = min(d.sent for d in done.values())
    last_end = max(d.ended for d in done.values())
    out.completed_rate = total / (last_end - first_sent) if last_end > first_sent else 0.0
    out.latencies_ms = sorted((d.ended - d.sent) * 1000 for d in done.values())
    out.worker_cpu = sampler.between(first_sent, last_end)
    _, out.repeats = read_done(path)
    return out


def measure(
    system: System,
    counters: Counters,
    folder: Path,
    *,
    drain_jobs: int,
    concurrency: int,
    rate: float,
    seconds: float,
    job_seconds: float,
    timeout: float,
) -> tuple[Drain, Steady]:
    """Pre-queue ``drain_jobs``, start the worker, time its drain, then the steady run on the same worker."""
    path = folder / f"done-{system.name}-{system.broker.split()[0]}-{job_seconds:g}.txt"
    path.unlink(missing_ok=True)
    system.prefill(drain_jobs, job_seconds, 0)
    counters.start()  # the drain's calls: the worker's alone
    worker = system.start_worker(path, concurrency)
    sampler = CpuSampler(worker.pid)
    sampler.start()
    try:
        drained = drain(worker, sampler, path, drain_jobs, timeout)
        drained.calls = counters.stop()
        log(
            f"celery_peers:   drained {drained.count} at {drained.rate:,.0f}/s; "
            f"steady {rate:g}/s for {seconds:g}s"
        )
        time.sleep(0.5)
        steady_run = steady(
            system, worker, sampler, path, counters, rate=rate, seconds=seconds, job_seconds=job_seconds
        )
    finally:
        sampler.stop()
        code = worker.stop()
        if code not in (0, -15):
            log(f"warning: the worker exited with {code}:\n{worker.tail()}")
    return drained, steady_run


def per_job(calls: Calls, jobs: int) -> float:
    """Calls per job."""
    return calls.total / jobs if jobs else 0.0


def describe_latency(run: Steady) -> str:
    """``200/s for 10 s, 2000 sent, completed at 199/s, generator late <= 3 ms``."""
    return (
        f"{run.rate:g}/s for {run.seconds:g}s: {run.sent} sent, completed at {run.completed_rate:.0f}/s, "
        f"generator late <= {run.max_lateness_ms:.0f} ms"
        + (f", {run.repeats} run twice" if run.repeats else "")
    )


def kinds(calls: Sequence[tuple[str, Calls]], jobs: int) -> str:
    """``sqs: ReceiveMessage 0.10, ...; redis: evalsha 1.02``: top kinds per job of the non-empty counters."""
    shown = {"amqp": 6}  # publish, deliver/get, get_empty, ack, confirm, redeliver
    return "; ".join(
        f"{name}: {c.top(shown.get(name, 4), jobs)}" for name, c in calls if c.total and c.by_kind
    )
