"""From `tornado newtask` to production-like releases, on this machine.

A new task project is scaffolded, its own tests pass, and `tornado pipeline run
--local` releases it (Docker containers, or worker processes); a job submitted
over the API returns the task's result. Then the task changes (version and
behaviour), the pipeline runs again while jobs keep arriving, and the new
version takes over: every job succeeds, and new jobs run the new code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.docker_fixtures import image_cache
from tests.e2e.helpers import wait_until
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.adapters.runtimes.process.runtime import ProcessRuntime
from tornado_core.bootstrap import build_services
from tornado_core.client import ApiError, TornadoClient
from tornado_core.devstack import DevStack, ExternalStack
from tornado_core.local_machine import tornado_argv
from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token

TASK = "nfe.cancel"


@dataclass
class Installation:
    """One isolated Tornado: its own job-store database, queue prefix, runtime state and API."""

    env: dict[str, str]
    services: Services
    client: TornadoClient
    root: Path

    def tornado(self, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run ``tornado ARGS`` as a developer would; a non-zero exit fails the test with its output."""
        result = subprocess.run(
            tornado_argv(*args),
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"tornado {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def versions(self, cwd: Path) -> dict[str, str]:
        status = json.loads(self.tornado("release", "status", TASK, "--json", cwd=cwd).stdout)
        return {row["version"]: row["state"] for row in status["versions"]}


@dataclass
class Load:
    """Submits jobs over the API, a few per second, until stopped; keeps every answer."""

    client: TornadoClient
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        number = 0
        while not self._stop.wait(0.2):
            number += 1
            try:
                self.accepted.append(self.client.submit(TASK, {"document_id": number, "note": "load"}))
            except (ApiError, OSError) as exc:
                self.refused.append(str(exc))


@pytest.fixture
def install(
    dev_stack: DevStack | ExternalStack, stack_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[dict[str, str]], Installation]]:
    """Factory of an installation (extra env: Docker's); its workers and API are stopped after."""
    made: list[tuple[Installation, LocalCluster, Callable[[], None], str]] = []

    def make(extra: dict[str, str]) -> Installation:
        database = dev_stack.create_database()
        state = tmp_path / "state"
        image_cache().mkdir(parents=True, exist_ok=True)
        state.mkdir()
        (state / "images").symlink_to(image_cache())  # base image tarball and wheels, kept between runs
        env = {
            **stack_env,
            **extra,
            "TORNADO_DATABASE_URL": database,
            "TORNADO_QUEUE": "postgres",
            "TORNADO_QUEUE_PREFIX": f"nt{uuid.uuid4().hex[:6]}",
            "TORNADO_STATE_DIR": str(state),
        }
        services, close = build_services(Settings.load(env))
        token = new_token()
        services.tenants.create("acme", hash_token(token))
        cluster = LocalCluster(env, tmp_path / "logs")
        _api, url = cluster.start_api()
        installation = Installation(env, services, TornadoClient(url, token), tmp_path)
        made.append((installation, cluster, close, database))
        return installation

    yield make
    for installation, cluster, close, database in made:
        cluster.stop_all(grace=20)
        _stop_workers(installation)
        close()
        dev_stack.drop_database(database)


def _stop_workers(installation: Installation) -> None:
    settings = installation.services.settings
    state = Path(installation.env["TORNADO_STATE_DIR"])
    for folder in (state / "runtime" / TASK).glob("*"):
        ProcessRuntime(settings, state_dir=state / "runtime").stop(TASK, folder.name, grace_period=20)
    if installation.env.get("DOCKER_HOST"):
        from tornado_core.adapters.runtimes.docker.engine import connect
        from tornado_core.adapters.runtimes.docker.runtime import DockerRuntime

        # The installation's engine, not whatever this process's environment points at.
        runtime = DockerRuntime(settings, client=connect(installation.env["DOCKER_HOST"]))
        for version in ("1.0.0", "1.1.0"):
            runtime.stop(TASK, version, grace_period=20)


