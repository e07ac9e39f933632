"""Tornado side by side with pgqueuer and procrastinate, on the same PostgreSQL server, in one run.

Everything runs against the bench's own local stack (``DevStack``: one PostgreSQL
server with ``fsync`` and ``synchronous_commit`` on); each peer gets a fresh
database of its own on that server, its tables installed with its own installer,
dropped at the end.

* **Worker drain** (N no-op jobs pre-queued, one worker process, concurrency 4 and
  16): Tornado is ``bench.worker_throughput.run_worker`` (one ``tornado worker``
  process, rate from the job store); each peer's worker runs in a child process
  of its own (``python -m bench._peers_<peer>``). Same clock for all: from the
  first job started to the last job's completion recorded, both timestamps read
  from the system's own tables (PostgreSQL ``now()`` of the same server) once
  every job is done.
* **Enqueue** (jobs/s, one thread, sequential calls): one job per call (N=2,000)
  and 100 jobs per call (N=100,000: several seconds of steady state, where 20,000 lasted about
  one). Tornado in-process (what the API does:
  ``Submitter.prepare``, or ``prepare_many`` for a batch, + ``send_recorded``) and over
  HTTP with ``TornadoClient`` (``submit`` / ``submit_many``) against one
  ``tornado api`` process; pgqueuer ``Queries.enqueue`` (scalar or lists);
  procrastinate ``defer_async`` / ``batch_defer_async``.

Every measure starts on an equally quiet server (:func:`bench._peers_base.quiet_server`:
``VACUUM ANALYZE`` of every database, then a ``CHECKPOINT``).

**Taking turns.** This machine's speed can move by half within minutes, so one run of each system
one after the other can favour either. After the table's runs, the client's bulk submit (16 in
flight, one API process and one per core) and pgqueuer's batched enqueue take ``--turns`` more
turns each, one after the other; the notes give each turn's ratio and their median.

CPU per job is read from /proc: the worker process tree for the drains, this
process for the in-process producers, the API process plus this client for HTTP.

The peers are an optional extra: ``pip install -e '.[bench-peers]'``.

    .venv/bin/python -m bench.peers [--jobs 10000] [--concurrency 4 --concurrency 16]
        [--single-jobs 2000] [--batch-jobs 100000] [--batch-size 100] [--turns 3]
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import _peers_tornado as tornado
from bench._common import BenchStack, bench_parser, log, print_grid, stack_from_args
from bench._peers_base import Peer, Result, drain, enqueue, peer_database, quiet_server

EXTRA = "bench-peers"
#: Modules the peers need, and the distribution that provides each.
REQUIRED = {
    "pgqueuer": "pgqueuer",
    "asyncpg": "asyncpg (pgqueuer's driver)",
    "procrastinate": "procrastinate",
    "psycopg": "psycopg 3 (procrastinate's driver)",
    "psycopg_pool": "psycopg-pool",
}
CONCURRENCIES = (4, 16)
#: Requests in flight in the Python client's parallel bulk submit (``submit_many(parallel=...)``):
#: from 4 to 16 the API's commits grow and its CPU per job falls (docs/benchmarks.md).
PARALLEL = 16
BASELINE = "pgqueuer"


def missing() -> list[str]:
    """The peers' packages that are not installed."""
    absent = []
    for module, what in REQUIRED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(what)
    return absent


def _drain_measure(concurrency: int) -> str:
    return f"worker drain, 1 process, concurrency {concurrency}"


def _enqueue_measure(batch: int) -> str:
    return "enqueue, 1 job per call" if batch == 1 else f"enqueue, {batch} jobs per call"


