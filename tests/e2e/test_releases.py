"""Zero-downtime releases with the process runtime: real API, supervisors, workers and CLI.

Each test gets its own database, queue prefix and runtime state dir, so it starts
from a task nobody has released yet. The task is ``demo.release`` from
``tests/data/releasable/vN`` (v3 fails every job); the API has none of its code
and validates its payloads with the JSON Schema registered by ``release deploy``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from click.testing import CliRunner
from tornado_cli.main import cli

from tests.celery_support import backend_env
from tests.data.releasable_base import EFFECTS_TABLE
from tests.e2e.helpers import wait_until
from tests.e2e.release_helpers import TASK, code_of, release_load, wait_all_done, worker_pids
from tornado_core.adapters.postgres import PostgresPool
from tornado_core.adapters.postgres.releases import PostgresReleaseStore
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.adapters.runtimes.process.runtime import ProcessRuntime
from tornado_core.bootstrap import build_services
from tornado_core.client import ApiError, TornadoClient
from tornado_core.devstack import DevStack, ExternalStack
from tornado_core.errors import ReleaseError
from tornado_core.local_machine import tornado_argv
from tornado_core.naming import dead_letter_name, queue_name
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token
from tornado_core.toolchain.steady_load import SteadyLoad


def accepted_by(load: SteadyLoad, version: str) -> int:
    """How many jobs of the load the API routed to ``version`` so far."""
    return sum(1 for sent in load.submitted if sent.version == version)


def lock_is_held(store: PostgresReleaseStore) -> bool:
    """Whether some release operation holds the task's lock right now."""
    try:
        with store.lock(TASK):
            return False
    except ReleaseError:
        return True


