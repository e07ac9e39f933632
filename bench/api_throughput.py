"""Bench 1: jobs the HTTP API accepts per second at 64 concurrent connections.

For each queue backend, in the same run:

* **Tornado**: ``POST /v1/jobs`` of ``demo.echo`` with a real tenant token from a
  closed-loop generator with 64 keep-alive connections (wrk, one thread); only
  202 answers count, every other status is counted and reported. The API runs
  as one process (the ``tornado api`` command) and as two pre-forked processes
  (``tornado api --processes 2``).
* **Baselines**, the same number of messages stored by the bare adapter, no HTTP:

  - PostgreSQL, headline: *64 direct producers*: 64 threads, each with its own
    connection, each storing one message per ``PostgresQueue.send_batch`` call.
    This is what the API replaces (every ERP web worker writing to the queue
    itself) at the same concurrency, so it is the baseline of the target ratio.
  - PostgreSQL, *storage ceiling*: replay of the exact batch sizes the API's
    micro-batcher produced in that run (read back from the queue table: the rows
    of one batch share one transaction id, ``xmin``), one
    ``send_batch`` after the other (one lane per API process, as the batcher
    keeps one flush in flight per queue and process). It shows how much of the
    API's time the database work is; no target.
  - SQS: a plain boto3 ``SendMessageBatch`` loop (10 per call, one thread).
* **HTTP ceiling** (PostgreSQL section): a trivial tornado POST handler that
  parses the same body and answers 202 JSON, one and two processes.

moto's cost per call grows with queue depth, so the SQS runs are bounded by
count (default 300 accepted requests) on a fresh queue, and the baseline stores
the same count on a fresh queue: both go from depth 0 to the same depth.

    .venv/bin/python -m bench.api_throughput [--duration 10] [--sqs-jobs 300] [--backend postgres]
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bench._common import (
    BACKENDS,
    ECHO_BODY,
    BenchStack,
    ClientRun,
    CpuMeter,
    Row,
    Scope,
    Stopwatch,
    api_server,
    bench_args,
    bench_parser,
    hello_server,
    log,
    pg_cursor,
    prepared_jobs,
    print_table,
    ratio,
    reset_queue,
    rows_per_backend,
    run_gated,
    scope,
    stack_groups,
    warm_up,
)
from bench._loadgen import WRK_HINT, LoadResult, closed_loop, generator_name
from tornado_core.adapters.aws.clients import make_client
from tornado_core.ports.queue import OutgoingMessage

CONNECTIONS = 64
TARGET = 0.8
BATCH_SIZE = 100
#: Jobs a second one API process accepts in batches of 100 (the throughput issue's target).
BATCH_TARGET = 20_000


@dataclass
class ApiRun:
    """One measured API run."""

    load: LoadResult
    stored: int
    batch_sizes: Counter[int]
    cpu: CpuMeter
    processes: int
    kind: RequestKind

    @property
    def jobs(self) -> int:
        """Jobs accepted: answers of the accepting status times the jobs each carried."""
        return self.load.count(self.kind.status) * self.kind.jobs

    @property
    def accepted(self) -> float:
        return self.load.rate(self.kind.status) * self.kind.jobs

    def note(self) -> str:
        sizes = self.batch_sizes
        batches = sum(sizes.values())
        mean = f"{sum(k * v for k, v in sizes.items()) / batches:.1f}" if batches else "n/a"
        api_cpu = self.cpu.used.get("api", 0.0)
        per_job = f"{api_cpu / self.jobs * 1e6:.0f} us API CPU/job" if self.jobs else "no job accepted"
        status = self.kind.status
        return (
            f"{self.load.generator}: {self.load.count(status)} x {status} in {self.load.duration_s:.1f}s; "
            f"non-2xx {self.load.non_2xx}"
            f"{_statuses(self.load, status)}; socket errors {self.load.errors}; stored {self.stored}; "
            f"p50 {self.load.p50_ms:.0f} ms, p99 {self.load.p99_ms:.0f} ms; mean send batch {mean}; "
            f"{per_job}; cores used: API {self.cpu.cores('api'):.2f}, {self.cpu.stack_cores()}; "
            f"machine busy {self.cpu.machine_busy:.0%}"
        )


def _statuses(load: LoadResult, accepting: int = 202) -> str:
    other = {s: n for s, n in load.statuses.items() if s != accepting}
    return f" {dict(other)}" if other else ""


# --------------------------------------------------------------------------- Tornado


@dataclass(frozen=True)
class RequestKind:
    """What the load generator sends: one job per POST, or batches."""

    path: str
    body: str
    status: int
    jobs: int
    connections: int


SINGLE = RequestKind("/v1/jobs", ECHO_BODY, 202, 1, CONNECTIONS)
BATCH = RequestKind(
    "/v1/jobs:batch", json.dumps({"jobs": [json.loads(ECHO_BODY)] * BATCH_SIZE}), 200, BATCH_SIZE, 8
)
#: Requests in flight for the batch rows: 8, and 16 as ``bench.peers`` runs the client's bulk submit
#: (with more requests waiting on a commit, more jobs share it).
BATCH_CONNECTIONS = (8, 16)


def run_api(
    stack: BenchStack,
    backend: str,
    *,
    processes: int,
    duration: float,
    max_requests: int = 0,
    kind: RequestKind = SINGLE,
) -> ApiRun:
    """Measure the API on a fresh queue; the queues are dropped afterwards."""
    with scope(stack, backend, "api") as scoped:
        with api_server(stack, backend, scoped.prefix, processes=processes) as server:
            warm_up(server.url, scoped.token)
            reset_queue(scoped.services, scoped.spec)
            meter = CpuMeter({"api": server.pid, **stack_groups(stack)}).start()
            load = closed_loop(
                server.url + kind.path,
                kind.body,
                token=scoped.token,
                connections=kind.connections,
                duration=duration,
                max_requests=max_requests,
            )
            meter.stop()
            time.sleep(0.5)  # answers in flight when the generator stopped
            stored = scoped.stored()
        sizes = _batch_sizes(scoped.dsn, scoped.spec.name) if backend == "postgres" else Counter()
    return ApiRun(load=load, stored=stored, batch_sizes=sizes, cpu=meter, processes=processes, kind=kind)


def _batch_sizes(dsn: str, queue: str) -> Counter[int]:
    """Sizes of the API's send batches: one multi-row INSERT per batch, so rows of a batch share ``xmin``."""
    with pg_cursor(dsn) as cur:
        cur.execute(
            "SELECT n, count(*) FROM (SELECT count(*) AS n FROM tornado_messages WHERE queue = %s"
            " GROUP BY xmin::text) AS batches GROUP BY n",
            (queue,),
        )
        return Counter(dict(cur.fetchall()))


