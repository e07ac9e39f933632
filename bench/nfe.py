"""Benchmark: NF-e documents built, signed and checked per second, and ``nfe.emit`` jobs/s end to end.

1. **Document pipeline, in process** (no I/O, one thread): for invoices of 1, 10 and 100 items,
   documents per second and milliseconds per document of each stage ``nfe.emit`` runs: build
   (``build_nfe``), XSD check (``require_schema_valid`` on the signed document), sign
   (``sign_enveloped``) and the whole (build + sign + XSD, as ``Emitter._signed``), each after a
   warm-up. Baselines in the same run: nfelib's own ``to_xml()`` of the same document (against
   build) and a bare RSA-SHA1 signature of the same bytes with ``cryptography`` (against sign).
2. **Emission end to end**: N ``nfe.emit`` jobs submitted over HTTP (``TornadoClient.submit_many``)
   to one API process, one ``tornado worker --task nfe.emit`` process against the local stack's
   SEFAZ emulator (HTTPS, mutual TLS), PostgreSQL queue, a fresh ERP database. Jobs/s from the
   first submit to the last success, submit-to-done p50/p99 from the job store, and CPU per job
   of the worker, the API, PostgreSQL, the emulator and moto (S3: certificates and artifacts).
   The worker runs with ``TORNADO_NFE_SENDS_PER_SECOND=1000`` (default 5 per issuer: the
   throttle would otherwise be the bound). Every job must succeed and every NF-e be
   ``authorized`` in ``nfe_emission``; otherwise the table says so and the exit code is 1.

    .venv/bin/python -m bench.nfe [--seconds 3] [--jobs 200] [--concurrency 4] [--items 1]

Uses ``$TORNADO_STATE_DIR``'s stack if set, else a temporary one (see bench/README.md).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tornado_tasks.nfe.certificates import TestAuthority

from bench._common import (
    BenchStack,
    CpuMeter,
    Row,
    Scope,
    bench_parser,
    local_stack,
    log,
    percentile,
    pg_cursor,
    print_grid,
    print_table,
    process_cpu,
    ratio,
    scope,
    stack_groups,
)
from bench._nfe_documents import (
    Timing,
    document,
    first_xsd_ms,
    invoice_payload,
    measure,
    new_a1,
    new_cnpj,
    stage_calls,
)
from tornado_core.adapters.runtimes.process.cluster import LocalCluster, ManagedProcess
from tornado_core.client import TornadoClient
from tornado_core.devstack import DevStack
from tornado_core.devstack.state import load_state
from tornado_core.local_machine import tornado_argv

TASK = "nfe.emit"
ITEMS = (1, 10, 100)
SENDS_PER_SECOND = 1000
#: Baseline of each stage that has one, and the stage's label in the table.
BASELINES = {"build": "nfelib to_xml()", "sign": "RSA-SHA1 sign"}
LABELS = {
    "build": "build (build_nfe)",
    "xsd": "XSD check (signed)",
    "sign": "sign (sign_enveloped)",
    "whole": "whole: build + sign + XSD",
    "nfelib to_xml()": "baseline: nfelib to_xml()",
    "RSA-SHA1 sign": "baseline: RSA-SHA1 sign, cryptography",
}
COMPONENTS = ("worker", "api", "postgres", "emulator", "moto")
TERMINAL = ("succeeded", "failed", "dead")


# --------------------------------------------------------------------------- 1. documents


def pipeline(seconds: float) -> tuple[dict[int, dict[str, Timing]], float]:
    """Time every stage and baseline for each item count, in this process.

    Returns the timings by item count and stage, and the first XSD check's milliseconds.
    """
    certificate = new_a1(TestAuthority.create())
    first_xsd = first_xsd_ms(document(1, certificate))
    results: dict[int, dict[str, Timing]] = {}
    for items in ITEMS:
        log(f"nfe: document pipeline, {items} item(s), {seconds:g}s per stage")
        calls = stage_calls(document(items, certificate))
        results[items] = measure(calls, seconds)
    return results, first_xsd


def _pipeline_row(items: int, timing: Timing, timings: dict[str, Timing]) -> tuple[str, ...]:
    """One line of table 1: rates, times, share of the whole and the ratio to the stage's baseline."""
    whole = timings["whole"]
    share = f"{timing.cpu_ms / whole.cpu_ms:.0%}"
    baseline = BASELINES.get(timing.stage)
    versus = f"{timing.cpu_ms / timings[baseline].cpu_ms:.1f} x {baseline}" if baseline else ""
    return (
        str(items),
        LABELS[timing.stage],
        f"{timing.rate:,.0f}",
        f"{timing.ms:.2f}",
        f"{timing.cpu_ms:.2f}",
        share,
        versus,
    )


