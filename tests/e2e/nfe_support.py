"""Fixtures and helpers of the NF-e end-to-end tests: the stack's SEFAZ emulator, issuers, payloads.

Loaded as a pytest plugin by tests/conftest.py; its fixtures build on tests/e2e/conftest.py's.
"""

from __future__ import annotations

import json
import random
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from tornado_tasks.nfe.certificates import TestAuthority, load_a1
from tornado_tasks.nfe.documents import cnpj_check_digits

from tests.nfe_samples import invoice_payload
from tornado_core.services import Services
from tornado_core.tokens import hash_token


class Emulator:
    """The stack's SEFAZ emulator, reached over mutual TLS with a test certificate."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.url = env["TORNADO_NFE_SEFAZ_URL"]
        self.authority = TestAuthority.from_pem(Path(env["TORNADO_NFE_TEST_AUTHORITY"]).read_bytes())
        context = ssl.create_default_context(cafile=env["TORNADO_NFE_TRUSTED_CA"])
        client = load_a1(self.authority.issue_a1(new_cnpj(), "ADMIN", password="x"), "x")
        context.load_cert_chain(*client.client_tls_files(folder))
        self._context = context

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, context=self._context, timeout=10) as answer:
            return json.loads(answer.read())

    def script(self, cnpj: str | None, scenario: str, *, count: int = 1, **extra: Any) -> None:
        target = {"cnpj": cnpj} if cnpj else {}
        self.call("POST", "/emulator/scripts", {"scenario": scenario, "count": count, **target, **extra})

    def requests_for(self, cnpj: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("GET", "/emulator/requests")["requests"]
        return [r for r in found if r.get("cnpj") == cnpj]


def new_cnpj() -> str:
    body = f"{random.randrange(10**7, 10**8)}0001"
    return body + cnpj_check_digits(body)


def api_get(api_url: str, token: str, path: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(api_url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


#: An address in Curitiba (PR), for tests that must not share SP's contingency state.
PARANA = {"city_code": "4106902", "city": "Curitiba", "uf": "PR", "cep": "80010000"}


def emit_payload(cnpj: str, items: int = 1, *, address: dict[str, str] | None = None) -> dict[str, Any]:
    invoice = invoice_payload(items)
    invoice["issuer"]["cnpj"] = cnpj
    if address:
        invoice["issuer"]["address"].update(address)
        invoice["recipient"]["address"].update(address)
    return {"invoice": invoice}


def numbers_of(erp_url: str, cnpj: str) -> list[tuple[int, str]]:
    with psycopg2.connect(erp_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('nfe_number') IS NOT NULL")
        if not cur.fetchone()[0]:
            return []
        cur.execute("SELECT number, status FROM nfe_number WHERE cnpj = %s ORDER BY number", (cnpj,))
        return [(int(n), str(s)) for n, s in cur.fetchall()]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return bytes(answer.read())


@pytest.fixture(scope="module")
def nfe_env(e2e_env: dict[str, str]) -> dict[str, str]:
    """The module's environment: the stack's emulator; 656 waits 1 s, a call gives up after 3 s, and a
    UF whose SEFAZ failed twice in a row switches to its SVC, and its status service is asked at
    every new NF-e whether it is back."""
    assert e2e_env.get("TORNADO_NFE_SEFAZ_URL"), "the dev stack did not start the SEFAZ emulator"
    return {
        **e2e_env,
        "TORNADO_NFE_THROTTLE_DELAY": "1",
        "TORNADO_NFE_TIMEOUT": "3",
        "TORNADO_NFE_CONTINGENCY_AFTER": "2",
        "TORNADO_NFE_CONTINGENCY_PROBE": "0",
    }


@pytest.fixture(scope="module")
def emulator(nfe_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Emulator:
    return Emulator(nfe_env, tmp_path_factory.mktemp("nfe-admin"))


@pytest.fixture
def issuer(tornado_cli: Callable[..., Any], services: Services, tenant_token: str) -> str:
    """A fresh issuer CNPJ with a test A1 for the module's tenant (issued as an operator would)."""
    cnpj = new_cnpj()
    tenant = services.tenants.grants()[hash_token(tenant_token)].tenant
    tornado_cli("nfe", "certificate", "issue-test", "--tenant", tenant, "--cnpj", cnpj)
    return cnpj
