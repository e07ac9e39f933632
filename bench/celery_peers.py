"""Tornado's worker beside Celery's, on the same brokers, in one run (issue 15).

Rows, each with a no-op job and a 20 ms sleep (I/O-bound), one worker process of
``--concurrency`` threads (16 by default) each:

1. Tornado, PostgreSQL queue;  2. Tornado, SQS (moto);  3. Tornado's Celery engine on Redis
(``TORNADO_QUEUE=celery``);  4. Celery on Redis;  5. Celery on kombu's SQS transport (the
same moto endpoint);  6. Tornado's Celery engine on RabbitMQ (quorum queues);  7. Celery on
RabbitMQ (its default AMQP transport, a classic queue named apart from Tornado's).

For each row: **jobs/s**, N pre-queued jobs drained (first handler start to last handler
end); **p50/p99 submit-to-done** at a steady offered load below saturation (one job
submitted every 1/rate s from this process; ``sent`` in the job, ``ended`` by the handler:
the same function records both systems' jobs); **queue calls per job** over that steady run
(producer and worker, idle polls included): SQS requests at moto (its recorder), Redis
requests (``MONITOR``; commands executed, Lua included, from ``INFO commandstats``),
RabbitMQ message operations (publish, deliver, get, empty get, ack: the management API's
counters; in brackets the TCP reads of the clients' connections), PostgreSQL statements
(``pg_stat_statements``); **worker CPU** per 1,000 jobs of the drain.

Everything runs on 127.0.0.1: the bench's local stack (PostgreSQL + moto), a ``redis-server``
and a RabbitMQ node it starts (``tornado_core.devstack.brokers``: temp folders, free ports).
Needs ``celery``, ``redis`` and ``pycurl`` (kombu's SQS transport); without pycurl, or without
``rabbitmq-server``, the rows that need it say why they are missing.

    .venv/bin/python -m bench.celery_peers [--jobs N] [--concurrency C] [--quick]
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from bench._common import BenchStack, bench_parser, local_stack, log

if TYPE_CHECKING:  # the modules that import Celery are imported once it is known to be installed
    from bench._celery_brokers import RedisServer
    from bench._celery_measure import Counters, Drain, Steady
    from bench._celery_rabbitmq import RabbitServer
    from bench._celery_systems import System

#: The two workloads: (name, seconds each job sleeps).
WORKLOADS = (("no-op", 0.0), ("sleep 20 ms", 0.020))
#: Distributions the run needs.
REQUIRED = ("celery", "kombu", "redis")
#: Threads of every worker process.
CONCURRENCY = 16


@dataclass(frozen=True)
class Plan:
    """Sizes of one run."""

    jobs: int = 5000
    sqs_jobs: int = 300
    rate: float = 200.0
    sqs_rate: float = 50.0
    seconds: float = 10.0
    concurrency: int = CONCURRENCY
    timeout: float = 120.0
    workloads: tuple[str, ...] = tuple(name for name, _ in WORKLOADS)

    @classmethod
    def quick(cls, concurrency: int = CONCURRENCY) -> Plan:
        """Short runs of every row, the no-op workload only (a smoke test of the benchmark)."""
        return cls(jobs=800, sqs_jobs=100, seconds=2.5, concurrency=concurrency, workloads=("no-op",))


@dataclass(frozen=True)
class Slot:
    """One row of the table: a system on a broker, and how to open it (or why it cannot run)."""

    system: str
    broker: str
    open: Callable[[], AbstractContextManager[System]] | None
    missing: str = ""


def _slots(stack: BenchStack, redis: RedisServer, rabbit: RabbitServer | str) -> list[Slot]:
    """The rows; ``rabbit`` is the running node, or why it is not running."""
    from bench._celery_systems import celery_rabbitmq, celery_redis, celery_sqs, tornado_system

    celery_sqs_missing = (
        ""
        if importlib.util.find_spec("pycurl")
        else ("not run: pycurl is not installed (kombu's SQS transport needs it: pip install pycurl)")
    )
    if isinstance(rabbit, str):
        rabbit_rows = [
            Slot(system, "rabbitmq", None, f"not run: {rabbit}") for system in ("tornado", "celery")
        ]
    else:
        node = rabbit
        rabbit_rows = [
            Slot("tornado", "rabbitmq", lambda: tornado_system(stack, "celery", node)),
            Slot("celery", "rabbitmq", lambda: celery_rabbitmq(stack, node)),
        ]
    return [
        Slot("tornado", "postgres", lambda: tornado_system(stack, "postgres")),
        Slot("tornado", "sqs (moto)", lambda: tornado_system(stack, "sqs")),
        Slot("tornado", "redis", lambda: tornado_system(stack, "celery", redis)),
        Slot("celery", "redis", lambda: celery_redis(stack, redis)),
        Slot(
            "celery",
            "sqs (moto)",
            None if celery_sqs_missing else (lambda: celery_sqs(stack)),
            celery_sqs_missing,
        ),
        *rabbit_rows,
    ]


#: The order rows are measured in: the two systems of a broker one after the other.
_RUN_ORDER = (2, 3, 5, 6, 1, 4, 0)


def _measure_slot(
    slot: Slot, plan: Plan, counters: Counters, folder: Path, seconds: float
) -> tuple[Drain, Steady, str]:
    from bench._celery_measure import measure

    assert slot.open is not None
    sqs = slot.broker.startswith("sqs")
    with slot.open() as system:
        drained, steady = measure(
            system,
            counters,
            folder,
            drain_jobs=plan.sqs_jobs if sqs else plan.jobs,
            concurrency=plan.concurrency,
            rate=plan.sqs_rate if sqs else plan.rate,
            seconds=plan.seconds,
            job_seconds=seconds,
            timeout=plan.timeout,
        )
        return drained, steady, system.describe(plan.concurrency)


def run(plan: Plan | None = None) -> str:
    """Measure every row, print the table; returns its text."""
    from bench import _celery_report as report
    from bench._celery_brokers import PgCalls, RedisCalls, SqsCalls, load_pg_stat_statements, redis_server
    from bench._celery_measure import Counters
    from bench._celery_rabbitmq import RabbitCalls

    plan = plan or Plan()
    load_before = os.getloadavg()
    started = time.monotonic()
    results: list[report.Result] = []
    with local_stack() as stack, redis_server() as redis, _rabbitmq() as rabbit, _folder() as folder:
        statements = load_pg_stat_statements(stack, own_stack=not os.environ.get("TORNADO_STATE_DIR"))
        pg = PgCalls(stack.info.database_url, statements=statements)
        amqp = None if isinstance(rabbit, str) else RabbitCalls(rabbit)
        counters = Counters(RedisCalls(redis), SqsCalls(stack.info.aws_endpoint_url), pg, amqp)
        slots = _slots(stack, redis, rabbit)
        for workload, seconds in [w for w in WORKLOADS if w[0] in plan.workloads]:
            for position in _RUN_ORDER:
                slot = slots[position]
                if slot.open is None:
                    results.append(
                        report.Result(position, slot.system, slot.broker, workload, note=slot.missing)
                    )
                    continue
                log(f"celery_peers: {workload}, {slot.system} on {slot.broker}")
                # RabbitMQ's counters wait for its management API to settle: only on its own rows
                own = counters if slot.broker == "rabbitmq" else dataclasses.replace(counters, rabbit=None)
                drained, steady, how = _measure_slot(slot, plan, own, folder, seconds)
                results.append(
                    report.Result(position, slot.system, slot.broker, workload, drained, steady, how)
                )
    log(f"celery_peers: done in {time.monotonic() - started:.0f}s")
    return report.table(results, plan_note(plan), load_before, pg_statements=statements)


def plan_note(plan: Plan) -> str:
    """The sizes, for the table's notes."""
    return (
        f"drain N={plan.jobs} (sqs rows: {plan.sqs_jobs}); steady {plan.rate:g} jobs/s (sqs rows: "
        f"{plan.sqs_rate:g}/s: moto's calls are slow) for {plan.seconds:g}s; "
        f"one worker process, {plan.concurrency} threads"
    )


