"""A1 certificates (PKCS#12) for NF-e signatures and mutual TLS, and a test authority that issues them.

:func:`load_a1` opens the PKCS#12 file an issuer uploads (an ICP-Brasil e-CNPJ A1 in production)
into an :class:`A1Certificate`: the RSA key, the leaf, the chain, the expiry and the CNPJ read
from the subject's ``CN="COMPANY NAME:CNPJ"``.

:class:`TestAuthority` is a throwaway certificate authority for tests and the local stack. Its
subject says ``Tornado TEST AC - not ICP-Brasil``, so nothing it issues can pass for a real
certificate; it issues A1-like PKCS#12 files and TLS server certificates (for a local SEFAZ
emulator on ``127.0.0.1``).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12 as pkcs12_format
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tornado_core import NonRetryable

from .documents import cnpj_problem, normalize_document

#: Subject common name of the test authority: it says what it is.
TEST_AUTHORITY_NAME = "Tornado TEST AC - not ICP-Brasil"
#: Below this many days left, :meth:`A1Certificate.problem` warns.
EXPIRY_WARNING_DAYS = 30
#: Longest common name X.509 allows (ub-common-name).
_MAX_COMMON_NAME = 64
_KEY_SIZE = 2048
#: Extended key usages of an e-CNPJ A1.
_A1_PURPOSES = (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION)


class CertificateInvalid(NonRetryable):
    """A PKCS#12 file cannot be opened (wrong password, not PKCS#12, no RSA key...).

    It is a :class:`~tornado_core.errors.NonRetryable`: the same file and password fail again.
    """


@dataclass(frozen=True)
class A1Certificate:
    """An opened A1 certificate: what signing and mutual TLS need.

    Attributes:
        private_key: The RSA key (SEFAZ signatures are RSA-SHA1).
        certificate: The leaf certificate.
        chain: The other certificates of the PKCS#12 file (intermediates, root), in file order.
        not_after: End of validity (aware, UTC).
        cnpj: The CNPJ of a ``CN="COMPANY NAME:CNPJ"`` subject (e-CNPJ), else ``None``.
        subject: The leaf's subject, RFC 4514.
    """

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    not_after: datetime
    cnpj: str | None
    subject: str

    def days_left(self, now: datetime) -> int:
        """Whole days from ``now`` (aware) to :attr:`not_after`; negative once expired."""
        return (self.not_after - now).days

    def problem(self, now: datetime) -> str | None:
        """What is wrong with using the certificate at ``now`` (aware), or ``None``.

        Returns:
            ``"expired on YYYY-MM-DD"``, ``"not valid before YYYY-MM-DD"``, ``"expires in N days"``
            when fewer than :data:`EXPIRY_WARNING_DAYS` are left, or ``None``.
        """
        if now >= self.not_after:
            return f"expired on {self.not_after.date().isoformat()}"
        not_before = self.certificate.not_valid_before_utc
        if now < not_before:
            return f"not valid before {not_before.date().isoformat()}"
        days = self.days_left(now)
        if days < EXPIRY_WARNING_DAYS:
            return f"expires in {days} day{'' if days == 1 else 's'}"
        return None

    def client_tls_files(self, directory: Path) -> tuple[Path, Path]:
        """Write the PEM files an ``ssl.SSLContext.load_cert_chain`` needs, readable by the owner only.

        The key is written **unencrypted**: the caller owns ``directory`` (a private temporary
        directory) and removes it as soon as the context is loaded.

        Returns:
            ``(certificate chain PEM, private key PEM)``, both with mode 0600.
        """
        certificates = b"".join(
            cert.public_bytes(serialization.Encoding.PEM) for cert in (self.certificate, *self.chain)
        )
        key = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return _write_private(directory / "client-cert.pem", certificates), _write_private(
            directory / "client-key.pem", key
        )


def load_a1(pkcs12: bytes, password: str | bytes) -> A1Certificate:
    """Open a PKCS#12 (``.pfx``/``.p12``) A1 certificate.

    An expired certificate opens: :meth:`A1Certificate.problem` tells the caller.

    Args:
        pkcs12: The file's bytes.
        password: Its password.

    Raises:
        CertificateInvalid: Wrong password, not a PKCS#12 file, no key or certificate in it, a
            key that is not RSA or that does not belong to the certificate.
    """
    secret = password.encode() if isinstance(password, str) else password
    try:
        bundle = pkcs12_format.load_pkcs12(pkcs12, secret or None)
    except (ValueError, TypeError):
        raise CertificateInvalid(
            "cannot open the A1 certificate: the password is wrong or the file is not PKCS#12"
        ) from None
    if bundle.key is None or bundle.cert is None:
        raise CertificateInvalid("the PKCS#12 file holds no private key or no certificate")
    key, leaf = bundle.key, bundle.cert.certificate
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateInvalid(f"the A1 key is {type(key).__name__}, but NF-e signatures need RSA")
    public = leaf.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or key.public_key().public_numbers() != public.public_numbers()
    ):
        raise CertificateInvalid("the private key of the PKCS#12 file does not belong to its certificate")
    return A1Certificate(
        private_key=key,
        certificate=leaf,
        chain=tuple(extra.certificate for extra in bundle.additional_certs),
        not_after=leaf.not_valid_after_utc,
        cnpj=cnpj_of(leaf),
        subject=leaf.subject.rfc4514_string(),
    )


def cnpj_of(certificate: x509.Certificate) -> str | None:
    """The CNPJ of an e-CNPJ subject (``CN="COMPANY NAME:CNPJ"``), or ``None`` if it has none."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return None
    _, separator, tail = str(names[0].value).rpartition(":")
    candidate = normalize_document(tail)
    if not separator or cnpj_problem(candidate) is not None:
        return None
    return candidate


