"""The ``tornado`` command as people use it: clear output, one clear error line, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from tests.e2e.helpers import start_workers
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.devstack import DevStack
from tornado_core.local_machine import tornado_argv

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module", autouse=True)
def echo_worker(module_cluster: LocalCluster, api_launch: Future[str]) -> None:
    start_workers(module_cluster, ("demo.echo", "demo.fail"), extra=["--poll-wait", "1"])


@pytest.fixture
def as_user(tornado_cli: Cli, api_url: str, tenant_token: str) -> Cli:
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return tornado_cli(*args, "--api-url", api_url, "--token", tenant_token, check=check)

    return run


def test_submit_with_a_delay_and_a_bad_delay(as_user: Cli) -> None:
    done = as_user("submit", "demo.echo", '{"message": "depois"}', "--delay", "1", "--wait")
    assert json.loads(done.stdout)["status"] == "succeeded"
    later = as_user("submit", "demo.echo", '{"message": "x"}', "--delay", "3600")
    assert json.loads(later.stdout)["status"] == "scheduled"  # beyond the queue's 15 minutes
    refused = as_user("submit", "demo.echo", '{"message": "x"}', "--delay", "-1", check=False)
    assert refused.returncode == 2 and "--delay" in refused.stderr


def test_submit_and_wait_prints_the_finished_job(as_user: Cli) -> None:
    done = as_user("submit", "demo.echo", '{"message": "boleto 42"}', "--wait", "--timeout", "60")
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded"
    assert job["result"] == {"message": "boleto 42"}
    shown = json.loads(as_user("jobs", "show", job["id"]).stdout)
    assert shown["id"] == job["id"]
    listed = as_user("jobs", "list", "--task", "demo.echo").stdout
    assert job["id"] in listed


def test_jobs_wait_exits_1_for_a_dead_job(as_user: Cli) -> None:
    queued = json.loads(as_user("submit", "demo.fail", '{"retryable": false}').stdout)
    waited = as_user("jobs", "wait", queued["id"], "--timeout", "60", check=False)
    assert waited.returncode == 1
    assert json.loads(waited.stdout)["status"] == "dead"


def test_submit_wait_exits_1_for_a_dead_job_like_jobs_wait(as_user: Cli) -> None:
    waited = as_user("submit", "demo.fail", '{"retryable": false}', "--wait", "--timeout", "60", check=False)
    assert waited.returncode == 1
    assert json.loads(waited.stdout)["status"] == "dead"


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        ("not json", 2, "not JSON"),
        ("{}", 1, "payload.message"),
        ('{"message": 1}', 1, "payload.message"),
    ],
)
def test_bad_payloads_get_one_clear_line_and_an_exit_code(
    as_user: Cli, payload: str, code: int, message: str
) -> None:
    result = as_user("submit", "demo.echo", payload, check=False)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_tenants_create_prints_a_token_once_and_refuses_duplicates(tornado_cli: Cli) -> None:
    name = f"padaria-sao-jose-{uuid.uuid4().hex[:6]}"
    created = tornado_cli("tenants", "create", name)
    assert created.stdout.strip().startswith("tnd_")
    assert name in tornado_cli("tenants", "list").stdout
    again = tornado_cli("tenants", "create", name, check=False)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    bad = tornado_cli("tenants", "create", "no spaces please", check=False)
    assert bad.returncode == 2


def test_worker_for_an_unknown_task_fails_clearly(tornado_cli: Cli) -> None:
    result = tornado_cli("worker", "--task", "nfe.nope", check=False)
    assert result.returncode == 1
    assert "unknown task 'nfe.nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_commands_without_settings_say_how_to_get_them() -> None:
    result = subprocess.run(
        tornado_argv("worker", "--task", "demo.echo"),
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "TORNADO_DATABASE_URL" in result.stderr
    assert "tornado dev env" in result.stderr


# The README's showcase runs on the default stack (PostgreSQL); its SQS run (20 s of the suite) ran the
# same code, whose SQS paths the end-to-end modules prove on every backend.
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_showcase_runs_end_to_end_on_the_local_stack(
    dev_stack: DevStack, stack_env: dict[str, str], backend: str
) -> None:
    env = {**stack_env, "TORNADO_STATE_DIR": str(dev_stack.state_dir)}
    result = subprocess.run(
        tornado_argv("showcase", "--jobs", "40", "--queue", backend),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(dev_stack.state_dir),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = dict(
        line.strip().rsplit(None, 1)
        for line in result.stdout.splitlines()
        if line.startswith("  ") and "ms" not in line
    )
    assert int(summary["jobs submitted over HTTP"]) == 40
    assert int(summary["succeeded"]) + int(summary["dead-lettered"]) == 40
    assert "submit-to-done p99" in result.stdout
    # The NF-e part: five invoices authorised by the stack's SEFAZ emulator, one refused at once.
    assert " 5 of 5" in result.stdout
    assert "refused at submission (422)  payload.invoice.totals" in result.stdout
    # The SPED part: a future period refused at once; last month's file made in parts, downloaded, valid.
    assert "refused at submission (422)  payload.end: Value error, the period must not end in the future" in (
        result.stdout
    )
    generated = re.search(r"generated in 2 parts +([\d,]+) lines", result.stdout)
    validated = re.search(r"tornado sped validate +EFD-\d{14}-\d{6}\.txt: valid, (\d+) lines", result.stdout)
    assert generated and validated and int(generated[1].replace(",", "")) == int(validated[1]) > 1000


def test_api_with_two_processes_serves_and_stops_cleanly(
    e2e_env: dict[str, str], tmp_path: Path, tenant_token: str
) -> None:
    cluster = LocalCluster(e2e_env, tmp_path)
    try:
        _process, url = cluster.start_api(processes=2)
        client = TornadoClient(url, tenant_token)
        ids = {client.submit("demo.echo", {"message": f"m{i}"})["id"] for i in range(20)}
        assert len(ids) == 20
        assert client.wait(next(iter(ids)), timeout=60)["status"] == "succeeded"
    finally:
        assert cluster.stop_all(grace=30) == {"api": 0}