@contextlib.contextmanager
def _rabbitmq() -> Iterator[RabbitServer | str]:
    """The RabbitMQ node for the run, or why it could not start (its rows then say so)."""
    from bench._celery_rabbitmq import rabbitmq_server
    from tornado_core.devstack.brokers import BrokerUnavailable

    started = contextlib.ExitStack()
    try:
        node = started.enter_context(rabbitmq_server())
    except BrokerUnavailable as exc:
        log(f"celery_peers: no RabbitMQ rows: {exc}")
        yield str(exc).splitlines()[0]
        return
    with started:
        yield node


@contextlib.contextmanager
def _folder() -> Iterator[Path]:
    """A temp folder for the done files (removed at the end)."""
    with tempfile.TemporaryDirectory(prefix="tornado-bench-celery-") as name:
        yield Path(name)


def missing() -> list[str]:
    """Required packages that are not installed."""
    absent = []
    for distribution in REQUIRED:
        try:
            metadata.version(distribution)
        except metadata.PackageNotFoundError:
            absent.append(distribution)
    return absent


def main() -> None:
    """Command line; exits 2 when Celery or redis-py is not installed."""
    parser = bench_parser(__doc__)
    parser.add_argument("--jobs", type=int, help="N of each drain on PostgreSQL and Redis (default 5000)")
    parser.add_argument("--sqs-jobs", type=int, help="N of each drain on SQS (default 300)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="threads of every worker")
    parser.add_argument("--rate", type=float, help="steady jobs/s on PostgreSQL and Redis (default 200)")
    parser.add_argument("--sqs-rate", type=float, help="steady jobs/s on SQS (default 50)")
    parser.add_argument("--seconds", type=float, help="seconds of each steady run (default 10)")
    parser.add_argument("--quick", action="store_true", help="short runs, no-op workload only (~90 s)")
    args = parser.parse_args()
    absent = missing()
    if absent:
        print(f"bench.celery_peers: not installed: {', '.join(absent)}", file=sys.stderr)
        sys.exit(2)
    base = Plan.quick(args.concurrency) if args.quick else Plan(concurrency=args.concurrency)
    given = {
        field: value
        for field, value in (
            ("jobs", args.jobs),
            ("sqs_jobs", args.sqs_jobs),
            ("rate", args.rate),
            ("sqs_rate", args.sqs_rate),
            ("seconds", args.seconds),
        )
        if value is not None
    }
    run(Plan(**{**base.__dict__, **given}))


if __name__ == "__main__":
    main()