def run_hello(stack: BenchStack, *, processes: int, duration: float) -> tuple[LoadResult, CpuMeter]:
    """The trivial tornado POST handler under the same load."""
    with hello_server(processes) as server:
        url = server.url + "/"
        closed_loop(url, ECHO_BODY, token=None, connections=CONNECTIONS, duration=1)  # warm-up
        meter = CpuMeter({"api": server.pid}).start()
        load = closed_loop(url, ECHO_BODY, token=None, connections=CONNECTIONS, duration=duration)
        meter.stop()
    return load, meter


# --------------------------------------------------------------------------- baselines


@dataclass
class Baseline(ClientRun):
    """A bare-adapter run: ``count`` messages stored in ``seconds``."""

    stored: int

    @classmethod
    def timed(cls, watch: Stopwatch, count: int, scoped: Scope) -> Baseline:
        """``count`` messages stored in the time ``watch`` measured; ``stored`` read from the queue now."""
        return cls(count, watch.seconds, watch.cpu, watch.self_cpu, stored=scoped.stored())

    def note(self, what: str) -> str:
        return (
            f"{what}: {self.count} messages in {self.seconds:.2f}s, stored {self.stored}; "
            + self.cores_note("producer")
        )


def _bodies(scoped: Scope, count: int) -> list[str]:
    """Create the scope's queue; ``count`` demo.echo envelopes for it."""
    scoped.services.queue.ensure_queue(scoped.spec)
    return [job.body for job in prepared_jobs(scoped.services, scoped.tenant, count)]


def _stack_watch(stack: BenchStack) -> Stopwatch:
    return Stopwatch(CpuMeter(stack_groups(stack)))


def pg_direct_producers(stack: BenchStack, count: int, threads: int = CONNECTIONS) -> Baseline:
    """``threads`` producers, own connection each, one message per ``send_batch``."""
    with scope(stack, "postgres", "p64", pool_size=threads) as scoped:
        queue, name = scoped.services.queue, scoped.spec.name
        bodies = _bodies(scoped, count)
        ticket = itertools.count()
        gate = threading.Barrier(threads + 1)

        def producer() -> None:
            queue.ping()  # open this thread's connection before the clock starts
            gate.wait()
            while (i := next(ticket)) < count:
                errors = queue.send_batch(name, [OutgoingMessage(bodies[i])])
                assert errors == [None], errors

        workers = [threading.Thread(target=producer) for _ in range(threads)]
        return Baseline.timed(run_gated(workers, gate, _stack_watch(stack)), count, scoped)