def pipeline_table(results: dict[int, dict[str, Timing]], seconds: float, first_xsd: float) -> str:
    """Print table 1."""
    rows = [_pipeline_row(items, t, timings) for items, timings in results.items() for t in timings.values()]
    notes = [
        f"each stage called in a loop for {seconds:g}s in all, after a 0.2s warm-up, one thread of this "
        f"process, in 5 slices of {seconds / 5:g}s interleaved with the other stages; the median slice (by "
        "CPU per call) is shown: docs/s and ms/doc are its wall time, CPU ms/doc this process's CPU",
        "sign works on the unsigned document, XSD on the signed one (as nfe.emit: it parses the document "
        "again); whole = build + sign + XSD, what nfe.emit runs twice per job (before numbering, then with "
        "the allocated number)",
        "share = CPU of the stage / CPU of the whole; 'x baseline' = CPU of the stage / CPU of its baseline",
        "baselines: nfelib's to_xml() of the same NF-e bindings (serialisation only: build also constructs "
        "the bindings and re-parses the XML to check the key); RSA-SHA1 PKCS#1 v1.5 with cryptography of the "
        "unsigned document's bytes, RSA-2048 test A1 (the cost of the private-key operation itself)",
        f"the first XSD check of a process compiles the NF-e schema: {first_xsd:,.0f} ms (cached afterwards)",
    ]
    header = ("items", "stage", "docs/s", "ms/doc", "CPU ms/doc", "share of whole", "vs baseline (CPU)")
    return print_grid("NF-e document pipeline, in process (no I/O, one thread)", header, rows, notes)


# --------------------------------------------------------------------------- 2. emission


@dataclass
class Emission:
    """One end-to-end run: what the job store and the ERP database say, and the CPU used."""

    jobs: int
    concurrency: int
    items: int
    issuers: int
    submit_seconds: float
    wall: float
    statuses: dict[str, int]
    states: dict[str, int]
    latency: list[float]
    run_time: list[float]
    retries: int
    cpu: CpuMeter
    client_cpu: float
    errors: list[str]

    @property
    def succeeded(self) -> int:
        return self.statuses.get("succeeded", 0)

    @property
    def authorized(self) -> int:
        return self.states.get("authorized", 0)

    @property
    def rate(self) -> float:
        return self.succeeded / self.wall if self.wall > 0 else 0.0

    def failures(self) -> str:
        """What went wrong, or ``""``."""
        if self.succeeded == self.jobs and self.authorized == self.jobs:
            return ""
        return (
            f"FAILED: {self.succeeded}/{self.jobs} succeeded (statuses {self.statuses}), "
            f"{self.authorized}/{self.jobs} authorized (nfe_emission states {self.states}); "
            f"first errors: {self.errors}"
        )


def issue_certificate(env: dict[str, str], tenant: str, cnpj: str) -> None:
    """``tornado nfe certificate issue-test``: a test A1 for ``cnpj``, stored for ``tenant``."""
    command = tornado_argv("nfe", "certificate", "issue-test", "--tenant", tenant, "--cnpj", cnpj)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"issue-test for {cnpj} exited {done.returncode}:\n{done.stderr}")


def emulator_pid(stack: BenchStack) -> int:
    """Pid of the stack's SEFAZ emulator (a companion service)."""
    state = load_state(stack.state_dir)
    pid = state.companion_pids.get("sefaz") if state else None
    if not pid:
        raise RuntimeError(f"the stack in {stack.state_dir} runs no SEFAZ emulator (companion 'sefaz')")
    return pid


