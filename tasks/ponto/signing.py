"""Detached CAdES-BES signatures (``.p7s``) of AFD files, and their verification.

CMS SignedData (RFC 5652) with signed attributes ``content-type``, ``signing-time``,
``message-digest`` and ``signing-certificate-v2`` (RFC 5035, what makes it CAdES-BES),
SHA-256, and the signer's certificate embedded. ``openssl cms -verify -binary
-inform DER -content AFD.txt`` accepts the result.

The signing key and certificate are read from one PEM (see :func:`load_signer`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

#: Object-store keys searched for the signer of a tenant ({tenant} is replaced).
SIGNER_KEYS = ("signing/{tenant}/signer.pem", "signing/default/signer.pem")


class SignatureInvalid(ValueError):
    """A ``.p7s`` does not verify against the file, or is not a signature we understand."""


@dataclass(frozen=True)
class Signer:
    """A private key and its certificate."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


@dataclass(frozen=True)
class SignatureInfo:
    """What a valid signature says about itself."""

    subject: str
    signing_time: datetime | None
    cades: bool


def load_signer(pem: bytes, password: bytes | None = None) -> Signer:
    """Read a signer from PEM text holding a private key and its certificate.

    Raises:
        ValueError: The PEM lacks either part, or the key is neither RSA nor EC.
    """
    key = serialization.load_pem_private_key(pem, password=password)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the signing key must be RSA or EC")
    certificates = x509.load_pem_x509_certificates(pem)
    return Signer(key, certificates[0])


def _attribute(kind: str, value: Any) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": kind, "values": [value]})


def _signed_attributes(data: bytes, cert: asn1_x509.Certificate, when: datetime) -> cms.CMSAttributes:
    ess = tsp.ESSCertIDv2(
        {
            "hash_algorithm": {"algorithm": "sha256"},
            "cert_hash": hashlib.sha256(cert.dump()).digest(),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName({"directory_name": cert.issuer})],
                "serial_number": cert.serial_number,
            },
        }
    )
    attributes = [
        _attribute("content_type", "data"),
        _attribute("signing_time", cms.Time({"utc_time": core.UTCTime(when.astimezone(UTC))})),
        _attribute("message_digest", hashlib.sha256(data).digest()),
        _attribute("signing_certificate_v2", tsp.SigningCertificateV2({"certs": [ess]})),
    ]
    # DER orders a SET OF by encoding; verifiers re-encode before checking the signature.
    return cms.CMSAttributes(sorted(attributes, key=lambda a: a.dump()))


def _sign(signer: Signer, message: bytes) -> tuple[bytes, str]:
    if isinstance(signer.key, rsa.RSAPrivateKey):
        return signer.key.sign(message, padding.PKCS1v15(), hashes.SHA256()), "sha256_rsa"
    return signer.key.sign(message, ec.ECDSA(hashes.SHA256())), "sha256_ecdsa"


def sign_detached(data: bytes, signer: Signer, *, signing_time: datetime | None = None) -> bytes:
    """The DER ``.p7s`` of ``data`` (detached: the file itself is not inside)."""
    cert = asn1_x509.Certificate.load(signer.certificate.public_bytes(serialization.Encoding.DER))
    attributes = _signed_attributes(data, cert, signing_time or datetime.now(UTC))
    signature, algorithm = _sign(signer, attributes.dump())
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}}
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attributes,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": algorithm}),
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "data"},
            "certificates": [cert],
            "signer_infos": [signer_info],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())


def verify_detached(data: bytes, p7s: bytes) -> SignatureInfo:
    """Check a detached signature of ``data``.

    Raises:
        SignatureInvalid: Malformed, digest mismatch, bad signature, or wrong certificate.
    """
    try:
        signed_data = cms.ContentInfo.load(p7s)["content"]
        signer_info = signed_data["signer_infos"][0]
        cert_der = signed_data["certificates"][0].chosen.dump()
        attrs = {a["type"].native: a["values"][0] for a in signer_info["signed_attrs"]}
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SignatureInvalid(f"not a CMS signature: {exc}") from exc
    if attrs.get("message_digest") is None or attrs["message_digest"].native != hashlib.sha256(data).digest():
        raise SignatureInvalid("the file's SHA-256 does not match the signed message digest")
    certificate = x509.load_der_x509_certificate(cert_der)
    signed_bytes = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    _check_signature(certificate, bytes(signer_info["signature"].native), signed_bytes)
    ess = attrs.get("signing_certificate_v2")
    cades = (
        ess is not None and bytes(ess["certs"][0]["cert_hash"].native) == hashlib.sha256(cert_der).digest()
    )
    if ess is not None and not cades:
        raise SignatureInvalid("signing-certificate-v2 does not name the embedded certificate")
    when = attrs.get("signing_time")
    return SignatureInfo(
        certificate.subject.rfc4514_string(), when.native if when is not None else None, cades
    )


def _check_signature(certificate: x509.Certificate, signature: bytes, message: bytes) -> None:
    public = certificate.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        else:
            raise SignatureInvalid("unsupported signer key type")
    except InvalidSignature as exc:
        raise SignatureInvalid("the signature does not verify with the embedded certificate") from exc
