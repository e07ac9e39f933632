"""A shop's own Celery code submits Tornado jobs: ``send_task`` and celery beat, through ``tornado intake``.

The jobs run on ``tornado worker --engine celery`` (the flag, not TORNADO_QUEUE, picks the engine),
and are looked up in the job store by the idempotency key the shop chose.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from kombu import Queue

from tests.celery_support import CELERY_BACKENDS
from tests.e2e.helpers import wait_for_job, wait_until
from tornado_core.adapters.runtimes.process.cluster import LocalCluster, ManagedProcess
from tornado_core.bootstrap import provision_queues
from tornado_core.naming import intake_queue_spec
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services
from tornado_core.tokens import hash_token, new_token

pytestmark = pytest.mark.parametrize("backend", CELERY_BACKENDS, indirect=True)

#: A shop's Celery app as it would sit in its Django project, with a beat schedule submitting a job.
SHOP_APP = """
import os

from celery import Celery
from kombu import Queue

app = Celery("shop", broker=os.environ["SHOP_BROKER_URL"])
app.conf.task_routes = {"tornado.submit": {"queue": Queue(os.environ["SHOP_INTAKE_QUEUE"], no_declare=True)}}
app.conf.beat_schedule = {
    "echo-every-second": {
        "task": "tornado.submit",
        "schedule": 1.0,
        "args": ["demo.echo", {"message": "from beat"}],
        "kwargs": {"tenant": os.environ["SHOP_TENANT"]},
    },
}
"""


@pytest.fixture(scope="module")
def tenant(services: Services) -> str:
    name = f"shop-{uuid.uuid4().hex[:8]}"
    services.tenants.create(name, hash_token(new_token()))
    return name


@pytest.fixture(scope="module")
def intake_queue(services: Services) -> str:
    return intake_queue_spec(services.settings.queue_prefix).name


@pytest.fixture(scope="module")
def running(
    e2e_env: dict[str, str], services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    """``tornado intake`` and a ``tornado worker --engine celery`` of demo.echo, whose environment
    names the broker but not the engine; the API's start created the intake queue."""
    logs = tmp_path_factory.mktemp("logs")
    cluster = LocalCluster({k: v for k, v in e2e_env.items() if k != "TORNADO_QUEUE"}, logs)
    try:
        assert intake_queue_spec(services.settings.queue_prefix).name in provision_queues(services)
        cluster.start_worker("demo.echo", extra=["--engine", "celery"])
        intake = ManagedProcess("intake", ["intake", "--poll-wait", "1"], e2e_env, logs / "intake.log")
        cluster.processes.append(intake.start())
        yield cluster
    finally:
        cluster.stop_all(grace=20)


def test_send_task_from_a_shops_celery_app_becomes_a_job_that_runs_once(
    running: LocalCluster, services: Services, tenant: str, intake_queue: str, e2e_env: dict[str, str]
) -> None:
    shop = Celery("shop", broker=e2e_env["TORNADO_BROKER_URL"], set_as_current=False)
    # One route in the shop's Celery settings; no_declare: the intake declared its queue (on RabbitMQ
    # a quorum queue, which Celery's own declaration of a classic queue would contradict).
    shop.conf.task_routes = {"tornado.submit": {"queue": Queue(intake_queue, no_declare=True)}}
    for _ in range(2):  # the shop's code retried the send: still one job
        shop.send_task(
            "tornado.submit",
            args=["demo.echo", {"message": "from django"}],
            kwargs={"tenant": tenant, "idempotency_key": "order-1"},
        )
    job_id = services.job_ids.for_idempotency_key(tenant, "demo.echo\0order-1")
    record = wait_for_job(services, job_id, JobStatus.SUCCEEDED)
    assert (record.result, record.attempts) == ({"message": "from django"}, 1)
    assert [job.job_id for job in services.jobs.list(tenant=tenant, task="demo.echo").jobs] == [job_id]
    wait_until(lambda: services.queue.depth(intake_queue).total == 0, what="both messages acknowledged")
    assert all(process.alive() for process in running.processes)


def test_celery_beat_drives_a_schedule_through_the_intake(
    running: LocalCluster,
    services: Services,
    tenant: str,
    intake_queue: str,
    e2e_env: dict[str, str],
    tmp_path: Path,
) -> None:
    (tmp_path / "shopapp.py").write_text(SHOP_APP)
    env = {
        **os.environ, "SHOP_BROKER_URL": e2e_env["TORNADO_BROKER_URL"], "SHOP_TENANT": tenant,
        "SHOP_INTAKE_QUEUE": intake_queue,
    }  # fmt: skip
    argv = [sys.executable, "-m", "celery", "-A", "shopapp", "beat", "--schedule", str(tmp_path / "schedule")]
    with (tmp_path / "beat.log").open("wb") as log:
        beat = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:

            def from_beat() -> list[str]:
                page = services.jobs.list(tenant=tenant, task="demo.echo", status=JobStatus.SUCCEEDED)
                return [j.job_id for j in page.jobs if j.result == {"message": "from beat"}]

            done = wait_until(lambda: len(from_beat()) >= 2, timeout=60, what="two jobs submitted by beat")
        finally:
            beat.terminate()
            beat.wait(timeout=20)
    assert done, (tmp_path / "beat.log").read_text()[-2000:]
