"""NF-e outcomes end to end through real workers: rejections burn a number that ``nfe.void`` then voids,
a denial is kept, timeouts and 5xx are retried without a second emission, a UF whose SEFAZ keeps
failing switches to its contingency authority, and cancellations and correction letters are
registered (or refused outside the legal window).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg2
import pytest
from tornado_tasks.nfe.certificates import load_a1
from tornado_tasks.nfe.config import NfeConfig
from tornado_tasks.nfe.endpoints import EndpointTable
from tornado_tasks.nfe.messages import authorization_request, read_answer
from tornado_tasks.nfe.transport import SefazClient

from tests.e2e.helpers import start_workers, wait_for_job
from tests.e2e.nfe_support import PARANA, Emulator, api_get, emit_payload, new_cnpj, numbers_of
from tests.nfe_requests import signed_nfe
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.services import Services
from tornado_core.tokens import hash_token

pytestmark = pytest.mark.e2e

TASKS = ("nfe.emit", "nfe.cancel", "nfe.correct", "nfe.void")


@pytest.fixture(scope="module")
def backend() -> str:
    return "postgres"


@pytest.fixture(scope="module", autouse=True)
def nfe_workers(nfe_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(nfe_env, tmp_path_factory.mktemp("nfe-logs"))
    start_workers(cluster, TASKS, concurrency=2, extra=["--poll-wait", "1"])
    yield cluster
    cluster.stop_all(grace=20)


def run(
    client: TornadoClient, services: Services, task: str, payload: dict[str, Any], status: JobStatus
) -> JobRecord:
    receipt = client.submit(task, payload)
    return wait_for_job(services, receipt["id"], status, timeout=90)


def authorised(client: TornadoClient, services: Services, issuer: str, **options: Any) -> dict[str, Any]:
    job = run(client, services, "nfe.emit", emit_payload(issuer, **options), JobStatus.SUCCEEDED)
    assert job.result is not None and job.result["state"] == "authorized"
    return job.result


@pytest.mark.parametrize("code", [225, 297])
def test_a_rejection_burns_the_number_and_nfe_void_voids_it(
    client: TornadoClient,
    services: Services,
    erp_database_url: str,
    issuer: str,
    emulator: Emulator,
    code: int,
) -> None:
    emulator.script(issuer, "reject", status=code)
    job = run(client, services, "nfe.emit", emit_payload(issuer), JobStatus.DEAD)
    assert (
        job.attempts == 1 and f"{code}" in (job.error_message or "") and "burned" in (job.error_message or "")
    )
    assert numbers_of(erp_database_url, issuer) == [(1, "rejected_burned")]

    void = {"cnpj": issuer, "uf": "SP", "series": 1, "first_number": 1, "last_number": 1,
            "reason": "Numero queimado por rejeicao da SEFAZ"}  # fmt: skip
    voided = run(client, services, "nfe.void", void, JobStatus.SUCCEEDED)
    assert voided.result is not None and voided.result["state"] == "voided"
    assert numbers_of(erp_database_url, issuer) == [(1, "voided")]
    assert authorised(client, services, issuer)["number"] == 2  # the series goes on after the voided number


def test_a_denied_nfe_fails_but_keeps_its_number_and_its_document(
    client: TornadoClient, services: Services, erp_database_url: str, api_url: str, tenant_token: str,
    issuer: str, emulator: Emulator,
) -> None:  # fmt: skip
    emulator.script(issuer, "reject", status=301)
    job = run(client, services, "nfe.emit", emit_payload(issuer), JobStatus.DEAD)
    assert "denied" in (job.error_message or "") and "301" in (job.error_message or "")
    assert numbers_of(erp_database_url, issuer) == [(1, "authorized")]  # used: never voided
    key = next(r for r in emulator.requests_for(issuer) if r["service"] == "NFeAutorizacao4")["keys"][0]
    code, status = api_get(api_url, tenant_token, f"/v1/nfe/{key}")
    assert code == 200 and status["state"] == "denied" and status["files"] == ["nfeProc"]


@pytest.mark.parametrize("scenario", ["timeout", "server_error"])
def test_a_timeout_or_a_5xx_is_retried_after_asking_for_the_protocol(
    client: TornadoClient, services: Services, erp_database_url: str, issuer: str, emulator: Emulator,
    scenario: str,
) -> None:  # fmt: skip
    emulator.script(
        issuer, scenario, service="NFeAutorizacao4", **({"delay": 10} if scenario == "timeout" else {})
    )
    result = authorised(client, services, issuer)
    assert result["sends"] == 2
    seen = [r["service"] for r in emulator.requests_for(issuer)]
    assert seen == ["NFeAutorizacao4", "NFeConsultaProtocolo4", "NFeAutorizacao4"]
    assert numbers_of(erp_database_url, issuer) == [(1, "authorized")]


def test_a_uf_whose_sefaz_keeps_failing_switches_to_its_svc_and_back_when_its_status_is_107(
    client: TornadoClient, services: Services, issuer: str, emulator: Emulator,
    tornado_cli: Callable[..., Any],
) -> None:  # fmt: skip
    emulator.script(issuer, "unavailable", count=2, status=109)
    first = authorised(client, services, issuer, address=PARANA)
    assert first["authority"] == "PR" and first["access_key"][34] == "1"  # registered before the switch
    try:
        shown = tornado_cli("nfe", "contingency", "PR").stdout
        assert "SVC-RS" in shown and "automatic after 2 failures" in shown
        emulator.script(None, "unavailable", service="NFeStatusServico4", status=108)  # PR still down
        second = authorised(client, services, issuer, address=PARANA)
        assert second["authority"] == "SVC-RS" and second["access_key"][34] == "7"  # tpEmis 7: SVC-RS
        third = authorised(client, services, issuer, address=PARANA)  # PR's status answers 107 again
        assert third["authority"] == "PR" and third["access_key"][34] == "1"
        assert "own SEFAZ" in tornado_cli("nfe", "contingency", "PR").stdout
    finally:
        tornado_cli("nfe", "contingency", "PR", "--off")
    statuses = [
        r["cStat"] for r in emulator.call("GET", "/emulator/requests?service=NFeStatusServico4")["requests"]
    ]
    assert statuses[-2:] == ["108", "107"]


def test_cancellation_inside_the_window_is_registered_and_outside_it_is_refused(
    client: TornadoClient,
    services: Services,
    api_url: str,
    tenant_token: str,
    issuer: str,
    emulator: Emulator,
) -> None:
    key = authorised(client, services, issuer)["access_key"]
    reason = "Pedido cancelado pelo cliente antes do envio"
    letter = {"access_key": key, "correction": "Endereco de entrega: Rua B, 2"}
    correction = run(client, services, "nfe.correct", letter, JobStatus.SUCCEEDED)
    assert correction.result is not None and correction.result["sequence"] == 1
    cancelled = run(
        client, services, "nfe.cancel", {"access_key": key, "reason": reason}, JobStatus.SUCCEEDED
    )
    assert cancelled.result is not None and cancelled.result["status_code"] == 135
    assert api_get(api_url, tenant_token, f"/v1/nfe/{key}")[1]["state"] == "cancelled"

    late_key = authorised(client, services, issuer)["access_key"]
    emulator.call("PUT", "/emulator/clock", {"offset_seconds": 25 * 3600})
    try:
        late = run(client, services, "nfe.cancel", {"access_key": late_key, "reason": reason}, JobStatus.DEAD)
    finally:
        emulator.call("PUT", "/emulator/clock", {"offset_seconds": 0})
    assert "501" in (late.error_message or "")
    assert api_get(api_url, tenant_token, f"/v1/nfe/{late_key}")[1]["state"] == "authorized"


def test_a_tenant_cannot_cancel_another_tenants_nfe(
    client: TornadoClient, services: Services, api_url: str, other_tenant_token: str, issuer: str,
    emulator: Emulator,
) -> None:  # fmt: skip
    key = authorised(client, services, issuer)["access_key"]
    other = TornadoClient(api_url, other_tenant_token)
    receipt = other.submit("nfe.cancel", {"access_key": key, "reason": "Tentativa de outro inquilino aqui"})
    job = wait_for_job(services, receipt["id"], JobStatus.DEAD, timeout=60)
    assert "no NF-e" in (job.error_message or "")
    assert [r for r in emulator.requests_for(issuer) if r["service"] == "NFeRecepcaoEvento4"] == []


def test_an_nfe_from_an_erp_order_and_an_order_that_is_not_there(
    client: TornadoClient, services: Services, erp_database_url: str, issuer: str, tenant_token: str
) -> None:
    tenant = services.tenants.grants()[hash_token(tenant_token)].tenant
    order = f"PED-{issuer[-6:]}"
    with psycopg2.connect(erp_database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS erp_order_invoice (tenant text, order_id text, invoice jsonb,"
            " PRIMARY KEY (tenant, order_id))"
        )
        cur.execute("CREATE OR REPLACE VIEW nfe_order_invoice AS SELECT * FROM erp_order_invoice")
        invoice = emit_payload(issuer)["invoice"]
        cur.execute("INSERT INTO erp_order_invoice VALUES (%s, %s, %s)", (tenant, order, json.dumps(invoice)))
    result = run(client, services, "nfe.emit", {"order_id": order}, JobStatus.SUCCEEDED).result
    assert result is not None and result["state"] == "authorized" and result["access_key"][6:20] == issuer
    missing = run(client, services, "nfe.emit", {"order_id": "PED-NOT-THERE"}, JobStatus.DEAD)
    assert missing.attempts == 1 and "PED-NOT-THERE" in (missing.error_message or "")


def test_a_number_sefaz_holds_under_another_key_stops_the_job_without_renumbering(
    client: TornadoClient, services: Services, erp_database_url: str, nfe_env: dict[str, str], issuer: str,
    emulator: Emulator,
) -> None:  # fmt: skip
    # Another system already emitted number 1 of this series at SEFAZ (another cNF, so another key).
    a1 = load_a1(emulator.authority.issue_a1(issuer, "OUTRO SISTEMA", password="x"), "x")
    signed, _ = signed_nfe(a1, number=1, cnpj=issuer, random_code=31415926, issued_at=datetime.now(UTC))
    config = NfeConfig.from_environment(nfe_env)
    answer = SefazClient(config, a1, EndpointTable.bundled()).call(
        "SP", "NFeAutorizacao4", authorization_request(signed, batch_id=1, synchronous=True)
    )
    assert read_answer(answer.answer).protocols[0].status_code == 100
    job = run(client, services, "nfe.emit", emit_payload(issuer), JobStatus.DEAD)
    assert "539" in (job.error_message or "") and job.attempts == 1
    assert numbers_of(erp_database_url, issuer) == [(1, "allocated")]  # left for an operator, not renumbered


def test_operators_see_a_certificate_that_expires_soon(
    tornado_cli: Callable[..., Any], services: Services
) -> None:
    cnpj = new_cnpj()
    tornado_cli(
        "nfe", "certificate", "issue-test", "--tenant", "expiring-tenant", "--cnpj", cnpj, "--days", "10"
    )
    listed = tornado_cli("nfe", "certificate", "list", check=False)
    assert listed.returncode == 1 and "need attention" in listed.stderr
    line = next(row for row in listed.stdout.splitlines() if cnpj in row)
    assert "expiring-tenant" in line and "expires in" in line
