"""With the SQS backend, a PostgreSQL outage does not stop the ERP from submitting jobs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import wait_for_job
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.bootstrap import build_services
from tornado_core.client import TornadoClient
from tornado_core.devstack import DevStack
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token


@pytest.fixture
def sqs_env(stack_env: dict[str, str]) -> dict[str, str]:
    return {**stack_env, "TORNADO_QUEUE": "sqs", "TORNADO_QUEUE_PREFIX": f"outage{uuid.uuid4().hex[:6]}"}


@pytest.fixture
def sqs_services(sqs_env: dict[str, str]) -> Iterator[Services]:
    services, close = build_services(Settings.load(sqs_env))
    yield services
    close()


def test_sqs_backend_accepts_jobs_while_postgres_is_down_and_drains_them_after(
    dev_stack: DevStack, sqs_env: dict[str, str], sqs_services: Services, tmp_path: Path
) -> None:
    token = new_token()
    sqs_services.tenants.create(f"outage-{uuid.uuid4().hex[:6]}", hash_token(token))
    cluster = LocalCluster(sqs_env, tmp_path)
    try:
        _api, url = cluster.start_api()
        client = TornadoClient(url, token)
        client.submit("demo.echo", {"message": "warm-up"})  # the token cache is warm
        dev_stack.stop_postgres()
        try:
            accepted = [client.submit("demo.echo", {"message": f"while down {i}"}) for i in range(5)]
            cluster.start_worker("demo.echo", extra=["--poll-wait", "1"], wait_ready=False)
        finally:
            dev_stack.start_postgres()
        assert [r["status"] for r in accepted] == ["queued"] * 5
        for i, receipt in enumerate(accepted):
            record = wait_for_job(sqs_services, receipt["id"], JobStatus.SUCCEEDED, timeout=90)
            assert record.result == {"message": f"while down {i}"}
    finally:
        assert set(cluster.stop_all(grace=20).values()) == {0}
