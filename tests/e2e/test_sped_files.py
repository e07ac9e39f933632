"""SPED files end to end: the real API, a real ``sped.efd_icms_ipi`` worker, PostgreSQL and S3.

An ERP's view: submit, wait, list and download through the tenant's endpoints; bad periods are
refused at submission and an unknown company fails at once, with nothing written to S3.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import date

import pytest
from tornado_tasks.sped.layouts import LayoutRegistry
from tornado_tasks.sped.validator import validate

from tests.e2e.helpers import wait_for_job
from tests.e2e.nfe_support import api_get, fetch
from tests.e2e.sped_support import PART_TASK, TASK, Companies, expected_file, payload, seed_companies
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.errors import ApiError
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backend() -> str:
    """The generator does not depend on the queue; PostgreSQL keeps the module short."""
    return "postgres"


@pytest.fixture(scope="module")
def companies(erp_database_url: str) -> Companies:
    return seed_companies(erp_database_url, documents=200)


@pytest.fixture(scope="module")
def sped_worker(e2e_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(e2e_env, tmp_path_factory.mktemp("sped-logs"))
    cluster.start_worker(TASK, concurrency=2, extra=["--poll-wait", "1"])
    cluster.start_worker(PART_TASK, concurrency=2, extra=["--poll-wait", "1"])
    yield cluster
    cluster.stop_all(grace=20)


def test_a_tenant_lists_and_downloads_its_own_files_only(
    client: TornadoClient, api_url: str, tenant_token: str, other_tenant_token: str, services: Services,
    sped_worker: LocalCluster, companies: Companies, erp_database_url: str,
) -> None:  # fmt: skip
    receipt = client.submit(TASK, payload(companies.busy))
    job = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=60)
    assert job.result is not None and job.progress == 1.0
    code, listed = api_get(api_url, tenant_token, f"/v1/sped/files?cnpj={companies.busy}&period=2025-03")
    assert code == 200 and [f["job_id"] for f in listed["files"]] == [receipt["id"]]
    code, found = api_get(api_url, tenant_token, f"/v1/sped/files/{receipt['id']}")
    assert code == 200 and found["sha256"] == job.result["sha256"] and found["layout"] == "019"
    data = fetch(found["url"])
    assert data == expected_file(erp_database_url, companies.busy)
    assert hashlib.sha256(data).hexdigest() == found["sha256"] and len(data) == found["bytes"]
    assert list(validate(io.BytesIO(data), LayoutRegistry.bundled())) == []
    assert api_get(api_url, other_tenant_token, f"/v1/sped/files/{receipt['id']}")[0] == 404
    assert api_get(api_url, other_tenant_token, f"/v1/sped/files?cnpj={companies.busy}")[1]["files"] == []
    assert api_get(api_url, tenant_token, "/v1/sped/files?period=2025-13")[0] == 400


def test_a_file_split_in_parts_run_by_part_workers_is_the_same_file(
    client: TornadoClient, services: Services, sped_worker: LocalCluster, companies: Companies,
    erp_database_url: str,
) -> None:  # fmt: skip
    receipt = client.submit(TASK, {**payload(companies.busy), "parts": 3})
    job = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=120)
    assert job.result is not None and job.result["parts"] == 3
    assert services.objects.get(job.result["key"]) == expected_file(erp_database_url, companies.busy)
    prefix = job.result["key"].rsplit("/", 1)[0]
    assert services.objects.list(f"{prefix}/parts/{receipt['id']}/") == []  # the parts are gone
    part = {"file_job_id": "x", "index": 1, **payload(companies.busy)}
    with pytest.raises(ApiError, match="is internal") as refused:  # parts are queued by the file's job only
        client.submit(PART_TASK, part)
    assert refused.value.status == 422


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (date(2099, 3, 1), date(2099, 3, 31), "the period must not end in the future"),
        (date(2025, 3, 20), date(2025, 3, 10), "end must not be before start"),
        (date(2019, 3, 1), date(2019, 3, 31), "no EFD ICMS/IPI layout for the period ending 31/03/2019"),
    ],
)
def test_a_bad_period_is_refused_at_submission_with_its_field(
    client: TornadoClient, services: Services, companies: Companies, start: date, end: date, message: str
) -> None:
    with pytest.raises(ApiError) as refused:
        client.submit(TASK, payload(companies.busy, start, end))
    assert refused.value.status == 422
    assert [(f["field"], message in f["message"]) for f in refused.value.fields or []] == [
        ("payload.end", True)
    ]


def test_an_unknown_company_fails_at_once_and_writes_nothing(
    client: TornadoClient, services: Services, sped_worker: LocalCluster
) -> None:
    receipt = client.submit(TASK, payload("11222333000181"))
    job = wait_for_job(services, receipt["id"], JobStatus.DEAD, timeout=60)
    assert job.attempts == 1 and "no company with CNPJ 11222333000181" in str(job.error_message)
    tenant = job.tenant
    assert services.objects.list(f"sped/{tenant}/11222333000181/") == []
