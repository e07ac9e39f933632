"""The table of ``bench.celery_peers``: one line per system, broker and workload, and its notes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata

from bench._celery_brokers import Calls
from bench._celery_measure import Drain, Steady, describe_latency, kinds, per_job
from bench._common import print_grid

#: The broker a Tornado row is compared on when Celery has no row on its own (PostgreSQL).
FALLBACK_BROKER = "redis"


@dataclass(frozen=True)
class Result:
    """One row: what was measured, or why it was not."""

    position: int
    system: str
    broker: str
    workload: str
    drain: Drain | None = None
    steady: Steady | None = None
    how: str = ""
    note: str = ""


def _queue_calls(result: Result, calls: dict[str, Calls], jobs: int) -> str:
    if result.broker == "postgres":
        return f"{per_job(calls['pg'], jobs):.1f} (PG statements)"
    if result.broker == "redis":
        return f"{per_job(calls['redis'], jobs):.2f} ({per_job(calls['redis executed'], jobs):.1f} executed)"
    if result.broker == "rabbitmq":
        return (
            f"{per_job(calls['amqp'], jobs):.2f} msg ops ({per_job(calls['amqp reads'], jobs):.1f} TCP reads)"
        )
    return f"{per_job(calls['sqs'], jobs):.2f}"


def _versus(result: Result, rates: dict[tuple[str, str, str], float]) -> str:
    drained = result.drain
    if drained is None:
        return ""
    if result.system == "celery":
        return "1.00"
    base = rates.get(("celery", result.broker, result.workload))
    if base:
        return f"{drained.rate / base:.2f}"
    base = rates.get(("celery", FALLBACK_BROKER, result.workload))
    return f"{drained.rate / base:.2f} (vs {FALLBACK_BROKER})" if base else "n/a"


def _row(result: Result, rates: dict[tuple[str, str, str], float]) -> tuple[str, ...]:
    head = (result.system, result.broker, result.workload)
    drained, steady = result.drain, result.steady
    if drained is None or steady is None:
        return (*head, "-", "", "-", "-", "-", "-", "-", result.note)
    jobs = steady.sent
    pg = per_job(steady.calls["pg"], jobs)
    note = (
        f"{result.how}; drain N={drained.count} in {drained.seconds:.2f}s; "
        f"steady {describe_latency(steady)}; "
        f"per job: {kinds(list(steady.calls.items()), jobs) or 'no broker calls'}; PG commits/job "
        f"{per_job(steady.calls['pg commits'], jobs):.2f}; at saturation (the drain, worker alone): queue "
        f"calls/job {_queue_calls(result, drained.calls, drained.count)}, PG stmts/job "
        f"{per_job(drained.calls['pg'], drained.count):.1f}; worker CPU at the steady rate "
        f"{steady.worker_cpu / jobs * 1000:.2f} s/1k jobs"
    )
    return (
        *head,
        f"{drained.rate:,.0f}",
        _versus(result, rates),
        f"{steady.p(50):.1f}",
        f"{steady.p(99):.1f}",
        _queue_calls(result, steady.calls, jobs),
        f"{pg:.1f}",
        f"{drained.cpu / drained.count * 1000:.2f}",
        note,
    )


def table(
    results: Sequence[Result], sizes: str, load_before: tuple[float, ...], *, pg_statements: bool
) -> str:
    """Print (and return) the table."""
    order = {name: i for i, name in enumerate(dict.fromkeys(r.workload for r in results))}
    ordered = sorted(results, key=lambda r: (order[r.workload], r.position))
    rates = {(r.system, r.broker, r.workload): r.drain.rate for r in ordered if r.drain is not None}
    header = (
        "system", "broker", "workload", "jobs/s", "vs celery", "p50 ms", "p99 ms",
        "queue calls/job", "PG stmts/job", "worker CPU s/1k jobs", "note",
    )  # fmt: skip
    load = ", ".join(f"{x:.2f}" for x in load_before)
    notes = [
        f"{sizes}; load average at the start {load} (at the end: the line above); other sessions share "
        "this 2-core machine: compare ratios, calls and CPU per job more than rates",
        f"versions: celery {metadata.version('celery')}, kombu {metadata.version('kombu')}, redis-py "
        f"{metadata.version('redis')}; Celery: acks_late + reject_on_worker_lost (as durable as Celery "
        "gets: acknowledged after the task returns), JSON, no result backend (it records nothing about "
        "a job); Tornado: every job's claim and outcome committed to PostgreSQL (fsync on) besides the queue",
        "jobs/s: N pre-queued jobs drained by a worker started afterwards, first handler start to last "
        "handler end (the handler's own clock); vs celery: jobs/s over Celery's on the same broker "
        "(PostgreSQL: Celery has no PostgreSQL broker, so against Celery on Redis)",
        "p50/p99: submit-to-done at the steady rate, `ended - sent` with `sent` = time.time() just "
        "before the submit call (in the job's payload/arguments) and `ended` = time.time() when the "
        "handler returned, both written by the same function (bench/_celery_tasks.py) for both systems; "
        "Tornado's success commit and Celery's ack come after `ended` and are not in it",
        "queue calls/job: over the steady run, producer + worker, idle polls included (the note gives "
        "them at saturation too: the drain, the worker alone): SQS requests "
        "counted by moto's recorder; Redis: the clients' round trips, seen by MONITOR (a Lua script "
        "call is one, a MULTI/EXEC pipeline is one), and in brackets every command executed, those "
        "inside scripts and pipelines included (INFO commandstats); RabbitMQ: message operations from "
        "the management API's node-wide counters (publish + deliver (pushed to a consumer) + get + empty "
        "get (basic.get) + ack (per message, a multiple ack counts each); confirms and redeliveries are "
        "listed in the note, not added), not AMQP frames: queue declarations, qos and the confirms' own "
        "frames are not in it; in brackets the TCP reads the broker made on the clients' connections "
        "(recv_cnt: at least one per round trip, writes sent back to back may share one); on PostgreSQL the "
        "queue and the job store share the database, so it is every statement, BEGIN/COMMIT included",
        "PG stmts/job: pg_stat_statements calls in the jobs database (BEGIN/COMMIT included): Tornado's "
        "job store on every broker, and its queue on PostgreSQL"
        + ("" if pg_statements else " (pg_stat_statements unavailable on a reused stack: read 0)"),
        "worker CPU: the worker process tree from the first job start to the last job end of the "
        "drain (/proc, sampled every 0.1 s), start-up excluded",
    ]
    return print_grid(
        "Tornado beside Celery: one worker process, same brokers",
        header,
        [_row(r, rates) for r in ordered],
        notes,
    )
