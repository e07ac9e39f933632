"""Benchmark: time-clock punches end to end -- HTTP -> queue -> PostgreSQL (ponto.record).

The reference design (API Gateway -> SQS -> throttled Lambda -> PostgreSQL) took 22 s
for 20,000 punches. Here 200 simulated devices post the punches one per request
(keep-alive, re-sending on anything but 202) to one API process, and ``ponto.record``
workers write them; the clock stops when the last punch is in the ERP database.

    .venv/bin/python -m bench.punches                       # 20,000 and 100,000 on PostgreSQL
    .venv/bin/python -m bench.punches --backend sqs --sizes 2000,5000

Uses the local stack of ``$TORNADO_STATE_DIR`` (default ``./.tornado``; started if
needed), a fresh ERP database per run, and its own queue prefix and tenant.
"""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tornado_tasks.ponto.admin import add_demo_establishment
from tornado_tasks.ponto.devices import make_punches, send_punches

from bench._common import Child, bench_parser, child_env, spawn, tree_cpu, wait_http
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.bootstrap import build_services
from tornado_core.devstack import DevStack, default_state_dir
from tornado_core.local_machine import free_port
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token

REFERENCE_SECONDS = 22.0
REFERENCE_PUNCHES = 20_000


@dataclass(frozen=True)
class Result:
    """One run."""

    backend: str
    punches: int
    accept_s: float
    wall_s: float
    p50_ms: float
    p99_ms: float
    jobs: int
    retries: int
    cpu: dict[str, float]

    def cpu_row(self) -> str:
        """CPU milliseconds per 1,000 punches by component, and what they allow on two idle cores."""
        per_k = {k: 1000 * v / self.punches * 1000 for k, v in self.cpu.items()}
        projected = 2 * self.punches / sum(self.cpu.values())
        parts = " | ".join(f"{per_k[k]:,.0f}" for k in ("api", "workers", "postgres", "devices"))
        return f"| {self.backend} | {self.punches:,} | {parts} | {projected:,.0f} |"

    def row(self) -> str:
        """A Markdown table row."""
        return (
            f"| {self.backend} | {self.punches:,} | {self.wall_s:.1f} | {self.punches / self.wall_s:,.0f} | "
            f"{self.accept_s:.1f} | {self.p50_ms:.0f} | {self.p99_ms:.0f} | {self.punches / self.jobs:.0f} | "
            f"{self.retries} |"
        )


CPU_HEADER = (
    "| queue | punches | API CPU ms / 1k punches | workers | PostgreSQL | simulated devices "
    "| punches/s two idle cores could carry |\n|---|---|---|---|---|---|---|"
)
HEADER = (
    "| queue | punches | wall s (HTTP -> stored) | punches/s | accept phase s | p50 accept ms "
    "| p99 accept ms | punches/job | device re-sends |\n|---|---|---|---|---|---|---|---|---|"
)


def _count(services: Services, tenant: str) -> int:
    with services.rds.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ponto_punch WHERE tenant = %s", (tenant,))
        return int(cur.fetchone()[0])


def start_api(env: dict[str, str], processes: int, logs: Path) -> tuple[Child, str]:
    """The API pre-forked (``bench._api``: ``serve(factory, processes=N)``), and its URL once it answers."""
    port = free_port()
    child = spawn("api", ["bench._api", "--port", str(port), "--processes", str(processes)], env, logs)
    url = f"http://127.0.0.1:{port}"
    wait_http(child, url + "/healthz")
    return child, url


def run_once(
    stack: DevStack, *, backend: str, size: int, devices: int, reps: int, workers: int, api_processes: int
) -> Result:
    """Start API and workers on a fresh ERP database, send ``size`` punches, wait until all are stored."""
    erp = stack.create_database()
    env = child_env(
        stack.env(),
        TORNADO_QUEUE=backend,
        TORNADO_ERP_DATABASE_URL=erp,
        TORNADO_LOG_LEVEL="WARNING",
        TORNADO_QUEUE_PREFIX=f"bp{uuid.uuid4().hex[:6]}",
    )
    services, close = build_services(Settings.load(env))
    logs = Path(tempfile.mkdtemp(prefix="tornado-bench-punches-"))
    cluster = LocalCluster(env, logs)
    api: Child | None = None
    try:
        tenant, token = f"bench-{uuid.uuid4().hex[:6]}", new_token()
        services.tenants.create(tenant, hash_token(token))
        with services.rds.connection() as conn:
            rep_ids = add_demo_establishment(conn, tenant=tenant, reps=reps)
        api, url = start_api(env, api_processes, logs)
        for _ in range(workers):
            cluster.start_worker("ponto.record", concurrency=8, extra=["--poll-wait", "1"])
        punches = make_punches(rep_ids, size, now=datetime.now(UTC), seed=size)
        pids = {
            "api": [api.popen.pid],
            "workers": [p.pid for p in cluster.processes],
            "postgres": [stack.status().postgres_pid or 0],
        }
        before = {k: sum(tree_cpu(p, reaped=True) for p in v) for k, v in pids.items()}
        mine, started = time.process_time(), time.monotonic()
        run = asyncio.run(send_punches(url, token, punches, devices=devices, timeout=900))
        accepted = time.monotonic() - started
        devices_cpu = time.process_time() - mine
        while _count(services, tenant) < size:
            time.sleep(0.05)
        wall = time.monotonic() - started
        cpu = {k: sum(tree_cpu(p, reaped=True) for p in v) - before[k] for k, v in pids.items()}
        cpu["devices"] = devices_cpu
        median, p99 = run.percentile(0.5) * 1000, run.percentile(0.99) * 1000
        jobs = len(set(run.accepted.values()))
        return Result(backend, size, accepted, wall, median, p99, jobs, run.retries, cpu)
    finally:
        if api is not None:
            api.stop(grace=60)
        cluster.stop_all(grace=20)
        close()
        stack.drop_database(erp)


def main() -> None:
    """Run the sizes asked for and print a Markdown table."""
    parser = bench_parser(__doc__)
    parser.add_argument("--backend", choices=("postgres", "sqs"), default="postgres")
    parser.add_argument("--sizes", default="20000,100000", help="Comma-separated punch counts.")
    parser.add_argument("--devices", type=int, default=200, help="Concurrent simulated devices.")
    parser.add_argument("--reps", type=int, default=20, help="REPs the punches spread over.")
    parser.add_argument("--workers", type=int, default=1, help="ponto.record worker processes.")
    parser.add_argument("--api-processes", type=int, default=2, help="API processes (pre-forked).")
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    stack = DevStack(default_state_dir(dict(os.environ)))
    stack.up()
    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
        f"{args.devices} devices, {args.reps} REPs, {args.api_processes} API process(es), "
        f"{args.workers} worker process(es) x 8"
    )
    print(HEADER)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        result = run_once(
            stack,
            backend=args.backend,
            size=size,
            devices=args.devices,
            reps=args.reps,
            workers=args.workers,
            api_processes=args.api_processes,
        )
        print(result.row(), flush=True)
        results.append(result)
    print("\nCPU cost (independent of what else runs on the machine):\n" + CPU_HEADER)
    for result in results:
        print(result.cpu_row())
    print(
        f"reference design: {REFERENCE_PUNCHES:,} punches in {REFERENCE_SECONDS:.0f} s "
        f"({REFERENCE_PUNCHES / REFERENCE_SECONDS:,.0f}/s); load average {os.getloadavg()[0]:.1f} at the end"
    )


if __name__ == "__main__":
    main()
