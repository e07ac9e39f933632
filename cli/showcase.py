"""``tornado showcase``: the whole path on the embedded local stack, in one command.

Starts the local stack, the API and one worker per demo task, submits a mix of
jobs over HTTP from concurrent clients, follows them to the end and prints what
happened: succeeded, retried, dead-lettered, and submit-to-done latency. Where the NF-e
package is installed, a few invoices are then emitted against the stack's SEFAZ emulator
(:mod:`tornado_cli.showcase_nfe`); where the SPED package is, a month's EFD ICMS/IPI is generated
in parts, downloaded and validated (:mod:`tornado_cli.showcase_sped`). Last, an operator signs in
to the console, finds the dead jobs and redrives them in one bulk action
(:mod:`tornado_cli.showcase_console`).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.bootstrap import services_from
from tornado_core.client import TornadoClient
from tornado_core.devstack import DevStack, default_state_dir
from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token

from . import showcase_console, showcase_nfe, showcase_sped

WORKERS = {"demo.echo": 8, "demo.sleep": 8, "demo.flaky": 4, "demo.fail": 2}
#: Invoices the NF-e part emits.
INVOICES = 5
FINAL = {JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.FAILED}


@dataclass(frozen=True)
class Summary:
    """What the showcase measured."""

    submitted: int
    succeeded: int
    retried: int
    dead: int
    p50_ms: float
    p99_ms: float
    wall_s: float


def job_mix(count: int, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """Mostly echoes, some long jobs with progress, some flaky ones, a few that always fail."""
    jobs: list[tuple[str, dict[str, Any]]] = []
    for index in range(count):
        roll = rng.random()
        if roll < 0.80:
            jobs.append(("demo.echo", {"message": f"nota fiscal {index}"}))
        elif roll < 0.90:
            jobs.append(("demo.sleep", {"seconds": round(rng.uniform(0.2, 1.0), 2), "steps": 5}))
        elif roll < 0.97:
            jobs.append(("demo.flaky", {"failures": rng.randint(1, 2)}))
        else:
            jobs.append(("demo.fail", {"reason": "showcase", "retryable": rng.random() < 0.5}))
    return jobs


def run_showcase(*, job_count: int, queue_backend: str | None) -> Summary:
    """Run it end to end and print the summary; returns it too."""
    state_dir = default_state_dir(os.environ)
    click.echo(f"starting the local stack in {state_dir} ...")
    stack = DevStack(state_dir)
    stack.up()
    env = {**os.environ, **stack.env()}
    if queue_backend:
        env["TORNADO_QUEUE"] = queue_backend
    env["TORNADO_QUEUE_PREFIX"] = f"showcase{int(time.time()) % 100000}"
    settings = Settings.load(env)
    with services_from(settings) as services:
        token = new_token()
        tenant = f"showcase-{os.urandom(3).hex()}"
        services.tenants.create(tenant, hash_token(token))
        with_nfe = showcase_nfe.TASK in services.registry.names()
        if with_nfe:
            showcase_nfe.prepare(env, tenant)
        sped = showcase_sped.prepare(env) if showcase_sped.TASK in services.registry.names() else None
        logs = Path(state_dir) / "showcase-logs"
        summary, nfe, sped_summary, console = _run(
            services, env, (tenant, token), job_count, logs, with_nfe=with_nfe, sped=sped
        )
    _print(summary, settings.queue_backend)
    if nfe is not None:
        showcase_nfe.show(nfe, INVOICES)
    if sped_summary is not None:
        showcase_sped.show(sped_summary)
    showcase_console.show(console)
    click.echo("\nThe stack keeps running: `tornado dev status`, `tornado dev down`.")
    return summary


def _run(
    services: Services, env: dict[str, str], caller: tuple[str, str], count: int, logs: Path, *,
    with_nfe: bool, sped: showcase_sped.SpedPlan | None,
) -> tuple[
    Summary, showcase_nfe.NfeSummary | None, showcase_sped.SpedSummary | None, showcase_console.ConsoleSummary
]:  # fmt: skip
    tenant, token = caller
    cluster = LocalCluster(env, logs)
    workers = {**WORKERS, **({showcase_nfe.TASK: 4} if with_nfe else {})}
    if sped is not None:
        workers |= {showcase_sped.TASK: 1, showcase_sped.PART_TASK: showcase_sped.PARTS}
    try:
        _api, url = cluster.start_api()
        for task, concurrency in workers.items():
            cluster.start_worker(task, concurrency=concurrency, extra=["--poll-wait", "1"])
        click.echo(f"API on {url}; {len(workers)} workers; logs in {logs}")
        started = time.monotonic()
        ids = _submit_all(TornadoClient(url, token), job_mix(count, random.Random(7)))
        records = _follow(services, ids)
        wall = time.monotonic() - started
        nfe = showcase_nfe.run(url, token, services, INVOICES) if with_nfe else None
        sped_summary = showcase_sped.run(url, token, services, sped, env) if sped is not None else None
        console = showcase_console.run(url, services.settings, tenant)
    finally:
        codes = cluster.stop_all(grace=30)
    bad = {name: code for name, code in codes.items() if code != 0}
    if bad:
        click.echo(f"warning: processes exited non-zero: {bad}", err=True)
    return _summarise(records, wall), nfe, sped_summary, console


def _submit_all(client: TornadoClient, jobs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    with (
        ThreadPoolExecutor(16) as pool,
        click.progressbar(length=len(jobs), label="submitting over HTTP") as bar,
    ):
        ids = []
        for receipt in pool.map(lambda job: client.submit(job[0], job[1]), jobs):
            ids.append(receipt["id"])
            bar.update(1)
    return ids


def _follow(services: Services, ids: list[str], timeout: float = 300) -> list[JobRecord]:
    done: dict[str, JobRecord] = {}
    deadline = time.monotonic() + timeout
    with click.progressbar(length=len(ids), label="jobs finished      ") as bar:
        while len(done) < len(ids) and time.monotonic() < deadline:
            for job_id in ids:
                if job_id in done:
                    continue
                record = services.jobs.get(job_id)
                if record is not None and record.status in FINAL:
                    done[job_id] = record
                    bar.update(1)
            time.sleep(0.2)
    if len(done) < len(ids):
        raise click.ClickException(f"{len(ids) - len(done)} job(s) did not finish within {timeout:.0f}s")
    return list(done.values())


def _summarise(records: list[JobRecord], wall: float) -> Summary:
    latencies = sorted(
        (r.finished_at - r.created_at).total_seconds() * 1000
        for r in records
        if r.status is JobStatus.SUCCEEDED and r.finished_at
    )
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 2 else (latencies or [0.0])[0]
    return Summary(
        submitted=len(records),
        succeeded=sum(r.status is JobStatus.SUCCEEDED for r in records),
        retried=sum(r.attempts > 1 for r in records),
        dead=sum(r.status is JobStatus.DEAD for r in records),
        p50_ms=statistics.median(latencies) if latencies else 0.0,
        p99_ms=p99,
        wall_s=wall,
    )


def _print(summary: Summary, backend: str) -> None:
    click.echo("")
    click.echo(f"Tornado showcase ({backend} queue)")
    rows = [
        ("jobs submitted over HTTP", f"{summary.submitted}"),
        ("succeeded", f"{summary.succeeded}"),
        ("retried at least once", f"{summary.retried}"),
        ("dead-lettered", f"{summary.dead}"),
        ("submit-to-done p50", f"{summary.p50_ms:.0f} ms"),
        ("submit-to-done p99", f"{summary.p99_ms:.0f} ms"),
        ("wall time", f"{summary.wall_s:.1f} s"),
    ]
    for label, value in rows:
        click.echo(f"  {label:<26} {value:>10}")