def jobs_for(cnpjs: Sequence[str], items: int, count: int) -> list[dict[str, Any]]:
    """``count`` emission jobs, the issuers taken in turn."""
    payloads = [{"invoice": invoice_payload(items, cnpj)} for cnpj in cnpjs]
    return [{"task": TASK, "payload": payloads[i % len(payloads)]} for i in range(count)]


def submit(client: TornadoClient, jobs: list[dict[str, Any]]) -> list[str]:
    """Submit ``jobs`` (100 per request, 2 in flight); returns their ids, or fails on a refusal."""
    receipts = client.submit_many(jobs, chunk=100, parallel=2)
    refused = [r["error"] for r in receipts if "error" in r]
    if refused:
        raise RuntimeError(f"{len(refused)} jobs refused, e.g. {refused[0]}")
    return [str(r["id"]) for r in receipts]


def _statuses(dsn: str, ids: list[str]) -> dict[str, int]:
    with pg_cursor(dsn) as cur:
        cur.execute(
            "SELECT status, count(*) FROM tornado_jobs WHERE job_id = ANY(%s) GROUP BY status", (ids,)
        )
        return {str(status): int(count) for status, count in cur.fetchall()}


def wait_done(dsn: str, ids: list[str], worker: ManagedProcess, timeout: float) -> dict[str, int]:
    """Poll the job store until every job is succeeded, failed or dead (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = _statuses(dsn, ids)
        if sum(statuses.get(s, 0) for s in TERMINAL) >= len(ids) or time.monotonic() > deadline:
            return statuses
        if not worker.alive():
            raise RuntimeError(f"the worker died:\n{worker.log_tail()}")
        time.sleep(0.1)


def job_times(
    dsn: str, ids: list[str], first_submit: datetime
) -> tuple[float, list[float], list[float], int]:
    """Seconds from ``first_submit`` to the last success, sorted submit-to-done and run times, retries."""
    with pg_cursor(dsn) as cur:
        cur.execute(
            "SELECT extract(epoch FROM finished_at - created_at),"
            " extract(epoch FROM finished_at - started_at), attempts, finished_at"
            " FROM tornado_jobs WHERE job_id = ANY(%s) AND status = 'succeeded'",
            (ids,),
        )
        rows = cur.fetchall()
    if not rows:
        return 0.0, [], [], 0
    last = max(row[3] for row in rows)
    retries = sum(int(row[2]) - 1 for row in rows)
    latency, run_time = sorted(float(r[0]) for r in rows), sorted(float(r[1]) for r in rows)
    return (last - first_submit).total_seconds(), latency, run_time, retries


def first_errors(dsn: str, ids: list[str], limit: int = 3) -> list[str]:
    """The error messages of a few jobs that did not succeed."""
    with pg_cursor(dsn) as cur:
        cur.execute(
            "SELECT status, coalesce(error_message, '') FROM tornado_jobs"
            " WHERE job_id = ANY(%s) AND status <> 'succeeded' LIMIT %s",
            (ids, limit),
        )
        return [f"{status}: {message[:300]}" for status, message in cur.fetchall()]


def emission_states(erp: str, ids: list[str]) -> dict[str, int]:
    """``nfe_emission`` rows of these jobs by state, in the ERP database."""
    with pg_cursor(erp) as cur:
        cur.execute("SELECT to_regclass('nfe_emission') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return {}
        cur.execute("SELECT state, count(*) FROM nfe_emission WHERE job_id = ANY(%s) GROUP BY state", (ids,))
        return {str(state): int(count) for state, count in cur.fetchall()}


@dataclass(frozen=True)
class Options:
    """What the emission run is asked to do."""

    jobs: int
    concurrency: int
    items: int
    issuers: int


def _warm(client: TornadoClient, scoped: Scope, worker: ManagedProcess, jobs: list[dict[str, Any]]) -> None:
    """Run a few jobs first (imports, compiled XSDs, pools, series rows), outside the measure."""
    ids = submit(client, jobs)
    statuses = wait_done(scoped.dsn, ids, worker, timeout=120)
    if statuses.get("succeeded", 0) < len(ids):
        raise RuntimeError(f"warm-up jobs did not succeed: {statuses} {first_errors(scoped.dsn, ids)}")


def _measure(
    stack: BenchStack, scoped: Scope, cluster: LocalCluster, cnpjs: list[str], options: Options, erp: str
) -> Emission:
    """Start API and worker, warm up, then submit N jobs and wait until all are done."""
    api, url = cluster.start_api()
    worker = cluster.start_worker(TASK, concurrency=options.concurrency, extra=["--poll-wait", "1"])
    client = TornadoClient(url, scoped.token, timeout=60)
    _warm(client, scoped, worker, jobs_for(cnpjs, options.items, options.concurrency))
    groups = {"worker": worker.pid, "api": api.pid, **stack_groups(stack), "emulator": emulator_pid(stack)}
    jobs = jobs_for(cnpjs, options.items, options.jobs)
    meter = CpuMeter(groups).start()
    mine, first_submit, started = process_cpu(), datetime.now(UTC), time.monotonic()
    ids = submit(client, jobs)
    submit_seconds = time.monotonic() - started
    statuses = wait_done(scoped.dsn, ids, worker, timeout=max(180.0, options.jobs * 1.5))
    meter.stop()
    client_cpu = process_cpu() - mine
    wall, latency, run_time, retries = job_times(scoped.dsn, ids, first_submit)
    return Emission(
        options.jobs, options.concurrency, options.items, options.issuers, submit_seconds, wall, statuses,
        emission_states(erp, ids), latency, run_time, retries, meter, client_cpu,
        first_errors(scoped.dsn, ids),
    )  # fmt: skip


def run_emission(stack: BenchStack, options: Options) -> Emission:
    """One end-to-end run on a fresh queue prefix, tenant and ERP database."""
    devstack = DevStack(stack.state_dir)
    with scope(stack, "postgres", "nfe") as scoped:
        erp = devstack.create_database()
        try:
            env = stack.env("postgres", scoped.prefix)
            env.update(TORNADO_ERP_DATABASE_URL=erp, TORNADO_NFE_SENDS_PER_SECOND=str(SENDS_PER_SECOND))
            cnpjs = [new_cnpj() for _ in range(options.issuers)]
            for cnpj in cnpjs:
                issue_certificate(env, scoped.tenant, cnpj)
            cluster = LocalCluster(env, stack.log_dir / scoped.prefix)
            log(f"nfe: emission end to end, N={options.jobs}, concurrency {options.concurrency}")
            try:
                return _measure(stack, scoped, cluster, cnpjs, options, erp)
            finally:
                cluster.stop_all(grace=20)
        finally:
            devstack.drop_database(erp)


def _cpu_rows(run: Emission, pipeline_cpu_ms: float | None) -> list[Row]:
    """CPU per job of each process tree, the worker's against twice the whole pipeline in process."""
    rows = []
    for name in (*COMPONENTS, "client"):
        used = run.client_cpu if name == "client" else run.cpu.used.get(name, 0.0)
        ms = 1000 * used / run.jobs
        cores = used / run.cpu.wall if run.cpu.wall > 0 else 0.0
        base = 2 * pipeline_cpu_ms if name == "worker" and pipeline_cpu_ms else None
        rows.append(
            Row(
                "postgres",
                f"CPU per job: {_COMPONENT_LABELS[name]}",
                f"{ms:.1f} ms",
                f"{base:.1f} ms" if base else "",
                ratio(ms, base) if base else "",
                "-",
                f"{cores:.2f} cores busy" + (" (baseline: 2 x whole pipeline in process)" if base else ""),
            )
        )
    return rows