@dataclass
class World:
    """One isolated Tornado installation: database, API process, CLI, runtime state."""

    env: dict[str, str]
    services: Services
    store: PostgresReleaseStore
    api_url: str
    token: str
    state_dir: Path

    def cli(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run ``tornado ARGS``; with ``check`` a non-zero exit fails the test with its stderr."""
        result = subprocess.run(
            tornado_argv(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"tornado {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def invoke(self, *args: str) -> tuple[int, str]:
        """Run ``tornado ARGS`` in this process (quicker); its exit code and output."""
        result = CliRunner().invoke(cli, list(args), env=self.env)
        return result.exit_code, result.output

    def start_cli(self, *args: str) -> subprocess.Popen[str]:
        """Start ``tornado ARGS`` in the background (to kill it mid-way)."""
        return subprocess.Popen(
            tornado_argv(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def deploy(self, version: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cli("release", "deploy", TASK, version, *code_of(version), *extra)

    def queue(self, version: str) -> str:
        return queue_name(self.services.settings.queue_prefix, TASK, version)

    def supervisor_pid(self, version: str) -> int:
        """The pid of the process runtime's supervisor of a version."""
        folder = self.state_dir / "runtime" / TASK / version
        return int(json.loads((folder / "supervisor.json").read_text())["pid"])

    def states(self) -> dict[str, str]:
        """Version -> release state, straight from the release store."""
        return {r.version: str(r.state) for r in self.store.releases(TASK)}

    def snapshot(self) -> tuple[object, ...]:
        """Route, states and event count: what any release operation would change."""
        return self.store.route(TASK), self.states(), len(self.store.events(TASK, limit=1000))

    def effect_runs(self, job_ids: list[str]) -> dict[str, int]:
        with psycopg2.connect(self.env["TORNADO_ERP_DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT job_id, runs FROM release_effects WHERE job_id = ANY(%s)", (job_ids,))
            return dict(cur.fetchall())


@pytest.fixture
def make_world(
    dev_stack: DevStack | ExternalStack,
    stack_env: dict[str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[[str], World]]:
    """Factory of isolated installations on a queue backend; everything is stopped at the end."""
    made: list[tuple[World, LocalCluster, Callable[[], None], PostgresPool, str]] = []
    with psycopg2.connect(stack_env["TORNADO_ERP_DATABASE_URL"]) as conn, conn.cursor() as cur:
        cur.execute(EFFECTS_TABLE)

    def make(backend: str) -> World:
        database = dev_stack.create_database()
        env = {
            **stack_env,
            **backend_env(backend, request),
            "TORNADO_QUEUE_PREFIX": f"rel{uuid.uuid4().hex[:6]}",
            "TORNADO_DATABASE_URL": database,
            "TORNADO_STATE_DIR": str(tmp_path / f"state-{len(made)}"),
            "TORNADO_LOG_LEVEL": "INFO",
        }
        services, close = build_services(Settings.load(env))
        token = new_token()
        services.tenants.create("acme", hash_token(token))
        cluster = LocalCluster(env, tmp_path / f"logs-{len(made)}")
        _api, url = cluster.start_api()
        pool = PostgresPool(database, max_size=2)
        world = World(env, services, PostgresReleaseStore(pool), url, token, Path(env["TORNADO_STATE_DIR"]))
        made.append((world, cluster, close, pool, database))
        return world

    yield make
    for world, cluster, close, pool, database in made:
        cluster.stop_all(grace=20)
        runtime = ProcessRuntime(world.services.settings, state_dir=world.state_dir / "runtime")
        for folder in (world.state_dir / "runtime" / TASK).glob("*"):
            runtime.stop(TASK, folder.name, grace_period=20)
        close()
        pool.close()
        dev_stack.drop_database(database)


@pytest.mark.parametrize(("backend", "rate"), [("postgres", 50.0), ("sqs", 10.0), ("redis", 20.0)])
def test_bluegreen_under_load_every_job_succeeds_once_and_v1_gets_nothing_after_the_switch(
    make_world: Callable[[str], World], backend: str, rate: float
) -> None:
    world = make_world(backend)
    world.deploy("1.0.0", "--replicas", "2")
    with release_load(world.api_url, world.token, rate) as load:
        wait_until(lambda: len(load.submitted) >= 20, what="1.0.0 to take jobs under load")
        world.deploy("2.0.0", "--replicas", "2", "--smoke", "--smoke-payload", '{"n": 0}')
        world.cli("release", "promote", TASK, "2.0.0")
        wait_until(lambda: accepted_by(load, "2.0.0") >= 20, what="2.0.0 to take jobs after the promote")
        drained = world.cli("release", "drain", TASK, "1.0.0", "--timeout", "120")
        world.cli("release", "retire", TASK, "1.0.0")
        after_retire = len(load.submitted)
        wait_until(lambda: len(load.submitted) >= after_retire + 10, what="jobs accepted after the retire")
    assert load.failures == []
    assert "1.0.0: drained" in drained.stdout

    jobs = wait_all_done(world.services, [s.job_id for s in load.submitted])
    assert {r.status for r in jobs.values()} == {JobStatus.SUCCEEDED}
    for sent in load.submitted:
        record = jobs[sent.job_id]
        assert record.result["version"] == record.version == sent.version, sent  # pinned to its version
    # Once the API had answered with 2.0.0, it had switched: no job sent after that went to 1.0.0.
    switched = min(s.answered for s in load.submitted if s.version == "2.0.0")
    assert [s for s in load.submitted if s.version == "1.0.0" and s.sent > switched] == []
    assert accepted_by(load, "1.0.0") >= 20  # both versions really took jobs
    runs = world.effect_runs(list(jobs))
    assert set(runs.values()) == {1} and len(runs) == len(jobs)  # exactly once
    assert worker_pids(world.state_dir, "1.0.0") == [] and len(worker_pids(world.state_dir, "2.0.0")) == 2
    status = world.cli("release", "status", TASK).stdout.splitlines()
    assert status[0].split()[:3] == ["VERSION", "STATE", "ROLE"]
    assert status[1].split()[:3] == ["2.0.0", "current", "current"]
    assert status[2].split()[:2] == ["1.0.0", "retired"]


def test_canary_of_a_failing_version_rolls_back_and_its_jobs_succeed_on_the_stable_one(
    make_world: Callable[[str], World],
) -> None:
    world = make_world("postgres")
    world.deploy("2.0.0", "--replicas", "2")
    with release_load(world.api_url, world.token, 20.0) as load:
        wait_until(lambda: len(load.submitted) >= 10, what="2.0.0 to take jobs under load")
        run = world.cli(
            "release",
            "run",
            TASK,
            "3.0.0",
            *code_of("3.0.0"),
            "--strategy",
            "canary",
            "--steps",
            "10,50,100",
            "--max-error-rate",
            "2",
            "--step-wait",
            "3",
            "--min-jobs",
            "5",
            check=False,
        )
        after_rollback = len(load.submitted)
        wait_until(lambda: len(load.submitted) >= after_rollback + 10, what="jobs after the rollback")
    assert run.returncode == 1 and "3.0.0 was rolled back" in run.stderr, run.stdout + run.stderr
    assert "ramped 3.0.0 to 10%" in run.stdout and "promoted" not in run.stdout
    assert load.failures == []

    failed_on_v3 = [s.job_id for s in load.submitted if s.version == "3.0.0"]
    assert failed_on_v3, "the canary got no jobs"
    jobs = wait_all_done(world.services, [s.job_id for s in load.submitted])
    for job_id in failed_on_v3:
        record = jobs[job_id]
        assert (record.status, record.version, record.result["version"]) == (
            JobStatus.SUCCEEDED,
            "2.0.0",
            "2.0.0",
        )
        assert record.attempts >= 2  # it failed on 3.0.0 first
    assert {r.status for r in jobs.values()} == {JobStatus.SUCCEEDED}
    queue = world.queue("3.0.0")
    assert (
        world.services.queue.depth(queue).total
        == world.services.queue.depth(dead_letter_name(queue)).total
        == 0
    )
    assert worker_pids(world.state_dir, "3.0.0") == []
    assert world.states() == {"2.0.0": "current", "3.0.0": "rolled_back"}


def test_a_release_cli_killed_mid_deploy_or_mid_drain_completes_on_re_run(
    make_world: Callable[[str], World],
) -> None:
    world = make_world("postgres")
    world.deploy("1.0.0")
    deploying = world.start_cli("release", "deploy", TASK, "2.0.0", *code_of("2.0.0"), "--replicas", "2")
    wait_until(lambda: worker_pids(world.state_dir, "2.0.0"), timeout=60, what="2.0.0 workers to start")
    deploying.send_signal(signal.SIGKILL)
    deploying.wait()
    supervisor = world.supervisor_pid("2.0.0")
    world.deploy("2.0.0", "--replicas", "2")  # the lock died with the CLI; the supervisor is found again
    assert world.supervisor_pid("2.0.0") == supervisor
    wait_until(lambda: len(worker_pids(world.state_dir, "2.0.0")) == 2, what="both 2.0.0 workers to run")
    workers = worker_pids(world.state_dir, "2.0.0")
    assert world.states() == {"1.0.0": "current", "2.0.0": "deployed"}
    os.kill(workers[0], signal.SIGKILL)  # a crashed worker is restarted by its supervisor
    wait_until(
        lambda: len(pids := worker_pids(world.state_dir, "2.0.0")) == 2 and workers[0] not in pids,
        timeout=30,
        what="the supervisor to restart the killed worker",
    )

    client = TornadoClient(world.api_url, world.token)
    # Long enough to outlast the promote, the 1 s drain and the next drain's start on a slow machine:
    # at 3 s the jobs could finish first, and the drain never held the lock long enough to be seen.
    slow = [client.submit(TASK, {"n": n, "seconds": 8, "record_effect": True})["id"] for n in range(4)]
    world.cli("release", "promote", TASK, "2.0.0")
    before = world.snapshot()
    code, output = world.invoke("release", "drain", TASK, "1.0.0", "--timeout", "1")
    assert code == 1 and "not done after 1s" in output and "nothing was changed" in output, output
    assert world.snapshot() == before
    draining = world.start_cli("release", "drain", TASK, "1.0.0")
    # Killed while it really drains: it holds the task's release lock, waiting for 1.0.0's slow jobs.
    wait_until(lambda: lock_is_held(world.store), what="the drain to hold the release lock")
    draining.send_signal(signal.SIGKILL)
    draining.wait()
    assert worker_pids(world.state_dir, "1.0.0"), "killing the CLI must not stop the workers"
    assert world.states()["1.0.0"] == "draining"
    world.cli("release", "drain", TASK, "1.0.0", "--timeout", "60")
    assert worker_pids(world.state_dir, "1.0.0") == []
    assert world.states() == {"1.0.0": "drained", "2.0.0": "current"}
    jobs = wait_all_done(world.services, slow)
    assert {(r.status, r.version, r.attempts) for r in jobs.values()} == {(JobStatus.SUCCEEDED, "1.0.0", 1)}
    assert set(world.effect_runs(slow).values()) == {1}


def test_bad_input_is_one_clear_error_line_and_route_changes_reach_the_api_within_a_second(
    make_world: Callable[[str], World],
) -> None:
    world = make_world("postgres")
    world.deploy("1.0.0")
    before = world.snapshot()
    cases = {
        "promote no.such 1.0.0": "Error: unknown task 'no.such'",
        f"promote {TASK} 2.0.0": "Error: version '2.0.0' of demo.release was never deployed",
        f"retire {TASK} 1.0.0": "Error: cannot retire demo.release 1.0.0: it is current",
        f"drain {TASK} 1.0.0 --timeout 1": "Error: cannot drain demo.release 1.0.0: it is current",
        f"ramp {TASK} 1.0.0 --percent 10": "Error: demo.release 1.0.0 is current already",
        f"rollback {TASK}": "Error: demo.release 1.0.0 has no previous version to roll back to",
        f"deploy {TASK} 9.0.0 {' '.join(code_of('1.0.0'))}": "Error: task 'demo.release' has no version",
    }
    for args, message in cases.items():
        code, output = world.invoke("release", *args.split())
        errors = [line for line in output.splitlines() if line.startswith("Error:")]
        assert (code, errors) == (1, [errors[0]]) and errors[0].startswith(message), (args, output)
    assert world.snapshot() == before
    client = TornadoClient(world.api_url, world.token)
    with pytest.raises(ApiError) as refused:  # the API has no code of demo.release: the stored schema says no
        client.submit(TASK, {"n": -1})
    assert (refused.value.status, [f["field"] for f in refused.value.fields]) == (422, ["payload.n"])

    world.deploy("2.0.0")
    world.cli("release", "promote", TASK, "2.0.0")  # the running API sees route changes within a second
    wait_until(
        lambda: client.submit(TASK, {"n": 1})["version"] == "2.0.0", timeout=1, what="routing to 2.0.0"
    )
    world.cli("release", "pin", TASK, "1.0.0", "--tenant", "acme")  # new jobs of acme go to 1.0.0 again
    wait_until(lambda: client.submit(TASK, {"n": 1})["version"] == "1.0.0", timeout=1, what="the pin")
    code, output = world.invoke("release", "drain", TASK, "1.0.0")
    assert code == 1 and "Error: cannot drain demo.release 1.0.0: it is pinned: acme" in output