def pg_replay(stack: BenchStack, sizes: Counter[int], lanes: int) -> Baseline:
    """The API's batch sizes, replayed with ``send_batch``; one sequential lane per API process."""
    batches = sorted(sizes.elements(), reverse=True)
    count = sum(batches)
    with scope(stack, "postgres", "rpl", pool_size=lanes) as scoped:
        queue, name = scoped.services.queue, scoped.spec.name
        bodies = iter(_bodies(scoped, count))
        plan = [[OutgoingMessage(next(bodies)) for _ in range(size)] for size in batches]
        gate = threading.Barrier(lanes + 1)

        def lane(index: int) -> None:
            queue.ping()
            gate.wait()
            for batch in plan[index::lanes]:
                errors = queue.send_batch(name, batch)
                assert all(e is None for e in errors), errors

        workers = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
        return Baseline.timed(run_gated(workers, gate, _stack_watch(stack)), count, scoped)


def sqs_batch_loop(stack: BenchStack, count: int) -> Baseline:
    """A plain boto3 SendMessageBatch loop (10 per call, one thread) on a fresh queue."""
    with scope(stack, "sqs", "sqb") as scoped:
        bodies = _bodies(scoped, count)
        client = make_client("sqs", region=stack.info.aws_region, endpoint_url=stack.info.aws_endpoint_url)
        url = client.get_queue_url(QueueName=scoped.spec.name)["QueueUrl"]
        watch = _stack_watch(stack).start()
        for start in range(0, count, 10):
            entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
            answer = client.send_message_batch(QueueUrl=url, Entries=entries)
            assert not answer.get("Failed"), answer["Failed"]
        return Baseline.timed(watch.stop(), count, scoped)


# --------------------------------------------------------------------------- tables


def _postgres_rows(stack: BenchStack, duration: float) -> list[Row]:
    rows: list[Row] = []
    hello: dict[int, tuple[float, float]] = {}  # processes -> (requests/s, server CPU us per request)
    for processes in (1, 2):
        row, hello[processes] = _hello_row(stack, processes, duration)
        rows.append(row)
    for processes in (1, 2):
        rows += _api_rows(stack, processes, duration, *hello[processes])
    rows += [_batch_row(stack, duration, connections) for connections in BATCH_CONNECTIONS]
    return rows


def _batch_row(stack: BenchStack, duration: float, connections: int) -> Row:
    """One API process taking ``POST /v1/jobs:batch`` of 100 jobs on ``connections``, against the target."""
    log(f"api_throughput: postgres API, batches of {BATCH_SIZE}, 1 process, {connections} connections")
    kind = dataclasses.replace(BATCH, connections=connections)
    api = run_api(stack, "postgres", processes=1, duration=duration, kind=kind)
    return Row(
        "postgres",
        f"API accepted jobs/s in batches of {BATCH_SIZE}, 1 proc, {connections} connections, vs target",
        f"{api.accepted:,.0f}/s",
        f"{BATCH_TARGET:,}/s",
        ratio(api.accepted, BATCH_TARGET),
        ">= 1.0",
        f"{connections} connections; " + api.note(),
    )


def _hello_row(stack: BenchStack, processes: int, duration: float) -> tuple[Row, tuple[float, float]]:
    """The HTTP ceiling's row, and its (requests/s, server CPU us per request)."""
    log(f"api_throughput: hello ceiling, {processes} process(es), {duration:.0f}s")
    load, cpu = run_hello(stack, processes=processes, duration=duration)
    cpu_per = cpu.used.get("api", 0.0) / max(1, load.count(202)) * 1e6
    row = Row(
        "postgres",
        f"HTTP ceiling: trivial tornado POST handler, {processes} proc",
        f"{load.rate(202):,.0f}/s",
        note=f"non-2xx {load.non_2xx}; p50 {load.p50_ms:.0f} ms, p99 {load.p99_ms:.0f} ms; "
        f"{cpu_per:.0f} us server CPU/request; server cores {cpu.cores('api'):.2f}; "
        f"machine busy {cpu.machine_busy:.0%}",
    )
    return row, (load.rate(202), cpu_per)


def _api_rows(
    stack: BenchStack, processes: int, duration: float, hello_rate: float, hello_cpu: float
) -> list[Row]:
    """The API with ``processes`` against its three baselines, and its CPU per job against hello's."""
    log(f"api_throughput: postgres API, {processes} process(es), {duration:.0f}s")
    api = run_api(stack, "postgres", processes=processes, duration=duration)
    count = api.load.count(202)
    log(f"api_throughput: baselines for {count} messages (64 direct producers, replay)")
    direct = pg_direct_producers(stack, count)
    replay = pg_replay(stack, api.batch_sizes, lanes=processes)
    label = f"API accepted jobs/s, {processes} proc"
    accepted = f"{api.accepted:,.0f}/s"
    replayed = f"the API's {sum(api.batch_sizes.values())} batches replayed in {processes} lane(s)"
    return [
        Row(
            "postgres",
            f"{label} vs 64 direct producers",
            accepted,
            f"{direct.rate:,.0f}/s",
            ratio(api.accepted, direct.rate),
            f">= {TARGET}",
            api.note() + " | baseline " + direct.note("64 threads x send_batch([1 message])"),
        ),
        Row(
            "postgres",
            f"{label} vs storage ceiling",
            accepted,
            f"{replay.rate:,.0f}/s",
            ratio(api.accepted, replay.rate),
            "-",
            replay.note(replayed),
        ),
        Row(
            "postgres",
            f"{label} vs HTTP ceiling",
            accepted,
            f"{hello_rate:,.0f}/s",
            ratio(api.accepted, hello_rate),
            "-",
            f"trivial tornado POST handler, {processes} proc",
        ),
        _cpu_row(api, hello_cpu),
    ]