_COMPONENT_LABELS = {
    "worker": "worker (1 process)",
    "api": "API (1 process)",
    "postgres": "PostgreSQL",
    "emulator": "SEFAZ emulator",
    "moto": "moto (S3)",
    "client": "bench client (submit + polling)",
}


def _bound(run: Emission) -> str:
    """The process trees by cores kept busy, busiest first, and how busy the machine was."""
    cores = sorted(((run.cpu.cores(n), n) for n in COMPONENTS), reverse=True)
    listed = ", ".join(f"{_COMPONENT_LABELS[n]} {c:.2f}" for c, n in cores)
    return f"cores busy during the run: {listed}; whole machine busy {run.cpu.machine_busy:.0%}"


def _rate_row(run: Emission, pipeline_whole: Timing | None) -> Row:
    """Jobs/s end to end, against the whole document pipeline in process (same items)."""
    base = pipeline_whole.rate if pipeline_whole else 0.0
    return Row(
        "postgres",
        f"nfe.emit jobs/s, 1 worker, concurrency {run.concurrency}, {run.items} item(s)",
        f"{run.rate:.1f}/s",
        f"{base:.0f} docs/s" if base else "",
        ratio(run.rate, base) if base else "",
        "-",
        f"N={run.jobs}: first submit to last success {run.wall:.2f}s "
        f"(submit_many {run.submit_seconds:.2f}s); {run.succeeded}/{run.jobs} succeeded, "
        f"{run.authorized}/{run.jobs} authorized in nfe_emission; {run.retries} retries; "
        "baseline: whole pipeline in process, one thread (table 1)",
    )


