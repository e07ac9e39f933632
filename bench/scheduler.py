"""Bench: the scheduler — due jobs queued per second with 100,000 parked, and schedules fired per second.

**Release.** N ``demo.echo`` jobs (default 100,000; 2,000 on moto's SQS, whose SendMessageBatch
costs ~0.2 s there) are prepared as the API prepares them and parked through ``SchedulesPort.park``
(1,000 per commit, timed apart: the setup), their due times spread over 1,000 s starting 1,000 s
from now. Then one ``Scheduler``, and in a second round two at once (each in its own process, as
``tornado scheduler`` runs), call ``tick()`` with the clock moved an hour ahead, so that every
parked job is due; the rate is N over the time from the start signal to the end of the last tick
that released something. At the end: every job sent exactly once (queue depth = N, no parked row of
the queue left, every job row ``queued``).

**Baseline** (same run, same process layout): the same kind of bodies sent with the bare
``QueuePort.send_batch`` in the queue's largest batches (PostgreSQL 500, SQS 10), by one and by
two processes, without the scheduler's bookkeeping (row locks, the ``DELETE`` of the parked rows,
the jobs' status): the cost floor. ratio = scheduler / floor.

**Periodic.** S schedules (default 1,000; cron ``0 * * * *``, ``skip``) each with exactly one due
occurrence at the moved clock, fired by one and by two schedulers; baseline: the same number of
jobs queued one by one through ``DirectSubmitter.submit`` (what each firing does inside: validate,
look the occurrence's job up, send and record it), without the schedule's row lock and update.

The scheduler handles every tenant's parked jobs and schedules: run it on its own stack (the
default) rather than a shared ``TORNADO_STATE_DIR``.

    .venv/bin/python -m bench.scheduler [--jobs 100000] [--sqs-jobs 2000] [--schedules 1000]
                                        [--backend postgres|sqs]
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from typing import Any

from bench._common import (
    BACKENDS,
    ECHO,
    BenchStack,
    CpuMeter,
    Row,
    Scope,
    backend_label,
    bench_args,
    bench_parser,
    log,
    pg_count,
    pg_cursor,
    print_table,
    ratio,
    rows_per_backend,
    scope,
    stack_groups,
)
from tornado_core.bootstrap import build_services
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.schedules import MissedPolicy, ParkedJob, Schedule
from tornado_core.producer.direct import DirectSubmitter
from tornado_core.producer.submission import Submitter
from tornado_core.scheduling.occurrences import next_occurrence
from tornado_core.scheduling.scheduler import Scheduler
from tornado_core.settings import Settings

#: Parked jobs per ``SchedulesPort.park`` call (one commit).
PARK_CHUNK = 1_000
#: Parked jobs fall due from this many seconds ahead of the real clock...
DUE_FROM = 1_000.0
#: ...spread over this many seconds.
DUE_SPAN = 1_000.0
#: The schedulers' clock during the release: every parked job is due by then.
CLOCK_AHEAD = 3_600.0
#: Cron of the periodic schedules: one occurrence an hour, so exactly one is due at the moved clock.
HOURLY = "0 * * * *"
#: Seconds a child may take to get ready, and the whole run at most.
READY_TIMEOUT = 600.0
RUN_TIMEOUT = 1_800.0


# --------------------------------------------------------------------------- child processes


@dataclass(frozen=True)
class Task:
    """What one child process does once released.

    ``mode``: ``floor`` (bare ``send_batch`` of ``count`` bodies), ``release`` (tick until no job of
    ``queue`` is parked), ``direct`` (``count`` jobs through ``DirectSubmitter``), ``fire`` (tick
    until no schedule of ``tenant`` is due).
    """

    mode: str
    env: dict[str, str]
    tenant: str
    queue: str
    count: int
    clock: datetime
    offset: int = 0


@dataclass(frozen=True)
class ChildResult:
    done: int  # jobs sent (floor, release, direct) or schedules fired (fire)
    ended: float  # time.monotonic() at the end of the last productive step
    cpu: float  # CPU seconds of the child from the start signal to its end


def _child(task: Task, gate: Barrier, results: Any) -> None:
    """Entry point of a child: set up, wait at ``gate``, do ``task``, put a :class:`ChildResult`."""
    try:
        settings = Settings.load(task.env)
        services, close = build_services(settings, pool_size=4)
        try:
            step = _prepare(task, services, settings)
            gate.wait(timeout=READY_TIMEOUT)
            usage0 = os.times()
            done, ended = step()
            usage1 = os.times()
            cpu = (usage1.user - usage0.user) + (usage1.system - usage0.system)
            results.put(ChildResult(done, ended, cpu))
        finally:
            stop_listener = getattr(services.queue, "close", None)
            if callable(stop_listener):
                stop_listener()
            close()
    except BaseException:
        gate.abort()
        results.put(traceback.format_exc())


def _prepare(task: Task, services: Any, settings: Settings) -> Any:
    """The timed step of ``task``, everything before it done."""
    queue, dsn = services.queue, settings.database_url
    if task.mode == "floor":
        submitter = Submitter.for_services(services)
        bodies = [
            submitter.prepare(task=ECHO, tenant=task.tenant, payload={"message": f"nota fiscal {i}"}).body
            for i in range(task.offset, task.offset + task.count)
        ]
        size = queue.max_send_batch

        def floor() -> tuple[int, float]:
            sent = 0
            for start in range(0, len(bodies), size):
                errors = queue.send_batch(
                    task.queue, [OutgoingMessage(b) for b in bodies[start : start + size]]
                )
                sent += sum(1 for error in errors if error is None)
            return sent, time.monotonic()

        return floor
    if task.mode == "direct":
        direct = DirectSubmitter(services)

        def one_by_one() -> tuple[int, float]:
            for i in range(task.offset, task.offset + task.count):
                direct.submit(task=ECHO, tenant=task.tenant, payload={"message": "tick"},
                              key=f"bench:{i}", record_key=True)  # fmt: skip
            return task.count, time.monotonic()

        return one_by_one
    scheduler = Scheduler(services, services.schedules, clock=lambda: task.clock)
    params: tuple[Any, ...]
    if task.mode == "release":
        sql, params = "SELECT count(*) FROM tornado_scheduled_jobs WHERE queue = %s", (task.queue,)
    else:
        sql = "SELECT count(*) FROM tornado_schedules WHERE tenant = %s AND NOT paused AND next_run_at <= %s"
        params = (task.tenant, task.clock)

    def ticks() -> tuple[int, float]:
        done, ended = 0, time.monotonic()
        while True:
            report = scheduler.tick()
            step = report.released if task.mode == "release" else report.fired
            if step:
                done, ended = done + step, time.monotonic()
            elif pg_count(dsn, sql, params) == 0:
                return done, ended
            else:  # the other scheduler holds what is left: look again shortly
                time.sleep(0.005)

    return ticks


@dataclass(frozen=True)
class Run:
    """One measured round: how much, how long, CPU of the children and of the stack's servers."""

    done: int
    seconds: float
    child_cpu: float
    meter: CpuMeter

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def cpu_note(self, who: str) -> str:
        """``CPU per job: schedulers 41 µs, postgres 60 µs``."""
        per = 1e6 / max(1, self.done)
        used = self.meter.used
        stack = "".join(f", {n} {used[n] * per:.0f} µs" for n in ("postgres", "moto") if used.get(n))
        busy = self.meter.machine_busy
        return f"CPU per job: {who} {self.child_cpu * per:.0f} µs{stack}; machine {busy:.0%} busy"


