"""The SEFAZ emulator as a companion of the local stack (entry point ``tornado.devstack``).

On the first ``tornado dev up`` it makes, in the stack's state dir: a test certificate authority
("Tornado TEST AC - not ICP-Brasil") that signs the emulator's HTTPS certificate and the tenants'
test A1 certificates (``tornado nfe certificate issue-test``), and the NF-e master key that
seals A1 certificates in the object store. The emulator then serves HTTPS on loopback and, like
SEFAZ, requires a client certificate (one signed by that authority).

The stack's environment gains ``TORNADO_NFE_SEFAZ_URL``, ``TORNADO_NFE_TRUSTED_CA``,
``TORNADO_NFE_MASTER_KEY`` and ``TORNADO_NFE_TEST_AUTHORITY`` (the authority's PEM, key
included: a test key, never a production one).
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

from tornado_core.extend import Companion, CompanionContext

from .certificates import TestAuthority

AUTHORITY_FILE = "test-authority.pem"
CA_FILE = "test-ca.pem"
SERVER_CERT, SERVER_KEY = "emulator-cert.pem", "emulator-key.pem"
MASTER_KEY_FILE = "master.key"


def sefaz_emulator(context: CompanionContext) -> Companion:
    """Prepare the emulator's keys (once) and say how to run it."""
    folder = context.directory
    authority = _authority(folder)
    if not (folder / SERVER_CERT).exists():
        cert, key = authority.issue_server(["127.0.0.1", "localhost"])
        _private(folder / SERVER_KEY, key)
        (folder / SERVER_CERT).write_bytes(cert)
    if not (folder / MASTER_KEY_FILE).exists():
        _private(folder / MASTER_KEY_FILE, base64.b64encode(os.urandom(32)))
    argv = [
        sys.executable, "-m", "tornado_tasks.nfe.emulator",
        "--host", "127.0.0.1", "--port", str(context.port),
        "--tls-cert", str(folder / SERVER_CERT), "--tls-key", str(folder / SERVER_KEY),
        "--client-ca", str(folder / CA_FILE),
    ]  # fmt: skip
    return Companion(
        argv=argv,
        env={
            "TORNADO_NFE_SEFAZ_URL": f"https://127.0.0.1:{context.port}",
            "TORNADO_NFE_TRUSTED_CA": str(folder / CA_FILE),
            "TORNADO_NFE_MASTER_KEY": (folder / MASTER_KEY_FILE).read_text().strip(),
            "TORNADO_NFE_TEST_AUTHORITY": str(folder / AUTHORITY_FILE),
        },
    )


def _authority(folder: Path) -> TestAuthority:
    path = folder / AUTHORITY_FILE
    if path.exists():
        return TestAuthority.from_pem(path.read_bytes())
    authority = TestAuthority.create()
    _private(path, authority.to_pem())
    (folder / CA_FILE).write_bytes(authority.certificate_pem())
    return authority


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
