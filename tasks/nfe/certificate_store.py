"""The tenants' A1 certificates, kept encrypted in the object store.

An A1 is a PKCS#12 file and its password. Both are sealed together with AES-256-GCM under the
deployment's NF-e master key (``TORNADO_NFE_MASTER_KEY``, a secret the workers get from their
environment) and stored at ``nfe/certificates/<tenant>/<cnpj>.a1``; the tenant and CNPJ are the
associated data, so a sealed file copied under another tenant does not open. Neither the
PKCS#12 nor its password is ever written in clear.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tornado_core import NonRetryable, ObjectStoreError, ObjectStorePort, TaskContext

from .certificates import A1Certificate, CertificateInvalid, load_a1
from .documents import normalize_document

PREFIX = "nfe/certificates/"
_NONCE = 12
_FORMAT = b"tornado-a1-v1:"


class CertificateMissing(NonRetryable):
    """The tenant has no A1 certificate for the CNPJ (``tornado nfe certificate import``)."""


class CertificateUnreadable(NonRetryable):
    """A stored certificate does not open with this master key, or is damaged."""


@dataclass(frozen=True)
class StoredCertificate:
    """What the expiry report shows of one stored certificate."""

    tenant: str
    cnpj: str
    subject: str
    not_after: datetime
    problem: str | None


def certificate_key(tenant: str, cnpj: str) -> str:
    """The object key of a tenant's certificate for ``cnpj``."""
    return f"{PREFIX}{tenant}/{normalize_document(cnpj)}.a1"


def store_certificate(
    objects: ObjectStorePort, master_key: bytes, tenant: str, pkcs12: bytes, password: str
) -> A1Certificate:
    """Seal and store a tenant's A1 under the CNPJ its certificate names.

    Raises:
        CertificateInvalid: The PKCS#12 does not open with the password.
        CertificateUnreadable: The certificate names no CNPJ.
    """
    certificate = load_a1(pkcs12, password)
    if not certificate.cnpj:
        raise CertificateUnreadable(f"the certificate {certificate.subject!r} names no CNPJ (CN 'NAME:CNPJ')")
    key = certificate_key(tenant, certificate.cnpj)
    clear = json.dumps({"pkcs12": pkcs12.hex(), "password": password}).encode()
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(master_key).encrypt(nonce, clear, key.encode())
    objects.put(key, _FORMAT + nonce + sealed, content_type="application/octet-stream")
    return certificate


def load_certificate(objects: ObjectStorePort, master_key: bytes, tenant: str, cnpj: str) -> A1Certificate:
    """The tenant's A1 for ``cnpj``, opened.

    Raises:
        CertificateMissing: None is stored.
        CertificateUnreadable: It does not open with this master key.
    """
    key = certificate_key(tenant, cnpj)
    try:
        blob = objects.get(key)
    except ObjectStoreError:
        if objects.exists(key):
            raise  # the store is down: retry
        raise CertificateMissing(
            f"tenant {tenant!r} has no A1 certificate for CNPJ {normalize_document(cnpj)}"
            " (import one with `tornado nfe certificate import`)"
        ) from None
    return _open(blob, master_key, key)


def usable_certificate(ctx: TaskContext, master_key: bytes, cnpj: str) -> A1Certificate:
    """The job's tenant's A1 for ``cnpj``, ready to sign and to open TLS with.

    One that expires within 30 days is used, with a warning in the job's log (operators also see
    it in ``tornado nfe certificate list``).

    Raises:
        CertificateMissing: The tenant has none for ``cnpj``.
        NonRetryable: It is expired or not valid yet.
    """
    certificate = load_certificate(ctx.s3, master_key, ctx.tenant, cnpj)
    problem = certificate.problem(datetime.now(UTC))
    if problem and problem.startswith("expires in"):
        ctx.logger.warning("the A1 certificate of CNPJ %s %s: renew it", certificate.cnpj, problem)
    elif problem:
        raise NonRetryable(
            f"the A1 certificate of CNPJ {certificate.cnpj} is {problem}: {certificate.subject}"
        )
    return certificate


def list_certificates(objects: ObjectStorePort, master_key: bytes, now: datetime) -> list[StoredCertificate]:
    """Every stored certificate with its expiry and problem ("expires in 12 days"), soonest first.

    One that does not open with this master key is listed first, its problem saying so.
    """
    found: list[StoredCertificate] = []
    for key in objects.list(PREFIX):
        tenant, _, name = key[len(PREFIX) :].partition("/")
        cnpj = name.removesuffix(".a1")
        try:
            certificate = _open(objects.get(key), master_key, key)
        except (CertificateUnreadable, CertificateInvalid) as exc:
            found.append(
                StoredCertificate(tenant, cnpj, "?", datetime.min.replace(tzinfo=UTC), f"unreadable: {exc}")
            )
            continue
        found.append(
            StoredCertificate(
                tenant, cnpj, certificate.subject, certificate.not_after, certificate.problem(now)
            )
        )
    return sorted(found, key=lambda c: c.not_after)


@functools.lru_cache(maxsize=64)
def _open(blob: bytes, master_key: bytes, key: str) -> A1Certificate:
    """Unseal and open (memoised per process: the PKCS#12 key derivation costs ~40 ms by design)."""
    if not blob.startswith(_FORMAT) or len(blob) < len(_FORMAT) + _NONCE + 16:
        raise CertificateUnreadable(f"{key} is not a sealed A1 certificate")
    nonce, sealed = blob[len(_FORMAT) : len(_FORMAT) + _NONCE], blob[len(_FORMAT) + _NONCE :]
    try:
        clear = json.loads(AESGCM(master_key).decrypt(nonce, sealed, key.encode()))
    except InvalidTag:
        raise CertificateUnreadable(
            f"{key} does not open with this TORNADO_NFE_MASTER_KEY (another key, or the file moved)"
        ) from None
    return load_a1(bytes.fromhex(clear["pkcs12"]), clear["password"])