def _latency_row(run: Emission) -> Row:
    """Submit-to-done percentiles, with the run time of one job in the note."""
    p50, p99 = percentile(run.latency, 50) * 1000, percentile(run.latency, 99) * 1000
    r50, r99 = percentile(run.run_time, 50) * 1000, percentile(run.run_time, 99) * 1000
    return Row(
        "postgres",
        "submit-to-done p50 / p99 (job store)",
        f"{p50:,.0f} / {p99:,.0f} ms",
        "",
        "",
        "-",
        "created_at to finished_at, all N submitted at once (mostly the wait behind the backlog); "
        f"one job's run (started_at to finished_at) p50 {r50:.0f} ms, p99 {r99:.0f} ms",
    )


def emission_table(run: Emission, pipeline_whole: Timing | None) -> str:
    """Print table 2."""
    rows = [_rate_row(run, pipeline_whole), _latency_row(run)]
    rows += _cpu_rows(run, pipeline_whole.cpu_ms if pipeline_whole else None)
    notes = [
        f"`tornado worker --task nfe.emit --concurrency {run.concurrency} --poll-wait 1` with "
        f"TORNADO_NFE_SENDS_PER_SECOND={SENDS_PER_SECOND} (default 5 per issuer and UF: at 5 it would "
        f"bound the rate); {run.issuers} issuer CNPJ(s) with test A1s from `tornado nfe certificate "
        "issue-test`; one `tornado api` process; PostgreSQL queue; SEFAZ emulator over HTTPS with mutual "
        "TLS; a fresh ERP database; a warm-up of `concurrency` jobs first, not counted",
        _bound(run),
    ]
    if run.failures():
        notes.append(run.failures())
    return print_table("NF-e emission end to end (API -> queue -> worker -> SEFAZ emulator)", rows, notes)


# --------------------------------------------------------------------------- command line


def run(seconds: float = 3.0, jobs: int = 200, concurrency: int = 4, items: int = 1, issuers: int = 1) -> int:
    """Print both tables; returns the exit code (1 if any emission failed)."""
    results, first_xsd = pipeline(seconds)
    pipeline_table(results, seconds, first_xsd)
    with local_stack() as stack:
        emission = run_emission(stack, Options(jobs, concurrency, items, issuers))
    emission_table(emission, results[items]["whole"])
    if emission.failures():
        log(emission.failures())
        return 1
    return 0


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds each document stage is timed")
    parser.add_argument("--jobs", type=int, default=200, help="nfe.emit jobs of the end-to-end run")
    parser.add_argument("--concurrency", type=int, default=4, help="the worker's concurrency")
    parser.add_argument("--items", type=int, default=1, choices=ITEMS, help="items per emitted invoice")
    parser.add_argument("--issuers", type=int, default=1, help="issuer CNPJs the jobs are spread over")
    args = parser.parse_args()
    sys.exit(run(args.seconds, args.jobs, args.concurrency, args.items, args.issuers))


if __name__ == "__main__":
    main()
