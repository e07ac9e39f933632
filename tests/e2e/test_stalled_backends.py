"""A backend that hangs (up, but answering nothing) gets clients a quick 503, and loses nothing.

On each queue backend, the queue's own server is frozen (SIGSTOP: it keeps its port and its
connections) under a steady load of jobs whose effects are counted in the ERP database. While
it hangs, the API answers 503 with Retry-After instead of hanging; afterwards every job the API
accepted succeeds, exactly once in effect.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import effect_rows, wait_for_job, wait_until
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.devstack import DevStack
from tornado_core.errors import ApiError
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services
from tornado_core.toolchain.steady_load import SteadyLoad

DEADLINE = 2.0  # the API's request deadline in these tests (TORNADO_REQUEST_DEADLINE)
#: The queue's server, by backend: PostgreSQL is the queue (and the job store) of the embedded
#: backend; the SQS/S3 endpoint is the queue of the sqs backend.
STALLED = {"postgres": "postgres", "sqs": "endpoint"}


@pytest.fixture
def stalling_cluster(e2e_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[LocalCluster, str]]:
    env = {**e2e_env, "TORNADO_REQUEST_DEADLINE": str(DEADLINE)}
    cluster = LocalCluster(env, tmp_path)
    _api, url = cluster.start_api()
    cluster.start_worker("demo.sleep", concurrency=4, extra=["--poll-wait", "1"])
    yield cluster, url
    cluster.stop_all(grace=30)


def payload(n: int) -> dict[str, object]:
    return {"seconds": 0.02, "steps": 1, "record_effect": True}


def test_a_hung_queue_server_gets_503_with_retry_after_and_no_accepted_job_is_lost(
    backend: str,
    dev_stack: DevStack,
    stalling_cluster: tuple[LocalCluster, str],
    services: Services,
    tenant_token: str,
    e2e_env: dict[str, str],
) -> None:
    _cluster, url = stalling_cluster
    probe = TornadoClient(url, tenant_token, timeout=6 * DEADLINE)  # generous: only a hang exceeds it
    probe.submit("demo.echo", {"message": "the token cache is warm"})
    with SteadyLoad(url, tenant_token, "demo.sleep", rate=20, payload=payload) as load:
        wait_until(lambda: len(load.submitted) >= 20, what="jobs accepted before the stall")
        with dev_stack.stalled(STALLED[backend]):
            with pytest.raises(ApiError) as refused:
                probe.submit("demo.sleep", payload(-1), idempotency_key=f"probe-{uuid.uuid4().hex}")
            before = len(load.failures)
            wait_until(lambda: len(load.failures) >= before + 3, what="the load to be refused too")
        wait_until(lambda: len(load.submitted) >= 60, what="jobs accepted after the stall", timeout=60)

    assert refused.value.status == 503, refused.value  # not 0: the client's own timeout never hit
    assert refused.value.code == "backend_timeout"
    assert refused.value.headers.get("Retry-After") == "5"
    assert all(failure.startswith("503 ") for failure in load.failures), load.failures[:5]
    erp = e2e_env["TORNADO_ERP_DATABASE_URL"]
    for accepted in load.submitted:
        wait_for_job(services, accepted.job_id, JobStatus.SUCCEEDED, timeout=120)
        assert effect_rows(erp, accepted.job_id) == 1, accepted.job_id