def run(
    stack: BenchStack | None = None,
    *,
    jobs: int = 10_000,
    concurrencies: Sequence[int] = CONCURRENCIES,
    single_jobs: int = 2_000,
    batch_jobs: int = 100_000,
    batch_size: int = 100,
    turns: int = 3,
    timeout: float = 120.0,
) -> str:
    """Measure every system, print the table; returns its text.

    Args:
        stack: A running bench stack to use (``python -m bench`` shares one); else one is started.
        jobs: N of each worker drain.
        concurrencies: Worker concurrencies to drain with.
        single_jobs: N of the one-job-per-call enqueue runs.
        batch_jobs: N of the batched enqueue runs.
        batch_size: Jobs per call of the batched runs.
        turns: Turns the client's bulk submit and pgqueuer's batched enqueue take after the table's
            runs (0: none).
        timeout: Seconds a drain may take before the run fails.
    """
    from bench._peers_pgqueuer import PgQueuerPeer  # imported here: the peers are optional
    from bench._peers_procrastinate import ProcrastinatePeer

    peers: list[Peer] = [PgQueuerPeer(), ProcrastinatePeer()]
    load_at_start = os.getloadavg()
    started = time.monotonic()
    results: list[Result] = []
    with stack_from_args(stack) as bench, contextlib.ExitStack() as databases:
        dsns = {peer.name: databases.enter_context(peer_database(bench, peer)) for peer in peers}
        every_database = [bench.info.database_url, *dsns.values()]

        def measured(run: Callable[..., Result], *args: Any, **kwargs: Any) -> None:
            quiet_server(every_database)  # no system pays for the last one's vacuum or checkpoint
            results.append(run(*args, **kwargs))

        for concurrency in concurrencies:
            measure = _drain_measure(concurrency)
            log(f"peers: {measure}, N={jobs}: tornado")
            measured(tornado.drain, bench, measure, jobs, concurrency, timeout)
            for peer in peers:
                log(f"peers: {measure}, N={jobs}: {peer.name}")
                measured(drain, bench, peer, dsns[peer.name], measure, jobs, concurrency, timeout)
        for count, batch in ((single_jobs, 1), (batch_jobs, batch_size)):
            measure = _enqueue_measure(batch)
            log(f"peers: {measure}, N={count}: tornado in-process, tornado HTTP")
            measured(tornado.enqueue_in_process, bench, measure, count, batch)
            measured(tornado.enqueue_http, bench, measure, count, batch)
            if batch > 1:  # the client's bulk submit with requests in flight on several connections
                measured(tornado.enqueue_http, bench, measure, count, batch, parallel=PARALLEL)
                # and to the API as deployed on a machine of its own: one process per core
                cores = os.cpu_count() or 1
                measured(
                    tornado.enqueue_http, bench, measure, count, batch, parallel=PARALLEL, processes=cores
                )
            for peer in peers:
                log(f"peers: {measure}, N={count}: {peer.name}")
                measured(enqueue, bench, peer, dsns[peer.name], measure, count, batch)
        rounds = _take_turns(
            bench, peers[0], dsns[peers[0].name], every_database, batch_jobs, batch_size, turns
        )
    log(f"peers: done in {time.monotonic() - started:.0f}s")
    return _table(results, peers, load_at_start, rounds)


def _take_turns(
    bench: BenchStack, peer: Peer, dsn: str, databases: list[str], count: int, batch: int, turns: int
) -> list[str]:
    """The client's bulk submit and ``peer``'s batched enqueue, one after the other, ``turns`` times.

    Returns:
        A note line per API layout: each turn's ratio to ``peer`` and their median.
    """
    cores = os.cpu_count() or 1
    ratios: dict[int, list[float]] = {1: [], cores: []}
    measure = _enqueue_measure(batch)
    for turn in range(turns):
        log(f"peers: taking turns, {turn + 1} of {turns}: {peer.name}, then the bulk submit")
        quiet_server(databases)
        base = enqueue(bench, peer, dsn, measure, count, batch).rate
        for processes in ratios:
            quiet_server(databases)
            rate = tornado.enqueue_http(
                bench, measure, count, batch, parallel=PARALLEL, processes=processes
            ).rate
            ratios[processes].append(rate / base if base else 0.0)
    return [
        f"taking turns ({turns} turns, N={count}, {batch} per call): the client's bulk submit "
        f"({PARALLEL} in flight, {processes} API process{'es' if processes > 1 else ''}) against "
        f"{peer.name}'s batched enqueue: {', '.join(f'{r:.2f}' for r in found)}; median "
        f"{statistics.median(found):.2f}"
        for processes, found in ratios.items()
        if found
    ]


