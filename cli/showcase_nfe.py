"""The NF-e part of ``tornado showcase``: invoices emitted against the stack's SEFAZ emulator.

It issues a TEST A1 certificate for the showcase's tenant (``tornado nfe certificate
issue-test``, as an operator would on the local stack), submits a few invoices over HTTP, one of
them with totals that do not add up (refused at once, 422, no number used), follows the others
to their authorisation and prints their numbers, keys and protocols with a link to one DANFE.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import click

from tornado_core.client import TornadoClient
from tornado_core.errors import ApiError
from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.services import Services

TASK = "nfe.emit"
#: The showcase's issuer (a valid CNPJ; its certificate is a TEST one, never valid at SEFAZ).
ISSUER_CNPJ = "11222333000181"
_ADDRESS = {
    "street": "Avenida Paulista", "number": "1000", "district": "Bela Vista", "city_code": "3550308",
    "city": "Sao Paulo", "uf": "SP", "cep": "01310100",
}  # fmt: skip
_ITEM = {
    "code": "CADEIRA-01", "description": "Cadeira de escritorio", "ncm": "94013000", "cfop": "5102",
    "unit": "UN", "quantity": "2.0000", "unit_price": "450.00", "total": "900.00",
    "icms": {"origin": 0, "cst": "00", "base": "900.00", "rate": "18.00", "amount": "162.00"},
    "pis": {"cst": "01", "base": "900.00", "rate": "1.6500", "amount": "14.85"},
    "cofins": {"cst": "01", "base": "900.00", "rate": "7.6000", "amount": "68.40"},
}  # fmt: skip
INVOICE: dict[str, Any] = {
    "series": 1,
    "operation": "Venda de mercadoria",
    "issuer": {
        "cnpj": ISSUER_CNPJ, "ie": "111111111111", "name": "MOVEIS SHOWCASE LTDA", "crt": 3,
        "address": _ADDRESS,
    },
    "recipient": {"cpf": "12345678909", "name": "Cliente Showcase", "ie_indicator": 9, "address": _ADDRESS},
    "items": [_ITEM],
    "totals": {
        "products": "900.00", "invoice": "900.00", "icms_base": "900.00", "icms": "162.00",
        "pis": "14.85", "cofins": "68.40",
    },
    "payments": [{"method": "17", "amount": "900.00"}],
}  # fmt: skip


@dataclass(frozen=True)
class NfeSummary:
    """What the NF-e part showed."""

    authorised: list[dict[str, Any]]
    refused_fields: list[str]
    danfe_url: str | None


def prepare(env: dict[str, str], tenant: str) -> None:
    """Issue the tenant's TEST A1 for the showcase's issuer (through ``tornado nfe``)."""
    command = [sys.executable, "-m", "tornado_cli", "nfe", "certificate", "issue-test"]
    result = subprocess.run(
        [*command, "--tenant", tenant, "--cnpj", ISSUER_CNPJ, "--name", "MOVEIS SHOWCASE LTDA"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        why = result.stderr.strip()
        raise click.ClickException(f"could not issue the showcase's test certificate: {why}")


def run(url: str, token: str, services: Services, count: int) -> NfeSummary:
    """Submit ``count`` invoices and one bad one; follow the good ones to their end."""
    client = TornadoClient(url, token)
    bad = deepcopy(INVOICE)
    bad["totals"]["products"] = "899.99"
    try:
        client.submit(TASK, {"invoice": bad})
        refused: list[str] = []
    except ApiError as error:
        refused = [f"{f['field']}: {f['message']}" for f in error.fields or []]
    ids = [client.submit(TASK, {"invoice": INVOICE})["id"] for _ in range(count)]
    records = [_wait(services, job_id) for job_id in ids]
    authorised = sorted(
        (r.result for r in records if r.status is JobStatus.SUCCEEDED and r.result), key=lambda r: r["number"]
    )
    danfe = _danfe_link(url, token, authorised[0]["access_key"]) if authorised else None
    return NfeSummary(authorised=authorised, refused_fields=refused, danfe_url=danfe)


def _wait(services: Services, job_id: str, timeout: float = 120) -> JobRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = services.jobs.get(job_id)
        if record is not None and record.status in (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.FAILED):
            return record
        time.sleep(0.2)
    raise click.ClickException(f"NF-e job {job_id} did not finish within {timeout:.0f}s")


def _danfe_link(url: str, token: str, key: str) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"{url}/v1/nfe/{key}/danfe", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["url"])


def show(summary: NfeSummary, submitted: int) -> None:
    """Print the NF-e part."""
    click.echo("\nNF-e against the local SEFAZ emulator (HTTPS, mutual TLS, test certificate)")
    click.echo(f"  refused at submission (422)  {'; '.join(summary.refused_fields) or 'nothing?'}")
    click.echo(f"  authorised                   {len(summary.authorised)} of {submitted}")
    for result in summary.authorised:
        number, key, protocol = result["number"], result["access_key"], result["protocol"]
        click.echo(f"    nNF {number:>4}  key {key}  protocol {protocol}")
    if summary.danfe_url:
        click.echo(f"  DANFE of the first (5 min)   {summary.danfe_url}")
