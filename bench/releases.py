"""Bench: how fast a release moves traffic, with the process or the Docker runtime.

Per round, on a fresh database and queue prefix, with ``demo.release`` (the
test task of ``tests/data/releasable``) and a steady HTTP load on the API:

* **promote -> first job on the new version**: ``promote`` is called (in this
  process, as the CLI does after its start-up), then the time until the API
  first routes a job to the new version (receipt) and until a worker of the new
  version first starts one (job store ``started_at``);
* **bluegreen run**: ``release run --strategy bluegreen`` end to end (deploy with
  smoke job, promote, bake, drain, retire), with the time of each phase.

The CLI's own start-up (a ``tornado release status`` call) is measured apart:
an operator pays it on top of every command.

With ``--runtime docker`` the workers are containers on the project's own Docker
engine (``tornado docker up``; started if it does not run, and then stopped at the
end), host network. Once per benchmark run, not per round, the offline base image
is made to exist (present, loaded from the cached tarball or debootstrapped) and
each version of ``demo.release`` gets its image, built as ``tornado image build``
builds it (``ensure_base_image``, ``build_image``, ``verify_task_image``) from a
small generated project holding that version's code; those times are reported
apart from the release times.

    .venv/bin/python -m bench.releases [--rounds 3] [--rate 20] [--bake 5] [--backend postgres]
                                       [--runtime process|docker]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from bench._common import REPO_ROOT, bench_parser, child_env
from bench._releasable import EFFECTS_TABLE, TASK, code_dir, release_payload, task_project
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.adapters.runtimes.process.runtime import ProcessRuntime
from tornado_core.bootstrap import build_release_manager, build_services
from tornado_core.devstack import DevStack, default_state_dir
from tornado_core.local_machine import tornado_argv
from tornado_core.ports.jobs import JobStorePort
from tornado_core.releases.manager import DeployRequest, ReleaseManager
from tornado_core.releases.rollout import Rollout, RunPlan
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token
from tornado_core.toolchain.steady_load import SteadyLoad

VERSIONS = ("1.0.0", "2.0.0")
#: Image of each version with ``--runtime docker`` (built once per benchmark run).
IMAGE = "tornado-bench/demo.release:{version}"


@dataclass
class Round:
    """What one round measured (seconds)."""

    to_route: float
    to_run: float
    run_total: float
    phases: dict[str, float]


def request(version: str, *, smoke: bool, runtime: str = "process") -> DeployRequest:
    if runtime == "docker":
        where: dict[str, Any] = {"runtime": "docker", "image": IMAGE.format(version=version)}
    else:
        where = {"python_path": str(code_dir(version)), "tasks_module": "releasable"}
    return DeployRequest(
        task=TASK,
        version=version,
        **where,
        replicas=2,
        smoke=smoke,
        smoke_payload={"n": 0},
    )


# --------------------------------------------------------------------------- docker runtime


@dataclass
class DockerSetup:
    """What ``--runtime docker`` prepared once, with how long each step took (seconds)."""

    engine: str  # "started" or "already running"
    engine_seconds: float
    base: str  # "present", "loaded" or "built"
    base_seconds: float
    images: dict[str, float]  # version -> build + verify seconds


def _say(line: str) -> None:
    print(f"  {line}", file=sys.stderr)


@contextlib.contextmanager
def docker_images() -> Iterator[DockerSetup]:
    """The project's engine up, ``DOCKER_HOST`` set, the base image and both versions' images built."""
    from tornado_core.adapters.runtimes.docker.engine import DockerEngine
    from tornado_core.adapters.runtimes.images.builder import (
        ImageRequest,
        build_image,
        ensure_base_image,
        verify_task_image,
    )

    state = default_state_dir()
    cache = state / "images"  # as `tornado image build`: base tarball and dependency wheels
    cache.mkdir(parents=True, exist_ok=True)
    engine = DockerEngine(state)
    was_running = engine.status().running
    started = time.monotonic()
    engine.up()
    setup = DockerSetup(
        engine="already running" if was_running else "started",
        engine_seconds=time.monotonic() - started,
        base="",
        base_seconds=0.0,
        images={},
    )
    previous_host = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = engine.docker_host  # the release manager's DockerRuntime uses it
    client = engine.client()
    try:
        started = time.monotonic()
        setup.base = ensure_base_image(client, cache_dir=cache, log=_say)
        setup.base_seconds = time.monotonic() - started
        with tempfile.TemporaryDirectory(prefix="tornado-bench-img-") as scratch:
            for version in VERSIONS:
                started = time.monotonic()
                image = ImageRequest(
                    task=TASK, version=version, context=task_project(version, Path(scratch)),
                    tag=IMAGE.format(version=version),
                )  # fmt: skip
                built = build_image(client, image, cache_dir=cache, log=_say)
                verify_task_image(client, built.tag, TASK, version)
                setup.images[version] = time.monotonic() - started
        yield setup
    finally:
        client.close()
        if previous_host is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous_host
        if not was_running:
            engine.down()


def stop_docker_workers(settings: Settings) -> None:
    """Stop (and remove) the round's containers of both versions, whatever state they are in."""
    from tornado_core.adapters.runtimes.docker.runtime import DockerRuntime

    runtime = DockerRuntime(settings)
    for version in VERSIONS:
        runtime.stop(TASK, version, grace_period=20)