@dataclass(frozen=True)
class TestAuthority:
    """A self-signed RSA-2048 certificate authority for tests and the local stack, never ICP-Brasil.

    Attributes:
        key: The authority's private key.
        certificate: Its self-signed certificate (subject :data:`TEST_AUTHORITY_NAME`).
    """

    __test__ = False  # not a pytest test class, despite its name

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def create(cls, days: int = 3650) -> TestAuthority:
        """A new authority valid from yesterday for ``days`` days."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
        name = _name(TEST_AUTHORITY_NAME)
        now = datetime.now(UTC)
        usage = _key_usage(key_cert_sign=True)
        certificate = (
            _builder(name, name, key.public_key(), now - timedelta(days=1), now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(key=key, certificate=certificate)

    @classmethod
    def from_pem(cls, pem: bytes) -> TestAuthority:
        """The authority saved by :meth:`to_pem`.

        Raises:
            ValueError: ``pem`` is not an RSA key followed by a certificate.
        """
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("a TestAuthority key is RSA")
        return cls(key=key, certificate=x509.load_pem_x509_certificate(pem))

    def to_pem(self) -> bytes:
        """The unencrypted private key then the certificate, PEM (for the local stack's state)."""
        key = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return key + self.certificate_pem()

    def certificate_pem(self) -> bytes:
        """The authority's certificate, PEM: what a client trusts."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_a1(
        self,
        cnpj: str,
        company_name: str,
        *,
        password: str,
        days: int = 365,
        not_before: datetime | None = None,
    ) -> bytes:
        """An e-CNPJ-like A1: a PKCS#12 file with a new key, its leaf and this authority.

        The leaf's common name is ``"COMPANY NAME:CNPJ"`` (the name upper-cased and cut so the
        whole fits X.509's 64 characters), with the e-CNPJ key usages (digitalSignature,
        keyEncipherment) and extended usages (clientAuth, emailProtection).

        Args:
            cnpj: The company's CNPJ (numeric or alphanumeric), masked or not.
            company_name: Its razão social.
            password: The PKCS#12 password.
            days: Validity from ``not_before``.
            not_before: Start of validity (aware); now by default. A date far enough in the past
                gives an expired certificate.

        Raises:
            ValueError: ``cnpj`` is not a valid CNPJ.
        """
        document = normalize_document(cnpj)
        problem = cnpj_problem(document)
        if problem is not None:
            raise ValueError(f"CNPJ {problem}")
        start = not_before or datetime.now(UTC)
        key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
        name = company_name.upper()[: _MAX_COMMON_NAME - len(document) - 1]
        subject = _name(f"{name}:{document}", unit="RFB e-CNPJ A1 (TEST)")
        leaf = (
            self._leaf(subject, key, start, start + timedelta(days=days))
            .add_extension(_key_usage(key_encipherment=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage(_A1_PURPOSES), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        encryption = serialization.BestAvailableEncryption(password.encode())
        return pkcs12_format.serialize_key_and_certificates(
            f"{name}:{document}".encode(), key, leaf, [self.certificate], encryption
        )

    def issue_server(self, hostnames: list[str]) -> tuple[bytes, bytes]:
        """A TLS server certificate for ``hostnames`` (and always ``127.0.0.1``), valid 30 days.

        Args:
            hostnames: DNS names (``localhost``) or IP literals for the subjectAltName.

        Returns:
            ``(certificate PEM, unencrypted private key PEM)``.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
        now = datetime.now(UTC)
        certificate = (
            self._leaf(_name(hostnames[0] if hostnames else "127.0.0.1"), key, now, now + timedelta(days=30))
            .add_extension(_key_usage(key_encipherment=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(_alt_names(hostnames)), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem

    def _leaf(
        self, subject: x509.Name, key: rsa.RSAPrivateKey, start: datetime, end: datetime
    ) -> x509.CertificateBuilder:
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        return (
            _builder(subject, self.certificate.subject, key.public_key(), start - timedelta(minutes=5), end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(authority, critical=False)
        )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey, start: datetime, end: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _name(common_name: str, *, unit: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "BR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, TEST_AUTHORITY_NAME),
    ]
    if unit:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _key_usage(*, key_encipherment: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _alt_names(hostnames: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in [*hostnames, "127.0.0.1"]:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            entry = x509.DNSName(host)
        if entry not in names:
            names.append(entry)
    return names


def _write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` created with mode 0600 (never readable by others, even briefly)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)
    return path