def _finished(services: Services, job_ids: list[str]) -> dict[str, JobRecord]:
    """The records of the jobs, once every one has succeeded or failed for good."""
    final = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DEAD}
    done: dict[str, JobRecord] = {}

    def all_done() -> bool:
        for job_id in [j for j in job_ids if j not in done]:
            record = services.jobs.get(job_id)
            if record is not None and record.status in final:
                done[job_id] = record
        return len(done) == len(job_ids)

    wait_until(all_done, timeout=120, what=f"{len(job_ids)} jobs to finish")
    return done


def _change_the_task(project: Path) -> None:
    """Version 1.1.0 answers "cancelled" instead of "processed"; committed, as a developer would."""
    package = project / "nfe_cancel"
    for path in (package / "task.py", project / "tests" / "test_task.py"):
        path.write_text(path.read_text().replace('"status": "processed"', '"status": "cancelled"'))
    init = package / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "1.0.0"', '__version__ = "1.1.0"'))
    subprocess.run(["git", "-C", str(project), "commit", "-qam", "Cancel for real (1.1.0)"], check=True)


def _new_task_through_its_pipeline(installation: Installation, runtime: str) -> None:
    root = installation.root
    installation.tornado("newtask", TASK, "--dest", "nfe-cancel", cwd=root)
    project = root / "nfe-cancel"

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env={**installation.env, "TORNADO_STRICT": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0 and "5 passed" in tests.stdout, tests.stdout + tests.stderr
    assert "skipped" not in tests.stdout, tests.stdout

    first = installation.tornado("pipeline", "run", "--local", "--runtime", runtime, cwd=project)
    assert "local run: approved automatically" in first.stdout
    assert installation.versions(project) == {"1.0.0": "current"}
    job = installation.client.submit(TASK, {"document_id": 42, "note": "hello"})
    done = installation.client.wait(job["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert done["result"] == {"document_id": 42, "status": "processed", "version": "1.0.0"}

    _change_the_task(project)
    with Load(installation.client) as load:
        second = installation.tornado("pipeline", "run", "--local", "--runtime", runtime, cwd=project)
    assert "drain nfe.cancel 1.0.0" in second.stdout
    assert installation.versions(project) == {"1.0.0": "retired", "1.1.0": "current"}

    assert load.refused == [] and len(load.accepted) > 20
    routed = {receipt["id"]: receipt["version"] for receipt in load.accepted}
    records = _finished(installation.services, list(routed))
    assert {job_id: r.status for job_id, r in records.items() if r.status is not JobStatus.SUCCEEDED} == {}
    assert all(records[job_id].result["version"] == version for job_id, version in routed.items())
    assert set(routed.values()) == {"1.0.0", "1.1.0"}  # v1 served until the switch, v2 after it
    after = installation.client.wait(installation.client.submit(TASK, {"document_id": 43})["id"], timeout=60)
    assert after["result"] == {"document_id": 43, "status": "cancelled", "version": "1.1.0"}


@pytest.mark.timeout(600)  # two image builds; the first one installs every dependency in a fresh engine
def test_a_new_task_is_released_with_docker_and_v2_takes_over_with_no_failed_job(
    install: Callable[[dict[str, str]], Installation], docker_engine: Any, worker_image: str
) -> None:
    # worker_image (tornado-core's own image) has the same dependency layers as the project's
    # image, so the session builds them once.
    _new_task_through_its_pipeline(install({"DOCKER_HOST": docker_engine.docker_host}), "docker")


def test_a_new_task_is_released_with_worker_processes_and_v2_takes_over_with_no_failed_job(
    install: Callable[[dict[str, str]], Installation],
) -> None:
    _new_task_through_its_pipeline(install({}), "process")


@pytest.mark.parametrize("archetype", ["batch", "file-report"])
def test_the_tests_of_every_other_archetype_pass_at_once_against_the_local_stack(
    archetype: str, stack_env: dict[str, str], tmp_path: Path
) -> None:
    subprocess.run(
        tornado_argv("newtask", "acme.report", "--archetype", archetype, "--dest", "p"),
        cwd=tmp_path,
        env=stack_env,
        capture_output=True,
        check=True,
    )
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path / "p",
        env={**stack_env, "TORNADO_STRICT": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert tests.returncode == 0 and " passed" in tests.stdout, tests.stdout + tests.stderr
    assert "skipped" not in tests.stdout and "failed" not in tests.stdout, tests.stdout
