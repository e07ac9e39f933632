"""Detached CAdES-BES signatures (``.p7s``) of AFD files, and their verification.

CMS SignedData (RFC 5652) with signed attributes ``content-type``, ``signing-time``,
``message-digest`` and ``signing-certificate-v2`` (RFC 5035, what makes it CAdES-BES),
SHA-256, and the signer's certificate embedded; with a :class:`SignaturePolicy`, also
``signature-policy-identifier`` (``id-aa-ets-sigPolicyId``, RFC 5126 5.8.1: the policy's OID,
the SHA-256 of its document and its URI), which the ICP-Brasil policies (AD-RB) require.
``openssl cms -verify -binary -inform DER -content AFD.txt`` accepts the result.

The signing key and certificate are read from one PEM (see :func:`load_signer`); which PEM
signs a REP-P's files is :mod:`.rep_signer`'s decision.
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

#: ``id-aa-ets-sigPolicyId`` (RFC 5126): the signed attribute naming the signature policy.
SIGNATURE_POLICY_ATTRIBUTE = "1.2.840.113549.1.9.16.2.15"
#: ``id-spq-ets-uri``: the qualifier carrying the policy document's URI.
POLICY_URI_QUALIFIER = "1.2.840.113549.1.9.16.5.1"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_TIME = "1.2.840.113549.1.9.5"
_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"


class SignatureInvalid(ValueError):
    """A ``.p7s`` does not verify against the file, or is not a signature we understand."""


@dataclass(frozen=True)
class SignaturePolicy:
    """A signature policy as a CAdES signature names it.

    Attributes:
        oid: The policy's object identifier.
        sha256: SHA-256 of the policy document (``sigPolicyHash``).
        uri: Where the document is published (``SPuri`` qualifier), or "".
        name: A human name for reports (not signed).
    """

    oid: str
    sha256: bytes
    uri: str = ""
    name: str = ""


@dataclass(frozen=True)
class Signer:
    """A private key and its certificate, and how their signatures are to be made and shown.

    Attributes:
        key: The private key.
        certificate: Its certificate (embedded in every signature).
        policy: The signature policy every signature names, if any.
        test: A test signature (no legal value): what it signs must say so where a user sees it.
    """

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    policy: SignaturePolicy | None = None
    test: bool = False


@dataclass(frozen=True)
class SignatureInfo:
    """What a valid signature says about itself.

    Attributes:
        subject: The signer certificate's subject (RFC 4514).
        signing_time: The signed ``signing-time``, if present.
        cades: ``signing-certificate-v2`` names the embedded certificate (CAdES-BES).
        policy: The ``signature-policy-identifier`` (OID, hash and URI as signed), if present.
        certificate: The embedded signer certificate.
    """

    subject: str
    signing_time: datetime | None
    cades: bool
    policy: SignaturePolicy | None = None
    certificate: x509.Certificate | None = None


class _HashAlgorithm(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("algorithm", algos.DigestAlgorithmId)]  # SHA-2: parameters absent (RFC 5754)


class _OtherHashAlgAndValue(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("hash_algorithm", _HashAlgorithm), ("hash_value", core.OctetString)]


class _PolicyQualifier(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [("sig_policy_qualifier_id", core.ObjectIdentifier), ("sig_qualifier", core.Any)]


class _PolicyQualifiers(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = _PolicyQualifier


class _SignaturePolicyId(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields = [
        ("sig_policy_id", core.ObjectIdentifier),
        ("sig_policy_hash", _OtherHashAlgAndValue),
        ("sig_policy_qualifiers", _PolicyQualifiers, {"optional": True}),
    ]


class _AnyValues(core.SetOf):  # type: ignore[misc]  # asn1crypto is untyped
    _child_spec = core.Any


class _RawAttribute(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """An attribute whose value asn1crypto does not know (kept out of its global type map)."""

    _fields = [("type", core.ObjectIdentifier), ("values", _AnyValues)]


def load_signer(pem: bytes, password: bytes | None = None) -> Signer:
    """Read a signer from PEM text holding a private key and its certificate (chain certificates may follow).

    Raises:
        ValueError: The PEM lacks either part, the key is neither RSA nor EC, or no
            certificate in it belongs to the key.
    """
    key = serialization.load_pem_private_key(pem, password=password)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the signing key must be RSA or EC")
    public = _spki(key.public_key())
    for certificate in x509.load_pem_x509_certificates(pem):
        if _spki(certificate.public_key()) == public:
            return Signer(key, certificate)
    raise ValueError("no certificate in the PEM belongs to its private key")


def _spki(public: Any) -> bytes:
    return bytes(
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _attribute(kind: str, value: Any) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": kind, "values": [value]})


def _policy_attribute(policy: SignaturePolicy) -> cms.CMSAttribute:
    value: dict[str, Any] = {
        "sig_policy_id": policy.oid,
        "sig_policy_hash": {"hash_algorithm": {"algorithm": "sha256"}, "hash_value": policy.sha256},
    }
    if policy.uri:
        value["sig_policy_qualifiers"] = [
            {"sig_policy_qualifier_id": POLICY_URI_QUALIFIER, "sig_qualifier": core.IA5String(policy.uri)}
        ]
    raw = _RawAttribute({"type": SIGNATURE_POLICY_ATTRIBUTE, "values": [_SignaturePolicyId(value)]})
    return cms.CMSAttribute.load(raw.dump())


def _signed_attributes(
    data: bytes, cert: asn1_x509.Certificate, when: datetime, policy: SignaturePolicy | None
) -> cms.CMSAttributes:
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
    if policy is not None:
        attributes.append(_policy_attribute(policy))
    # DER orders a SET OF by encoding; verifiers re-encode before checking the signature.
    return cms.CMSAttributes(sorted(attributes, key=lambda a: a.dump()))


def _sign(signer: Signer, message: bytes) -> tuple[bytes, str]:
    if isinstance(signer.key, rsa.RSAPrivateKey):
        return signer.key.sign(message, padding.PKCS1v15(), hashes.SHA256()), "sha256_rsa"
    return signer.key.sign(message, ec.ECDSA(hashes.SHA256())), "sha256_ecdsa"


def sign_detached(
    data: bytes,
    signer: Signer,
    *,
    signing_time: datetime | None = None,
    policy: SignaturePolicy | None = None,
) -> bytes:
    """The DER ``.p7s`` of ``data`` (detached: the file itself is not inside).

    Args:
        data: The bytes signed.
        signer: Key and certificate; its ``policy`` is named unless ``policy`` is given.
        signing_time: The signed ``signing-time`` (now by default).
        policy: The signature policy to name instead of the signer's.
    """
    cert = asn1_x509.Certificate.load(signer.certificate.public_bytes(serialization.Encoding.DER))
    named = policy or signer.policy
    attributes = _signed_attributes(data, cert, signing_time or datetime.now(UTC), named)
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
        attrs = {a["type"].dotted: a["values"][0] for a in signer_info["signed_attrs"]}
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SignatureInvalid(f"not a CMS signature: {exc}") from exc
    digest = attrs.get(_MESSAGE_DIGEST)
    if digest is None or digest.native != hashlib.sha256(data).digest():
        raise SignatureInvalid("the file's SHA-256 does not match the signed message digest")
    certificate = x509.load_der_x509_certificate(cert_der)
    signed_bytes = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    _check_signature(certificate, bytes(signer_info["signature"].native), signed_bytes)
    ess = attrs.get(_SIGNING_CERTIFICATE_V2)
    cades = (
        ess is not None and bytes(ess["certs"][0]["cert_hash"].native) == hashlib.sha256(cert_der).digest()
    )
    if ess is not None and not cades:
        raise SignatureInvalid("signing-certificate-v2 does not name the embedded certificate")
    when = attrs.get(_SIGNING_TIME)
    return SignatureInfo(
        certificate.subject.rfc4514_string(),
        when.native if when is not None else None,
        cades,
        _read_policy(attrs.get(SIGNATURE_POLICY_ATTRIBUTE)),
        certificate,
    )


def _read_policy(value: Any) -> SignaturePolicy | None:
    """The signed policy identifier (``None`` when absent; refused when implied or malformed)."""
    if value is None:
        return None
    try:
        policy = _SignaturePolicyId.load(value.dump())
        uris = [
            str(q["sig_qualifier"].parse(core.IA5String).native)
            for q in policy["sig_policy_qualifiers"] or []
            if q["sig_policy_qualifier_id"].dotted == POLICY_URI_QUALIFIER
        ]
        return SignaturePolicy(
            oid=policy["sig_policy_id"].dotted,
            sha256=bytes(policy["sig_policy_hash"]["hash_value"].native),
            uri=uris[0] if uris else "",
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureInvalid(f"the signature-policy-identifier is not an explicit policy: {exc}") from exc


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