def _table(
    rows: Sequence[Result], peers: Sequence[Peer], load_at_start: tuple[float, ...], turns: Sequence[str]
) -> str:
    base = {r.measure: r.rate for r in rows if r.system == BASELINE}
    cells = [
        (
            r.system,
            r.measure,
            f"{r.rate:,.0f}",
            f"{r.cpu_us:,.0f}",
            f"{r.rate / base[r.measure]:.2f}" if base.get(r.measure) else "n/a",
            r.note,
        )
        for r in rows
    ]
    versions = ", ".join(f"{p.name} {p.version()}" for p in peers)
    load = ", ".join(f"{x:.2f}" for x in load_at_start)
    notes = [
        f"versions: {versions}; all on the same PostgreSQL server (fsync on, synchronous_commit on), "
        "each peer in a fresh database of its own; pgqueuer's tables installed durable (logged)",
        f"load average at the start {load} (at the end: the line above); another engineer may be "
        "benchmarking on this 2-core machine: compare ratios and CPU per job more than rates",
        f"ratio = jobs/s / {BASELINE}'s jobs/s for the same measure (Tornado HTTP rows: against "
        f"{BASELINE}'s in-process enqueue)",
        "drain clock, read from each system's own tables once every job is done: Tornado "
        "min(started_at) to max(finished_at) of tornado_jobs; pgqueuer min(created) of its 'picked' "
        "to max(created) of its 'successful' pgqueuer_log rows (the row is deleted from the queue "
        "and logged in one statement); procrastinate min(at) of 'started' to max(at) of 'succeeded' "
        "procrastinate_events; completion detected by polling (every 0.1 s) tornado_jobs status "
        "'succeeded', pgqueuer_log status 'successful', procrastinate_jobs status 'succeeded'",
        "CPU us/job: drains = the worker process tree from ready (imports and connections done) to all "
        "done; in-process enqueue = this process (pgqueuer and procrastinate run their asyncio loop "
        "here); Tornado HTTP = API process + this client",
        "writes per job: Tornado's worker records a claim and a success in tornado_jobs and deletes the "
        "queue row (how many jobs share a transaction is up to the checked-out worker: claims per "
        "receive, group-committed completions); pgqueuer picks up to c jobs per dequeue and logs "
        "completions in batches (JobStatusLogBuffer, up to batch_size per statement); procrastinate "
        "commits a fetch and a finish per job",
        "Tornado's enqueue is validated (pydantic), gets a job id and an envelope, and writes two rows "
        "(queue + job store) in one commit; the peers write one row (plus their log/event row by trigger "
        "or CTE)",
        *turns,
    ]
    return print_grid(
        "Tornado vs pgqueuer vs procrastinate, same PostgreSQL server",
        ("system", "measure", "jobs/s", "CPU us/job", f"ratio to {BASELINE}", "note"),
        cells,
        notes,
    )


def main() -> None:
    """Command line; exits 2 when a peer is not installed."""
    parser = bench_parser(__doc__)
    parser.add_argument("--jobs", type=int, default=10_000, help="N of each worker drain")
    parser.add_argument(
        "--concurrency",
        dest="concurrencies",
        metavar="C",
        type=int,
        action="append",
        help="worker concurrency (repeatable; default 4 and 16)",
    )
    parser.add_argument("--single-jobs", type=int, default=2_000, help="N of the 1-job-per-call enqueue")
    parser.add_argument("--batch-jobs", type=int, default=100_000, help="N of the batched enqueue")
    parser.add_argument("--batch-size", type=int, default=100, help="jobs per call of the batched enqueue")
    parser.add_argument(
        "--turns", type=int, default=3, help="turns the bulk submit and pgqueuer's batched enqueue take after"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a drain may take")
    args = parser.parse_args()
    absent = missing()
    if absent:
        print(
            f"bench.peers: not installed: {', '.join(absent)}.\n"
            f"The peers are an optional extra; install it with:  .venv/bin/pip install -e '.[{EXTRA}]'",
            file=sys.stderr,
        )
        sys.exit(2)
    options = {k: v for k, v in vars(args).items() if v is not None}
    run(**options)


if __name__ == "__main__":
    main()