@contextlib.contextmanager
def installation(stack: DevStack, backend: str, work: Path) -> Iterator[tuple[dict[str, str], str]]:
    """A fresh database and queue prefix, an API process; yields its env and URL."""
    database = stack.create_database()
    env = child_env(
        stack.info().env(),
        TORNADO_QUEUE=backend,
        TORNADO_QUEUE_PREFIX=f"bench{uuid.uuid4().hex[:6]}",
        TORNADO_DATABASE_URL=database,
        TORNADO_STATE_DIR=str(work),
        TORNADO_LOG_LEVEL="WARNING",
    )
    cluster = LocalCluster(env, work / "logs")
    try:
        _api, url = cluster.start_api()
        yield env, url
    finally:
        cluster.stop_all(grace=20)
        stack.drop_database(database)


def one_round(
    stack: DevStack, backend: str, rate: float, bake: float, runtime_name: str = "process"
) -> Round:
    with (
        tempfile.TemporaryDirectory(prefix="tornado-bench-rel-") as tmp,
        installation(stack, backend, Path(tmp)) as (env, url),
    ):
        services, close = build_services(Settings.load(env))
        token = new_token()
        services.tenants.create("bench", hash_token(token))
        manager, close_manager = build_release_manager(services, state_dir=Path(tmp) / "runtime")
        try:
            return measure(manager, services.jobs, url, token, rate, bake, runtime_name)
        finally:
            if runtime_name == "docker":
                stop_docker_workers(services.settings)
            runtime = ProcessRuntime(services.settings, state_dir=Path(tmp) / "runtime")
            for folder in (Path(tmp) / "runtime" / TASK).glob("*"):
                runtime.stop(TASK, folder.name, grace_period=20)
            close_manager()
            close()


def measure(
    manager: ReleaseManager,
    jobs: JobStorePort,
    url: str,
    token: str,
    rate: float,
    bake: float,
    runtime: str = "process",
) -> Round:
    """v1 current under load, then a bluegreen run of v2; times taken from the run's notes."""
    manager.deploy(request("1.0.0", smoke=False, runtime=runtime))
    plan = RunPlan(
        deploy=request("2.0.0", smoke=True, runtime=runtime),
        strategy="bluegreen",
        step_wait=bake,
        min_jobs=max(5, int(rate * bake / 4)),
        max_error_rate=2,
    )
    marks: list[tuple[str, float]] = []
    with SteadyLoad(url, token, TASK, rate, payload=release_payload) as load:
        time.sleep(2)
        started = time.time()
        Rollout(manager, note=lambda line: marks.append((line.strip().split(" ")[0], time.time()))).run(plan)
        done = time.time()
    at = dict(marks)  # deployed, promoted, 2.0.0: (the verdict), draining, retired
    to_route, to_run = first_on(load, jobs, "2.0.0", since=at["deployed"])
    instances = "containers" if runtime == "docker" else "workers"
    phases = {
        f"deploy (2 {instances}, smoke job)": at["deployed"] - started,
        "promote": at["promoted"] - at["deployed"],
        "bake": at["2.0.0:"] - at["promoted"],
        "drain + retire of 1.0.0": at["retired"] - at["2.0.0:"],
    }
    return Round(to_route=to_route, to_run=to_run, run_total=done - started, phases=phases)


