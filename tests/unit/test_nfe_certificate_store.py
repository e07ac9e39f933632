"""Sealed A1 certificates in the object store: they open only with their key, tenant and CNPJ."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from tornado_tasks.nfe.certificate_store import (
    CertificateMissing,
    CertificateUnreadable,
    certificate_key,
    list_certificates,
    load_certificate,
    store_certificate,
)
from tornado_tasks.nfe.certificates import TestAuthority

from tornado_core.adapters.memory.stores import MemoryObjectStore

CNPJ, OTHER = "11222333000181", "59594315000157"


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority.create()


def test_a_sealed_certificate_opens_with_its_key_and_holds_no_clear_secret(authority: TestAuthority) -> None:
    objects, key = MemoryObjectStore(), os.urandom(32)
    pkcs12 = authority.issue_a1(CNPJ, "EMPRESA", password="segredo-do-a1")
    stored = store_certificate(objects, key, "acme", pkcs12, "segredo-do-a1")
    blob = objects.get(certificate_key("acme", CNPJ))
    assert b"segredo-do-a1" not in blob and pkcs12[:64] not in blob
    assert load_certificate(objects, key, "acme", CNPJ).certificate == stored.certificate
    with pytest.raises(CertificateUnreadable):
        load_certificate(objects, os.urandom(32), "acme", CNPJ)
    with pytest.raises(CertificateMissing):
        load_certificate(objects, key, "other-tenant", CNPJ)


def test_a_sealed_file_copied_under_another_tenant_does_not_open(authority: TestAuthority) -> None:
    objects, key = MemoryObjectStore(), os.urandom(32)
    store_certificate(objects, key, "acme", authority.issue_a1(CNPJ, "EMPRESA", password="p"), "p")
    objects.put(certificate_key("intruder", CNPJ), objects.get(certificate_key("acme", CNPJ)))
    with pytest.raises(CertificateUnreadable):
        load_certificate(objects, key, "intruder", CNPJ)


def test_the_expiry_report_lists_every_certificate_soonest_first_and_the_unreadable_ones(
    authority: TestAuthority,
) -> None:
    objects, key = MemoryObjectStore(), os.urandom(32)
    store_certificate(objects, key, "acme", authority.issue_a1(CNPJ, "A", password="p", days=400), "p")
    store_certificate(objects, key, "beta", authority.issue_a1(OTHER, "B", password="p", days=10), "p")
    store_certificate(objects, os.urandom(32), "gamma", authority.issue_a1(CNPJ, "C", password="p"), "p")
    report = list_certificates(objects, key, datetime.now(UTC) + timedelta(minutes=10))
    assert [(c.tenant, c.cnpj) for c in report] == [("gamma", CNPJ), ("beta", OTHER), ("acme", CNPJ)]
    assert report[0].problem is not None and report[0].problem.startswith("unreadable")
    assert report[1].problem is not None and report[1].problem.startswith("expires in")
    assert report[2].problem is None
