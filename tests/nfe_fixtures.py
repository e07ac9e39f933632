"""Fixtures of the NF-e integration tests: the SEFAZ emulator, an ERP database, S3, a tenant with its A1.

* ``sefaz_emulator`` (session): ``python -m tornado_tasks.nfe.emulator`` as a process on loopback,
  HTTPS with a client certificate required (mutual TLS, as SEFAZ and ``tornado dev up`` run it),
  its certificates issued by a throwaway :class:`~tornado_tasks.nfe.certificates.TestAuthority`.
  Its admin API (``/emulator/...``) is reached with :meth:`Emulator.admin`.
* ``nfe_world`` (per test): a fresh ERP database with the NF-e tables, the stack's S3 endpoint, a
  new tenant whose test A1 (the sample issuer's CNPJ) is sealed in the object store, the
  emulator reset, and ``TORNADO_NFE_*`` pointing at it (the task functions read the environment).

Import the fixtures into a test module with
``from tests.nfe_fixtures import nfe_world_fixture, sefaz_emulator_fixture, test_authority_fixture``
(with ``# noqa: F401``), then ask for ``nfe_world``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tornado_tasks.nfe.certificate_store import store_certificate
from tornado_tasks.nfe.certificates import TestAuthority
from tornado_tasks.nfe.config import NfeConfig
from tornado_tasks.nfe.emit import Emitter
from tornado_tasks.nfe.endpoints import EndpointTable
from tornado_tasks.nfe.schema import ensure_schema

from tests.nfe_samples import A1_PASSWORD, ISSUER_CNPJ, new_a1, sample_invoice
from tornado_core import TaskContext
from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.adapters.postgres import PostgresPool
from tornado_core.devstack import BUCKET, REGION, StackInfo
from tornado_core.task_context import job_logger

#: How long the emulator may take to announce itself.
STARTUP_SECONDS = 60.0
TASK_SECONDS = 120.0


@dataclass
class Emulator:
    """A running emulator: its base URL, the CA file that signs its certificate, an admin client."""

    url: str
    ca_file: Path
    tls: ssl.SSLContext

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call ``/emulator/<path>`` and return its JSON."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self.tls, timeout=30) as answer:
            return json.loads(answer.read())

    def requests(self, service: str) -> list[dict[str, Any]]:
        """The requests received for ``service``, oldest first."""
        return list(self.admin("GET", f"requests?service={service}")["requests"])

    def documents(self) -> dict[str, Any]:
        """What the emulated SEFAZ holds: authorised NF-e (with their events) and inutilised ranges."""
        return dict(self.admin("GET", "documents"))


@dataclass
class NfeWorld:
    """One test's tenant, databases, object store and emulator."""

    pool: PostgresPool
    s3: S3ObjectStore
    emulator: Emulator
    config: NfeConfig
    endpoints: EndpointTable
    tenant: str

    def context(self, job_id: str, *, tenant: str | None = None, task: str = "nfe.cancel") -> TaskContext:
        """A task context as a worker builds it, for ``job_id``."""
        owner = tenant or self.tenant
        return TaskContext(
            job_id=job_id, task=task, version="1", tenant=owner, attempt=1, s3=self.s3, rds=self.pool,
            redshift=None, logger=job_logger(logging.getLogger("tests.nfe"), job=job_id, tenant=owner),
            deadline=time.monotonic() + TASK_SECONDS, _progress_sink=lambda fraction, note: None,
        )  # fmt: skip

    def emit(self, job_id: str) -> dict[str, Any]:
        """Emit the sample invoice through the emulator (it gets authorised)."""
        return Emitter(self.context(job_id, task="nfe.emit"), self.config, self.endpoints).emit(
            sample_invoice()
        )

    def scalar(self, sql: str, *params: object) -> Any:
        """The first column of the first row of ``sql`` in the ERP database."""
        with self.pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
        return row[0] if row else None


@pytest.fixture(name="test_authority", scope="session")
def test_authority_fixture() -> TestAuthority:
    """The session's throwaway certificate authority (emulator's HTTPS, tenants' A1)."""
    return TestAuthority.create()


@pytest.fixture(name="sefaz_emulator", scope="session")
def sefaz_emulator_fixture(test_authority: TestAuthority) -> Iterator[Emulator]:
    """The emulator process, HTTPS with mutual TLS on 127.0.0.1, stopped at session end."""
    folder = Path(tempfile.mkdtemp(prefix="tornado-sefaz-"))
    cert, key = test_authority.issue_server(["127.0.0.1", "localhost"])
    files = {"cert.pem": cert, "key.pem": key, "ca.pem": test_authority.certificate_pem()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    ready, log = folder / "ready.json", (folder / "emulator.log").open("wb")
    argv = [
        sys.executable, "-m", "tornado_tasks.nfe.emulator", "--host", "127.0.0.1", "--port", "0",
        "--tls-cert", str(folder / "cert.pem"), "--tls-key", str(folder / "key.pem"),
        "--client-ca", str(folder / "ca.pem"), "--ready-file", str(ready),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = _wait_ready(process, ready, folder / "emulator.log")
        yield Emulator(url=url, ca_file=folder / "ca.pem", tls=_client_tls(test_authority, folder / "ca.pem"))
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_ready(process: subprocess.Popen[bytes], ready: Path, log: Path) -> str:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not ready.exists():
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited with {process.returncode}: {log.read_text()}")
        assert time.monotonic() < deadline, f"the emulator did not start: {log.read_text()}"
        time.sleep(0.05)
    return str(json.loads(ready.read_text())["url"])


def _client_tls(authority: TestAuthority, ca_file: Path) -> ssl.SSLContext:
    """A TLS context trusting the emulator and presenting a test A1 (it requires a client certificate)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    directory = Path(tempfile.mkdtemp(prefix="tornado-admin-tls-"))
    try:
        context.load_cert_chain(*new_a1(authority).client_tls_files(directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return context


@pytest.fixture(name="nfe_world")
def nfe_world_fixture(
    fresh_database_url: str,
    stack_info: StackInfo,
    sefaz_emulator: Emulator,
    test_authority: TestAuthority,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[NfeWorld]:
    """A fresh ERP database and tenant, its A1 stored, the emulator reset and the environment set."""
    master_key = os.urandom(32)
    client = make_client(
        "s3", region=REGION, endpoint_url=stack_info.aws_endpoint_url, credentials=("test", "test")
    )
    s3 = S3ObjectStore(client, BUCKET)
    tenant = f"t{uuid.uuid4().hex[:10]}"
    pkcs12 = test_authority.issue_a1(ISSUER_CNPJ, "Empresa Teste Ltda", password=A1_PASSWORD)
    store_certificate(s3, master_key, tenant, pkcs12, A1_PASSWORD)
    sefaz_emulator.admin("POST", "reset", {})
    for name in [n for n in os.environ if n.startswith("TORNADO_NFE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TORNADO_NFE_SEFAZ_URL", sefaz_emulator.url)
    monkeypatch.setenv("TORNADO_NFE_TRUSTED_CA", str(sefaz_emulator.ca_file))
    monkeypatch.setenv("TORNADO_NFE_MASTER_KEY", base64.b64encode(master_key).decode())
    pool = PostgresPool(fresh_database_url, min_size=0, max_size=4)
    with pool.connection() as conn:
        ensure_schema(conn)
    config = NfeConfig.from_environment(os.environ)
    yield NfeWorld(pool, s3, sefaz_emulator, config, EndpointTable.bundled(), tenant)
    pool.close()