def first_on(load: SteadyLoad, jobs: JobStorePort, version: str, *, since: float) -> tuple[float, float]:
    """Seconds from ``since`` (promote called) to the first receipt on ``version`` and its first start."""
    routed = sorted((s for s in load.submitted if s.version == version), key=lambda s: s.answered)
    if not routed:
        raise RuntimeError(f"no job was routed to {version}")
    starts = [
        record.started_at.timestamp()
        for s in routed[:50]
        if (record := jobs.get(s.job_id)) is not None and record.started_at is not None
    ]
    return routed[0].answered - since, min(starts) - since


def cli_startup(env_dir: Path) -> float:
    started = time.monotonic()
    subprocess.run(tornado_argv("--help"), capture_output=True, check=True, cwd=env_dir)
    return time.monotonic() - started


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="Jobs per second submitted meanwhile.")
    parser.add_argument("--bake", type=float, default=5.0, help="Seconds the bluegreen run watches.")
    parser.add_argument("--backend", choices=["postgres", "sqs"], default="postgres")
    parser.add_argument(
        "--runtime", choices=["process", "docker"], default="process",
        help="Workers as local processes, or as containers on the project's Docker engine.",
    )  # fmt: skip
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    reuse = os.environ.get("TORNADO_STATE_DIR")
    state_dir = Path(reuse) if reuse else Path(tempfile.mkdtemp(prefix="tornado-bench-"))
    state_dir.chmod(0o711)  # as root, PostgreSQL runs as a user that must enter it
    stack = DevStack(state_dir)
    was_running = stack.status().running
    stack.up()
    setup: DockerSetup | None = None
    try:
        with psycopg2.connect(stack.info().erp_database_url) as conn, conn.cursor() as cur:
            cur.execute(EFFECTS_TABLE)
        with docker_images() if args.runtime == "docker" else contextlib.nullcontext() as setup:
            rounds = [
                one_round(stack, args.backend, args.rate, args.bake, args.runtime) for _ in range(args.rounds)
            ]
    finally:
        if not was_running:
            stack.down()
    report(args, rounds, cli_startup(REPO_ROOT), setup)


def report(
    args: argparse.Namespace, rounds: list[Round], startup: float, setup: DockerSetup | None = None
) -> None:
    """The Markdown table for docs/benchmarks.md."""
    load = os.getloadavg()[0]
    runtime = getattr(args, "runtime", "process")
    print(f"\n### Releases, {runtime} runtime ({args.backend} queue, {args.rate:g} jobs/s of load)\n")
    print(f"_{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, load average {load:.2f}_\n")
    print("| measure | median (min, max) over rounds |")
    print("|---|---|")
    print(f"| promote -> first job routed to the new version | {summary([r.to_route for r in rounds])} |")
    print(f"| promote -> first job started on the new version | {summary([r.to_run for r in rounds])} |")
    total = summary([r.run_total for r in rounds])
    print(f"| bluegreen `release run`, total (bake {args.bake:g} s) | {total} |")
    for phase in rounds[0].phases:
        print(f"| — {phase} | {summary([r.phases[phase] for r in rounds])} |")
    print(f"| CLI start-up (`tornado --help`), paid by every command | {startup:.2f} s |")
    if setup is not None:
        print("\nOnce per benchmark run, before the rounds (not in the figures above):\n")
        print("| step | seconds |")
        print("|---|---:|")
        print(f"| Docker engine up ({setup.engine}) | {setup.engine_seconds:.2f} |")
        print(f"| base image ({setup.base}) | {setup.base_seconds:.1f} |")
        for version, seconds in setup.images.items():
            print(f"| image of {TASK} {version}: `build_image` + `verify_task_image` | {seconds:.1f} |")


if __name__ == "__main__":
    main()
