"""A1 certificates: the test authority's e-CNPJ look-alikes, loading, expiry, TLS (nfe.certificates)."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tornado_tasks.nfe.certificates import (
    TEST_AUTHORITY_NAME,
    A1Certificate,
    CertificateInvalid,
    TestAuthority,
    load_a1,
)

from tests.nfe_samples import A1_PASSWORD, ISSUER_CNPJ, new_a1
from tornado_core import NonRetryable
from tornado_core.devstack.certs import make_test_signer_pem


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority.create()


@pytest.fixture(scope="module")
def a1(authority: TestAuthority) -> A1Certificate:
    return new_a1(authority)


# --- what the authority issues -----------------------------------------------------------------------------


def test_the_authority_says_it_is_a_test_and_not_icp_brasil(authority: TestAuthority) -> None:
    subject = authority.certificate.subject.rfc4514_string()
    assert TEST_AUTHORITY_NAME == "Tornado TEST AC - not ICP-Brasil"
    assert f"CN={TEST_AUTHORITY_NAME}" in subject
    constraints = authority.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca and constraints.critical
    assert isinstance(authority.key, rsa.RSAPrivateKey) and authority.key.key_size == 2048
    assert authority.certificate_pem().startswith(b"-----BEGIN CERTIFICATE-----")


def test_the_a1_looks_like_an_e_cnpj(authority: TestAuthority, a1: A1Certificate) -> None:
    leaf = a1.certificate
    (common_name,) = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert common_name.value == f"EMPRESA TESTE LTDA:{ISSUER_CNPJ}"
    assert a1.cnpj == ISSUER_CNPJ
    assert "not ICP-Brasil" in a1.subject
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    purposes = list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert purposes == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
    leaf.verify_directly_issued_by(authority.certificate)
    assert a1.chain == (authority.certificate,)
    assert a1.not_after == leaf.not_valid_after_utc and a1.not_after.tzinfo is not None


def test_an_alphanumeric_cnpj_is_read_back(authority: TestAuthority) -> None:
    assert new_a1(authority, "12.abc.345/01de-35").cnpj == "12ABC34501DE35"


def test_an_invalid_cnpj_is_refused_at_issue(authority: TestAuthority) -> None:
    with pytest.raises(ValueError, match="check digit"):
        authority.issue_a1("59594315000158", "X", password="p")


def test_a_long_company_name_is_cut_to_fit_the_common_name(authority: TestAuthority) -> None:
    loaded = load_a1(authority.issue_a1(ISSUER_CNPJ, "A" * 80, password="p"), "p")
    (common_name,) = loaded.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert len(str(common_name.value)) == 64 and loaded.cnpj == ISSUER_CNPJ


def test_the_authority_survives_a_round_trip_through_pem(authority: TestAuthority) -> None:
    again = TestAuthority.from_pem(authority.to_pem())
    assert again.certificate == authority.certificate
    assert again.key.private_numbers() == authority.key.private_numbers()
    issued = load_a1(again.issue_a1(ISSUER_CNPJ, "X", password="p"), "p")
    issued.certificate.verify_directly_issued_by(authority.certificate)


def test_an_authority_needs_an_rsa_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="RSA"):
        TestAuthority.from_pem(pem)


# --- loading -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["wrong", "", b"1235"])
def test_a_wrong_password_is_a_clear_non_retryable_error(
    authority: TestAuthority, password: str | bytes
) -> None:
    pfx = authority.issue_a1(ISSUER_CNPJ, "X", password=A1_PASSWORD)
    with pytest.raises(CertificateInvalid) as caught:
        load_a1(pfx, password)
    assert isinstance(caught.value, NonRetryable)
    assert (
        str(caught.value)
        == "cannot open the A1 certificate: the password is wrong or the file is not PKCS#12"
    )
    assert caught.value.__suppress_context__  # raised "from None": no chained traceback noise


def test_garbage_is_not_a_certificate() -> None:
    with pytest.raises(CertificateInvalid, match="not PKCS#12"):
        load_a1(b"\x30\x82garbage", "x")


def test_the_password_may_be_bytes(authority: TestAuthority) -> None:
    assert load_a1(authority.issue_a1(ISSUER_CNPJ, "X", password="senha"), b"senha").cnpj == ISSUER_CNPJ


def _bundle(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"x", key, cert, None, serialization.BestAvailableEncryption(b"p")
    )


def test_a_subject_without_a_cnpj_loads_with_cnpj_none() -> None:
    pem = make_test_signer_pem()
    key = serialization.load_pem_private_key(pem, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    loaded = load_a1(_bundle(key, x509.load_pem_x509_certificate(pem)), "p")
    assert loaded.cnpj is None and loaded.chain == ()


def test_a_file_without_a_key_is_refused(a1: A1Certificate) -> None:
    only_certificate = pkcs12.serialize_key_and_certificates(
        b"x", None, a1.certificate, None, serialization.BestAvailableEncryption(b"p")
    )
    with pytest.raises(CertificateInvalid, match="no private key"):
        load_a1(only_certificate, "p")


def test_a_key_that_is_not_rsa_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EC:59594315000157")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    with pytest.raises(CertificateInvalid, match="need RSA"):
        load_a1(_bundle(key, cert), "p")


# --- expiry ------------------------------------------------------------------------------------------------


def test_an_expired_certificate_loads_and_says_so(authority: TestAuthority) -> None:
    started = datetime(2024, 1, 10, 12, tzinfo=UTC)
    expired = load_a1(authority.issue_a1(ISSUER_CNPJ, "X", password="p", days=365, not_before=started), "p")
    now = datetime.now(UTC)
    assert expired.problem(now) == "expired on 2025-01-09"
    assert expired.days_left(now) < 0


def test_a_certificate_close_to_its_end_warns(a1: A1Certificate) -> None:
    end = a1.not_after
    assert a1.problem(end - timedelta(days=10, hours=1)) == "expires in 10 days"
    assert a1.problem(end - timedelta(days=1, hours=1)) == "expires in 1 day"
    assert a1.problem(end - timedelta(days=29, hours=23)) == "expires in 29 days"
    assert a1.problem(end - timedelta(days=30, hours=1)) is None
    assert a1.problem(end) == f"expired on {end.date().isoformat()}"
    assert a1.days_left(end - timedelta(days=100, seconds=1)) == 100


def test_a_certificate_not_yet_valid_says_so(authority: TestAuthority) -> None:
    future = datetime.now(UTC) + timedelta(days=40)
    later = load_a1(authority.issue_a1(ISSUER_CNPJ, "X", password="p", not_before=future), "p")
    assert (
        later.problem(datetime.now(UTC))
        == f"not valid before {later.certificate.not_valid_before_utc.date()}"
    )


# --- TLS ---------------------------------------------------------------------------------------------------


def test_client_tls_files_are_private_pem(a1: A1Certificate, tmp_path: Path) -> None:
    certificate, key = a1.client_tls_files(tmp_path)
    for path in (certificate, key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert certificate.read_bytes().count(b"BEGIN CERTIFICATE") == 2  # the leaf and its authority
    assert b"BEGIN PRIVATE KEY" in key.read_bytes()  # PKCS#8, not encrypted


def test_the_server_certificate_names_loopback(authority: TestAuthority) -> None:
    cert_pem, _ = authority.issue_server(["localhost"])
    names = x509.load_pem_x509_certificate(cert_pem).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert names.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_mutual_tls_works_with_the_issued_files(
    authority: TestAuthority, a1: A1Certificate, tmp_path: Path, hostname: str
) -> None:
    """A real TLS handshake (over a socket pair): the client trusts the authority and shows the A1."""
    cert_pem, key_pem = authority.issue_server(["localhost"])
    (tmp_path / "ca.pem").write_bytes(authority.certificate_pem())
    (tmp_path / "server.pem").write_bytes(cert_pem + key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "server.pem")
    server.load_verify_locations(tmp_path / "ca.pem")
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    client.load_cert_chain(*a1.client_tls_files(tmp_path))
    seen: list[dict[str, object]] = []
    left, right = socket.socketpair()

    def serve() -> None:
        with server.wrap_socket(right, server_side=True) as tls:
            seen.append(dict(tls.getpeercert() or {}))
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve)
    thread.start()
    with client.wrap_socket(left, server_hostname=hostname) as tls:
        assert tls.recv(2) == b"ok"
    thread.join(timeout=30)
    subject = dict(pair[0] for pair in seen[0]["subject"])  # type: ignore[attr-defined]
    assert subject["commonName"] == f"EMPRESA TESTE LTDA:{ISSUER_CNPJ}"