def run_children(stack: BenchStack, tasks: Sequence[Task]) -> Run:
    """Start one process per task, release them together, wait for all; the round's figures."""
    ctx = multiprocessing.get_context("spawn")
    gate = ctx.Barrier(len(tasks) + 1)
    results = ctx.Queue()
    children = [ctx.Process(target=_child, args=(task, gate, results), daemon=True) for task in tasks]
    meter = CpuMeter(stack_groups(stack))
    try:
        for child in children:
            child.start()
        try:
            gate.wait(timeout=READY_TIMEOUT)
        except Exception:
            raise RuntimeError(f"a child failed before the start:\n{results.get(timeout=10)}") from None
        started = time.monotonic()
        meter.start()
        answers = [results.get(timeout=RUN_TIMEOUT) for _ in children]
        meter.stop()
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    failures = [a for a in answers if not isinstance(a, ChildResult)]
    if failures:
        raise RuntimeError("a child failed:\n" + "\n".join(map(str, failures)))
    done = [a for a in answers if isinstance(a, ChildResult)]
    seconds = max(a.ended for a in done) - started
    return Run(sum(a.done for a in done), seconds, sum(a.cpu for a in done), meter)


def split(count: int, parts: int) -> list[tuple[int, int]]:
    """``(offset, count)`` of each of ``parts`` shares of ``count``."""
    sizes = [count // parts + (1 if i < count % parts else 0) for i in range(parts)]
    return [(sum(sizes[:i]), size) for i, size in enumerate(sizes)]


# --------------------------------------------------------------------------- set-up and checks


def park(scoped: Scope, count: int, base: datetime) -> float:
    """Park ``count`` demo.echo jobs due from ``base + DUE_FROM`` over ``DUE_SPAN`` s; seconds it took."""
    services = scoped.services
    assert services.schedules is not None
    submitter = Submitter.for_services(services)
    step = DUE_SPAN / max(1, count)
    began = time.monotonic()
    for start in range(0, count, PARK_CHUNK):
        jobs = []
        for i in range(start, min(count, start + PARK_CHUNK)):
            prepared = submitter.prepare(
                task=ECHO, tenant=scoped.tenant, payload={"message": f"nota fiscal {i}"}
            )
            due = base + timedelta(seconds=DUE_FROM + i * step)
            jobs.append(
                ParkedJob(job=prepared.as_new_job(), queue=prepared.queue, body=prepared.body, due_at=due)
            )
        services.schedules.park(jobs)
        if start and start % 20_000 == 0:
            log(f"scheduler: {start:,} jobs parked")
    return time.monotonic() - began


def add_schedules(scoped: Scope, count: int, due: datetime) -> None:
    """``count`` hourly schedules of the scope's tenant, each next due at ``due``."""
    schedules = scoped.services.schedules
    assert schedules is not None
    for i in range(count):
        schedules.save(Schedule(
            tenant=scoped.tenant, name=f"bench-{i:05d}", task=ECHO, payload={"message": "tick"}, cron=HOURLY,
            timezone="UTC", missed=MissedPolicy.SKIP, next_run_at=due,
        ))  # fmt: skip


def job_statuses(scoped: Scope) -> dict[str, int]:
    with pg_cursor(scoped.dsn) as cur:
        cur.execute(
            "SELECT status, count(*) FROM tornado_jobs WHERE tenant = %s GROUP BY status", (scoped.tenant,)
        )
        return {str(status): int(n) for status, n in cur.fetchall()}


def check_release(scoped: Scope, count: int, released: int) -> str:
    """``exactly once ✔ (...)``, or what is wrong."""
    depth = scoped.stored()
    parked = pg_count(
        scoped.dsn, "SELECT count(*) FROM tornado_scheduled_jobs WHERE queue = %s", (scoped.spec.name,)
    )
    statuses = job_statuses(scoped)
    ok = released == depth == count and parked == 0 and statuses == {"queued": count}
    detail = f"released {released:,}, queue depth {depth:,}, parked left {parked}, job rows {statuses}"
    return ("exactly once ✔" if ok else "CHECK FAILED ✘") + f" ({detail})"


def check_fire(scoped: Scope, count: int, fired: int, clock: datetime) -> str:
    depth = scoped.stored()
    statuses = job_statuses(scoped)
    moved = pg_count(
        scoped.dsn,
        "SELECT count(*) FROM tornado_schedules"
        " WHERE tenant = %s AND next_run_at > %s AND last_job_id IS NOT NULL",
        (scoped.tenant, clock),
    )
    ok = fired == depth == moved == count and statuses == {"queued": count}
    detail = f"fired {fired:,}, queue depth {depth:,}, schedules moved on {moved:,}, job rows {statuses}"
    return ("one job per schedule ✔" if ok else "CHECK FAILED ✘") + f" ({detail})"


@contextlib.contextmanager
def ready_scope(stack: BenchStack, backend: str, tag: str) -> Iterator[Scope]:
    """A fresh scope whose demo.echo queue exists; its schedules are removed at the end."""
    with scope(stack, backend, tag, pool_size=4) as scoped:
        scoped.services.queue.ensure_queue(scoped.spec)
        try:
            yield scoped
        finally:
            with pg_cursor(scoped.dsn) as cur:
                cur.execute("DELETE FROM tornado_schedules WHERE tenant = %s", (scoped.tenant,))


def _task(stack: BenchStack, backend: str, scoped: Scope, mode: str, count: int, clock: datetime,
          offset: int = 0) -> Task:  # fmt: skip
    env = stack.env(backend, scoped.prefix)
    return Task(mode, env, scoped.tenant, scoped.spec.name, count, clock, offset)


# --------------------------------------------------------------------------- rounds


def _rows(stack: BenchStack, backend: str, jobs: int, schedules: int) -> list[Row]:
    label = backend_label(backend)
    rows: list[Row] = []
    base = datetime.now(UTC)
    clock = base + timedelta(seconds=CLOCK_AHEAD)
    park_seconds = 0.0
    for processes in (1, 2):
        with ready_scope(stack, backend, "sfl") as scoped:
            log(f"scheduler/{backend}: floor, {jobs:,} bodies by bare send_batch, {processes} process(es)")
            shares = split(jobs, processes)
            floor = run_children(
                stack, [_task(stack, backend, scoped, "floor", n, clock, offset) for offset, n in shares]
            )
            floor_ok = floor.done == scoped.stored() == jobs
        with ready_scope(stack, backend, "srl") as scoped:
            log(f"scheduler/{backend}: parking {jobs:,} jobs")
            park_seconds = park(scoped, jobs, base)
            log(f"scheduler/{backend}: releasing them with {processes} scheduler(s)")
            tasks = [_task(stack, backend, scoped, "release", jobs, clock) for _ in range(processes)]
            released = run_children(stack, tasks)
            check = check_release(scoped, jobs, released.done)
        who = "scheduler" if processes == 1 else "schedulers"
        rows.append(Row(
            label, f"due jobs queued/s, {processes} {who} ({jobs:,} parked)", f"{released.rate:,.0f}",
            f"{floor.rate:,.0f}", ratio(released.rate, floor.rate), "",
            f"{jobs:,} in {released.seconds:.1f} s (floor {floor.seconds:.1f} s"
            f"{'' if floor_ok else ', FLOOR COUNT WRONG'}); {released.cpu_note(who)}; {check}",
        ))  # fmt: skip
        if processes == 1:
            rows.append(Row(
                label, f"setup: jobs parked/s (SchedulesPort.park, {PARK_CHUNK:,} per commit)",
                f"{jobs / park_seconds:,.0f}",
                note=f"{jobs:,} prepared and parked in {park_seconds:.1f} s; not timed with the release",
            ))  # fmt: skip
    # Periodic side: one occurrence of each schedule due at the moved clock, after every parked job.
    hour = next_occurrence(HOURLY, "UTC", base + timedelta(seconds=2 * CLOCK_AHEAD))
    fire_clock = hour + timedelta(seconds=1)
    with ready_scope(stack, backend, "sdb") as scoped:
        log(f"scheduler/{backend}: floor, {schedules:,} jobs one by one through DirectSubmitter")
        direct = run_children(stack, [_task(stack, backend, scoped, "direct", schedules, fire_clock)])
        direct_ok = direct.done == scoped.stored() == schedules
    for processes in (1, 2):
        with ready_scope(stack, backend, "sfi") as scoped:
            add_schedules(scoped, schedules, hour)
            log(f"scheduler/{backend}: firing {schedules:,} due schedules with {processes} scheduler(s)")
            tasks = [_task(stack, backend, scoped, "fire", schedules, fire_clock) for _ in range(processes)]
            fired = run_children(stack, tasks)
            check = check_fire(scoped, schedules, fired.done, fire_clock)
        who = "scheduler" if processes == 1 else "schedulers"
        rows.append(Row(
            label, f"schedules fired/s, {processes} {who} ({schedules:,} due, one occurrence each)",
            f"{fired.rate:,.0f}", f"{direct.rate:,.0f}", ratio(fired.rate, direct.rate), "",
            f"{schedules:,} in {fired.seconds:.2f} s (DirectSubmitter one by one: {direct.seconds:.2f} s"
            f"{'' if direct_ok else ', FLOOR COUNT WRONG'}); {fired.cpu_note(who)}; {check}",
        ))  # fmt: skip
    return rows


def run(
    stack: BenchStack | None = None,
    *,
    backends: Sequence[str] = BACKENDS,
    jobs: int = 100_000,
    sqs_jobs: int = 2_000,
    schedules: int = 1_000,
) -> str:
    """Run the scheduler benchmark and print its table; returns the table's text."""
    rows = rows_per_backend(
        stack,
        backends,
        lambda bench_stack, backend: _rows(
            bench_stack, backend, jobs if backend == "postgres" else sqs_jobs, schedules
        ),
    )
    notes = [
        "release: jobs parked through SchedulesPort.park, due times spread over 1,000 s; each scheduler is "
        f"its own process calling Scheduler.tick() with the clock {CLOCK_AHEAD:,.0f} s ahead (all due) until "
        "no job of the queue is parked; rate = N / (start signal → end of the last tick that released any)",
        "baseline of the release (the cost floor): the same kind of demo.echo bodies sent by the bare "
        "QueuePort.send_batch in the queue's largest batches (PostgreSQL 500, SQS 10), by as many processes, "
        "to an empty queue; ratio = scheduler / floor (1.00: the bookkeeping is free)",
        f"periodic: schedules with cron '{HOURLY}' (UTC, skip) each next due at the same hour, the clock 1 s "
        "past it; baseline: as many demo.echo jobs queued one by one through DirectSubmitter.submit (what a "
        "firing does inside), one process",
        "checks after each round: the queue holds exactly N messages, no parked row of its queue is left, "
        "every job row of the round's tenant is 'queued' (periodic: one job per schedule, each moved on)",
        "CPU per job: the scheduler (or floor) processes' own CPU, then the stack's servers, over the round",
    ]
    return print_table("Scheduler: due jobs queued per second, schedules fired per second", rows, notes)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=None, help="parked jobs N on postgres (default 100,000)")
    parser.add_argument(
        "--sqs-jobs", type=int, default=None, help="parked jobs N on sqs (default 2,000: moto is slow)"
    )
    parser.add_argument("--schedules", type=int, default=None, help="due schedules (default 1,000)")
    run(**bench_args(parser))


if __name__ == "__main__":
    main()
