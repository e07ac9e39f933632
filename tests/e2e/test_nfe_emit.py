"""NF-e emission end to end: the real API, a real ``nfe.emit`` worker, PostgreSQL, S3 and the stack's
SEFAZ emulator (HTTPS with mutual TLS, started by ``tornado dev up`` through the devstack door).

Each test has an issuer CNPJ of its own, so its numbers, its emulator scripts and the requests the
emulator saw are its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tornado_tasks.nfe.signing import verify_enveloped
from tornado_tasks.nfe.xsd import schema_errors

from tests.e2e.helpers import wait_for_job, wait_until
from tests.e2e.nfe_support import Emulator, api_get, emit_payload, fetch, numbers_of
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.errors import ApiError
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services
from tornado_core.tokens import hash_token

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backend() -> str:
    """The emission logic does not depend on the queue; PostgreSQL keeps the module short."""
    return "postgres"


@pytest.fixture(scope="module")
def nfe_worker(nfe_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(nfe_env, tmp_path_factory.mktemp("nfe-logs"))
    cluster.start_worker("nfe.emit", concurrency=4, extra=["--poll-wait", "1"])
    yield cluster
    cluster.stop_all(grace=20)


def test_an_authorised_nfe_is_stored_signed_valid_and_only_its_tenant_reads_it(
    client: TornadoClient, api_url: str, tenant_token: str, other_tenant_token: str, services: Services,
    nfe_worker: LocalCluster, issuer: str, emulator: Emulator,
) -> None:  # fmt: skip
    receipt = client.submit("nfe.emit", emit_payload(issuer, items=3))
    job = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=60)
    result = job.result
    assert result is not None and result["state"] == "authorized" and result["status_code"] == 100
    key = result["access_key"]
    assert key[6:20] == issuer and result["sends"] == 1

    code, status = api_get(api_url, tenant_token, f"/v1/nfe/{key}")
    assert code == 200 and status["state"] == "authorized" and status["protocol"] == result["protocol"]
    xml = fetch(api_get(api_url, tenant_token, f"/v1/nfe/{key}/xml")[1]["url"])
    assert schema_errors(xml) == []
    assert len(verify_enveloped(xml)) >= 1  # the issuer's signature (and SEFAZ's, if it signed infProt)
    assert fetch(api_get(api_url, tenant_token, f"/v1/nfe/{key}/danfe")[1]["url"]).startswith(b"%PDF-")

    for path in (f"/v1/nfe/{key}", f"/v1/nfe/{key}/xml", f"/v1/nfe/{key}/danfe"):
        code, answer = api_get(api_url, other_tenant_token, path)
        assert code == 404 and "url" not in answer
    authorisations = [r for r in emulator.requests_for(issuer) if r["service"] == "NFeAutorizacao4"]
    assert len(authorisations) == 1
    # The exact bytes sent and received are kept beside the document, each under its own digest.
    tenant = services.tenants.grants()[hash_token(tenant_token)].tenant
    stored = services.objects.list(f"nfe/{tenant}/{key}/")
    kinds = {name.rsplit("/", 1)[1].rsplit("-", 1)[0] for name in stored}
    assert {"nfe-signed", "autorizacao-request", "autorizacao-response", "nfeProc", "danfe"} <= kinds
    for name in stored:
        digest = name.rsplit("-", 1)[1].split(".")[0]
        assert hashlib.sha256(services.objects.get(name)).hexdigest() == digest


def _wrong_totals(invoice: dict[str, Any]) -> None:
    invoice["totals"]["products"] = "99.99"
    invoice["items"][0]["icms"]["cst"] = "101"


def _bad_check_digits(invoice: dict[str, Any]) -> None:
    invoice["recipient"]["cpf"] = "123.456.789-00"


def _no_items(invoice: dict[str, Any]) -> None:
    invoice["items"] = []


def _too_many_items(invoice: dict[str, Any]) -> None:
    invoice["items"] = invoice["items"] * 991


def _float_amount(invoice: dict[str, Any]) -> None:
    invoice["items"][0]["quantity"] = 2.0


@pytest.mark.parametrize(
    ("spoil", "fields"),
    [
        (_wrong_totals, {"payload.invoice.totals.products", "payload.invoice.items[0].icms.cst"}),
        (_bad_check_digits, {"payload.invoice.recipient.cpf"}),
        (_no_items, {"payload.invoice.items"}),
        (_too_many_items, {"payload.invoice.items"}),
        (_float_amount, {"payload.invoice.items.0.quantity"}),
    ],
    ids=["wrong totals", "bad CPF check digits", "no items", "991 items", "a float for a decimal"],
)
def test_a_bad_invoice_is_refused_at_submission_and_consumes_no_number(
    client: TornadoClient, erp_database_url: str, issuer: str, emulator: Emulator,
    spoil: Callable[[dict[str, Any]], None], fields: set[str],
) -> None:  # fmt: skip
    payload = emit_payload(issuer)
    spoil(payload["invoice"])
    with pytest.raises(ApiError) as refused:
        client.submit("nfe.emit", payload)
    assert refused.value.status == 422
    named = {f["field"] for f in refused.value.fields or []}
    # Business rules name items as items[0]; the schema's checks as items.0.
    assert fields <= named | {name.replace("[", ".").replace("]", "") for name in named}, named
    assert numbers_of(erp_database_url, issuer) == []
    assert emulator.requests_for(issuer) == []


def test_authorised_but_the_answer_lost_ends_authorised_through_the_protocol_query(
    client: TornadoClient, services: Services, erp_database_url: str, nfe_worker: LocalCluster, issuer: str,
    emulator: Emulator,
) -> None:  # fmt: skip
    emulator.script(issuer, "lost_answer")
    receipt = client.submit("nfe.emit", emit_payload(issuer))
    job = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=90)
    assert job.result is not None and job.result["state"] == "authorized" and job.attempts == 2
    services_seen = [r["service"] for r in emulator.requests_for(issuer)]
    assert services_seen == ["NFeAutorizacao4", "NFeConsultaProtocolo4"]
    assert numbers_of(erp_database_url, issuer) == [(1, "authorized")]


def test_an_asynchronous_lote_is_polled_until_authorised(
    client: TornadoClient, services: Services, nfe_worker: LocalCluster, issuer: str, emulator: Emulator
) -> None:
    emulator.script(issuer, "async", polls=2)
    receipt = client.submit("nfe.emit", emit_payload(issuer))
    job = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=60)
    assert job.result is not None and job.result["state"] == "authorized"
    services_seen = [r["service"] for r in emulator.requests_for(issuer)]
    assert services_seen[0] == "NFeAutorizacao4" and services_seen.count("NFeAutorizacao4") == 1
    assert services_seen.count("NFeRetAutorizacao4") == 3  # 105, 105, then 104


def test_throttling_and_unavailability_retry_until_authorised_with_one_number(
    client: TornadoClient, services: Services, erp_database_url: str, nfe_worker: LocalCluster, issuer: str,
    emulator: Emulator,
) -> None:  # fmt: skip
    emulator.script(issuer, "throttle")
    emulator.script(issuer, "unavailable", status=108)
    receipt = client.submit("nfe.emit", emit_payload(issuer))
    job = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=120)
    assert job.result is not None and job.result["state"] == "authorized" and job.attempts >= 3
    assert numbers_of(erp_database_url, issuer) == [(1, "authorized")]
    cstats = [r.get("cStat") for r in emulator.requests_for(issuer)]
    assert cstats[:2] == ["656", "108"]


def test_kill_9_mid_transmission_neither_emits_twice_nor_burns_a_number(
    client: TornadoClient, services: Services, erp_database_url: str, nfe_env: dict[str, str], issuer: str,
    emulator: Emulator, tmp_path: Path,
) -> None:  # fmt: skip
    emulator.script(issuer, "slow", delay=20)
    cluster = LocalCluster(nfe_env, tmp_path / "logs")
    try:
        first = cluster.start_worker("nfe.emit", concurrency=1, extra=["--poll-wait", "1"])
        receipt = client.submit("nfe.emit", emit_payload(issuer))
        wait_until(lambda: emulator.requests_for(issuer), timeout=30, what="the NF-e reaching SEFAZ")
        first.kill()  # SIGKILL while SEFAZ is still working on the answer
        cluster.start_worker("nfe.emit", concurrency=1, extra=["--poll-wait", "1"])
        job = wait_for_job(services, receipt["id"], JobStatus.SUCCEEDED, timeout=120)
    finally:
        cluster.stop_all(grace=20)
    assert job.result is not None and job.result["state"] == "authorized"
    documents = emulator.call("GET", "/emulator/documents")["authorized"]
    assert sum(1 for d in documents if str(d).find(issuer) >= 0) == 1
    assert numbers_of(erp_database_url, issuer) == [(1, "authorized")]
