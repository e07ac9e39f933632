"""A ``sped.efd_icms_ipi`` worker killed mid-file (SIGKILL): nothing partial is ever visible in S3,
the job reruns on another worker and stores exactly the bytes the data gives.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.e2e.helpers import wait_for_job, wait_until
from tests.e2e.sped_support import TASK, Companies, expected_file, payload, seed_companies, unfinished_uploads
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services

pytestmark = pytest.mark.e2e

#: Documents of the busy company: about 70,000 lines, a file of some 17 MB (two 8 MiB parts and more).
DOCUMENTS = 15_000


@pytest.fixture(scope="module")
def backend() -> str:
    return "postgres"


@pytest.fixture(scope="module")
def companies(erp_database_url: str) -> Companies:
    return seed_companies(erp_database_url, documents=DOCUMENTS)


def test_a_worker_killed_mid_file_leaves_nothing_visible_and_the_rerun_writes_the_same_bytes(
    client: TornadoClient, services: Services, e2e_env: dict[str, str], companies: Companies,
    erp_database_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    cluster = LocalCluster(e2e_env, tmp_path / "logs")
    try:
        doomed = cluster.start_worker(TASK, concurrency=1, extra=["--poll-wait", "1"])
        receipt = client.submit(TASK, payload(companies.busy))
        prefix = f"sped/{services.jobs.get(receipt['id']).tenant}/{companies.busy}/"  # type: ignore[union-attr]

        def midway() -> bool:
            record = services.jobs.get(receipt["id"])
            return (
                record is not None
                and 0.3 <= record.progress < 0.8
                and bool(unfinished_uploads(services, prefix))
            )

        wait_until(midway, timeout=60, what="the file to be half written, with parts in S3")
        doomed.kill()  # SIGKILL while block C is being written and uploaded
        assert services.objects.list(prefix) == []  # the parts sent are not an object
        assert services.jobs.get(receipt["id"]).status is JobStatus.RUNNING  # type: ignore[union-attr]
        cluster.start_worker(TASK, concurrency=1, extra=["--poll-wait", "1"])
        job = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=120)
    finally:
        cluster.stop_all(grace=20)
    assert job.attempts == 2 and job.result is not None
    assert services.objects.list(prefix) == [job.result["key"]]
    stored = services.objects.get(job.result["key"])
    assert stored == expected_file(erp_database_url, companies.busy)
    assert hashlib.sha256(stored).hexdigest() == job.result["sha256"]
    assert unfinished_uploads(services, prefix) == []  # the dead writer's parts were discarded
