"""Docker runtime figures: engine start, base image, worker image builds, containers to healthy.

    .venv/bin/python -m bench.docker_runtime [--rebuild-base] [--markdown FILE]

Starts a private Docker engine in a fresh state dir (so the first worker build has
no layer cache) and the local stack, then measures:

* the engine's start; the base image loaded from its cached tarball (built from
  Debian's mirror first if there is none, or always with ``--rebuild-base``);
* the worker image of this tree: cold (empty engine), warm (nothing changed);
* containers from ``ensure`` to Docker ``healthy`` (1 and 4 replicas), then to the
  first job succeeded; a graceful stop while idle and while a 3 s job runs.

Takes about 3 minutes (4 with ``--rebuild-base``) on 2 cores.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench._common import REPO_ROOT, bench_parser
from tornado_core.adapters.runtimes.docker.engine import DockerEngine
from tornado_core.adapters.runtimes.docker.runtime import DockerRuntime
from tornado_core.adapters.runtimes.images.builder import ImageRequest, build_image, ensure_base_image
from tornado_core.bootstrap import build_services
from tornado_core.devstack import DevStack
from tornado_core.naming import queue_spec
from tornado_core.ports.jobs import JobStatus
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.runtime import Deployment
from tornado_core.producer.submission import Submitter
from tornado_core.services import Services
from tornado_core.settings import Settings

T = TypeVar("T")
Rows = list[tuple[str, float, str]]


def timed(rows: Rows, label: str, action: Callable[[], T], note: str = "") -> T:
    """Run ``action``, add ``(label, seconds, note)`` to ``rows`` and print it."""
    started = time.monotonic()
    result = action()
    seconds = time.monotonic() - started
    rows.append((label, seconds, note))
    print(f"  {label:<52} {seconds:7.2f} s  {note}", flush=True)
    return result


def submit(services: Services, task: str, version: str, payload: dict[str, Any]) -> str:
    """Queue one job pinned to ``version``; returns its id."""
    settings = services.settings
    submitter = Submitter.for_services(services)
    prepared = submitter.prepare(task=task, tenant="bench", payload=payload, version=version)
    services.queue.ensure_queue(queue_spec(settings.queue_prefix, services.registry.get(task, version)))
    services.queue.send_batch(prepared.queue, [OutgoingMessage(prepared.body)])
    services.jobs.record_queued([prepared.as_new_job()])
    return prepared.envelope.job_id


def wait_status(services: Services, job_id: str, status: JobStatus, timeout: float = 120.0) -> None:
    """Poll the job store until the job has ``status``."""
    deadline = time.monotonic() + timeout
    while (record := services.jobs.get(job_id)) is None or record.status is not status:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not reach {status}")
        time.sleep(0.02)


def measure_images(rows: Rows, client: Any, cache: Path, rebuild_base: bool, version: str) -> str:
    """Base image and worker image figures; returns the worker image's tag."""
    how = timed(rows, "base image", lambda: ensure_base_image(client, cache_dir=cache, rebuild=rebuild_base))
    rows[-1] = (f"base image ({how})", rows[-1][1], "mmdebstrap + docker import" if how == "built" else "")
    request = ImageRequest(task="demo.sleep", version=version, tag=f"tornado-bench/demo:{version}")
    tag = ""
    for label in ("worker image, cold (empty engine)", "worker image, warm (nothing changed)"):
        marks = {"start": time.monotonic(), "wheels": 0.0}

        def log(line: str, marks: dict[str, float] = marks) -> None:
            if line.startswith("wheelhouse ready"):
                marks["wheels"] = time.monotonic()

        built = timed(rows, label, lambda log=log: build_image(client, request, cache_dir=cache, log=log))
        size = client.images.get(built.tag).attrs["Size"] / 1e6
        note = f"{size:.0f} MB; {marks['wheels'] - marks['start']:.1f} s of it on the host wheelhouse"
        rows[-1] = (label, rows[-1][1], note)
        tag = built.tag
    return tag


def measure_containers(
    rows: Rows, runtime: DockerRuntime, services: Services, image: str, version: str
) -> None:
    """Start-to-healthy, first job, graceful stops."""
    for replicas in (1, 4):
        wanted = Deployment(
            task="demo.echo", version=version, image=image, replicas=replicas, grace_period=10
        )
        timed(
            rows,
            f"ensure -> {replicas} healthy container(s)",
            lambda wanted=wanted: (
                runtime.ensure(wanted),
                runtime.wait_healthy(wanted.task, version, replicas=wanted.replicas, timeout=120),
            ),
            "health checks every 1 s",
        )
        job = submit(services, "demo.echo", version, {"message": "first"})
        timed(
            rows,
            f"  then first job succeeded ({replicas} replica(s))",
            lambda job=job: wait_status(services, job, JobStatus.SUCCEEDED),
        )
        timed(
            rows,
            f"stop {replicas} idle container(s) (SIGTERM, drain, remove)",
            lambda: runtime.stop("demo.echo", version, grace_period=10),
        )
    sleep = Deployment(task="demo.sleep", version=version, image=image, replicas=1, grace_period=20)
    runtime.ensure(sleep)
    runtime.wait_healthy("demo.sleep", version, replicas=1, timeout=120)
    job = submit(services, "demo.sleep", version, {"seconds": 3, "steps": 3})
    wait_status(services, job, JobStatus.RUNNING)
    codes = timed(
        rows,
        "stop 1 container mid-job (3 s job finishes first)",
        lambda: runtime.stop_instances("demo.sleep", version, grace_period=20),
    )
    rows[-1] = (rows[-1][0], rows[-1][1], f"exit codes {sorted(codes.values())}")


def markdown(rows: Rows, command: str, load_before: float) -> str:
    """The figures as a Markdown table, with the machine's load (other runs share it)."""
    lines = [
        f"`{command}` — {os.cpu_count()} cores, Docker engine started by the project; 1-minute load"
        f" average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
        "",
        "| step | seconds | note |",
        "|---|---:|---|",
        *(f"| {label.strip()} | {seconds:.2f} | {note} |" for label, seconds, note in rows),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rebuild-base", action="store_true", help="build the base image from the mirror")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    from tornado_tasks.demo import __version__ as version

    cache = Path(os.environ.get("TORNADO_IMAGE_CACHE", REPO_ROOT / ".tornado" / "images"))
    rows: Rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="tornado-bench-docker-") as scratch:
        Path(scratch).chmod(0o711)  # as root, PostgreSQL runs as another user that must enter it
        engine, stack = DockerEngine(Path(scratch) / "engine"), DevStack(Path(scratch) / "stack")
        timed(rows, "engine start (dockerd, fresh data root)", engine.up)
        client = engine.client()
        try:
            image = measure_images(rows, client, cache, args.rebuild_base, version)
            env = {**os.environ, **stack.up().env(), "TORNADO_QUEUE_PREFIX": f"bd{uuid.uuid4().hex[:6]}"}
            services, close = build_services(Settings.load(env))
            runtime = DockerRuntime(services.settings, client=client, health_interval=1.0, poll_wait=1.0)
            try:
                measure_containers(rows, runtime, services, image, version)
            finally:
                close()
        finally:
            client.close()
            timed(rows, "engine stop", engine.down)
            stack.down()
    table = markdown(
        rows,
        "python -m bench.docker_runtime" + (" --rebuild-base" if args.rebuild_base else ""),
        load_before,
    )
    print("\n" + table)
    if args.markdown:
        args.markdown.write_text(table)


if __name__ == "__main__":
    main()