def _cpu_row(api: ApiRun, hello_cpu: float) -> Row:
    """The API's server CPU per accepted job against the trivial handler's per request."""
    api_cpu = api.cpu.used.get("api", 0.0) / max(1, api.jobs) * 1e6
    return Row(
        "postgres",
        f"API server CPU per accepted job, {api.processes} proc, vs hello CPU per request",
        f"{api_cpu:,.0f} us",
        f"{hello_cpu:,.0f} us",
        ratio(hello_cpu, api_cpu),
        "-",
        "ratio = hello / API (1.0 = the API costs no more CPU than a trivial handler); "
        "CPU time does not depend on what else runs on the machine, unlike the rates",
    )


def _sqs_rows(stack: BenchStack, jobs: int, repeats: int) -> list[Row]:
    bases: list[Baseline] = []
    apis: dict[int, list[ApiRun]] = {1: [], 2: []}
    for rep in range(repeats):
        log(f"api_throughput: sqs round {rep + 1}/{repeats}: boto3 loop, API 1 and 2 processes, {jobs} each")
        bases.append(sqs_batch_loop(stack, jobs))
        for processes in (1, 2):
            apis[processes].append(
                run_api(stack, "sqs", processes=processes, duration=120, max_requests=jobs)
            )
    base = sorted(bases, key=lambda b: b.rate)[len(bases) // 2]
    rows: list[Row] = []
    for processes, runs in apis.items():
        api = sorted(runs, key=lambda r: r.accepted)[len(runs) // 2]
        spread = ", ".join(f"{r.accepted:.0f}" for r in runs)
        base_spread = ", ".join(f"{b.rate:.0f}" for b in bases)
        rows.append(
            Row(
                "sqs (moto)",
                f"API accepted jobs/s, {processes} proc vs boto3 SendMessageBatch loop",
                f"{api.accepted:,.0f}/s",
                f"{base.rate:,.0f}/s",
                ratio(api.accepted, base.rate),
                f">= {TARGET}",
                f"median of {repeats} (tornado {spread}; baseline {base_spread}); median run: "
                + api.note()
                + " | baseline "
                + base.note("1 thread x SendMessageBatch(10)"),
            )
        )
    return rows


def run(
    stack: BenchStack | None = None,
    *,
    backends: Sequence[str] = BACKENDS,
    duration: float = 10.0,
    sqs_jobs: int = 300,
    sqs_repeats: int = 3,
) -> str:
    """Run bench 1 and print its table; returns the table's text."""
    generator = generator_name()
    if generator != "wrk":
        log(WRK_HINT)
    rows = rows_per_backend(
        stack,
        backends,
        lambda bench_stack, backend: (
            _postgres_rows(bench_stack, duration)
            if backend == "postgres"
            else _sqs_rows(bench_stack, sqs_jobs, sqs_repeats)
        ),
    )
    timed = (
        "wrk -t1 (C, one thread)"
        if generator == "wrk"
        else "Python asyncio (wrk missing: apt-get install -y wrk)"
    )
    notes = [
        f"load generator: {timed}"
        f" for timed runs, Python asyncio for count-bounded (sqs) runs; {CONNECTIONS} keep-alive "
        f"connections, closed loop; body {len(ECHO_BODY)} bytes; only 202 counts",
        f"postgres runs last {duration:.0f}s each; sqs runs stop after {sqs_jobs} answers "
        f"(moto's per-call cost grows with queue depth: every run starts on a fresh, empty queue), "
        f"median of {sqs_repeats} rounds",
        "stored = messages found in the queue afterwards (can exceed the 202s by the requests "
        "in flight when the generator stopped)",
        "CPU: cores = CPU seconds of the process group / wall seconds, from /proc; machine busy = "
        "all CPUs, all processes (other jobs on the machine included)",
    ]
    return print_table("Bench 1: API accepted jobs/s at 64 connections", rows, notes)


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per postgres run")
    parser.add_argument("--sqs-jobs", type=int, default=300, help="requests per sqs run")
    parser.add_argument("--sqs-repeats", type=int, default=3, help="sqs rounds (the median is reported)")
    run(**bench_args(parser))


if __name__ == "__main__":
    main()
