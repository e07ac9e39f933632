"""Who signs a REP-P's files (AFD, receipts, AEJ): the developer's certificate, ICP-Brasil once registered.

The MTE's FAQ on Portaria 671 has the REP's developer sign the AFD, so there is one signer for
every tenant and REP: the developer's key and certificate, one PEM at :data:`REP_SIGNER_KEY` in
the object store (``tornado ponto install-signer``). There is no per-tenant override.

*Production* means the REP is registered at INPI (``ponto_rep.registered``, set only with a valid
registration number, :func:`.identity.inpi_problem`). For a registered REP
:func:`load_rep_signer` refuses (:class:`SignerRefused`) a certificate that is not ICP-Brasil or
not valid now. A REP that is not registered (the demo REP, development, homologation) signs with
whatever is installed, else with the local stack's test signer (:data:`DEV_SIGNER_KEY`), and its
signatures are marked ``test``: what carries them must say so where a user sees it
(:data:`TEST_SIGNATURE_NOTICE`).

How a certificate is recognised as ICP-Brasil (:func:`icp_brasil_problem`): its issuer's DN has
``O=ICP-Brasil`` (every authority under the AC Raiz does), it is not self-signed, and it carries a
certificate policy of the ICP-Brasil arc for signature certificates, ``2.16.76.1.2.*`` (DOC-ICP-04:
A1 ``2.16.76.1.2.1.n``, A3 ``2.16.76.1.2.3.n``, ...). This is a check of form, not of trust: the
chain up to the AC Raiz is not validated here (no trust anchors are bundled) [verify: pin the AC
Raiz v5/v10/v11 certificates and validate the chain, and match the e-CNPJ's CNPJ (SAN otherName
``2.16.76.1.3.3``) with the REP's developer id].

Every signature names the ICP-Brasil signature policy for CAdES, AD-RB (:data:`AD_RB_POLICY`):
``2.16.76.1.7.1.1.2.3`` (PA_AD_RB v2.3, DOC-ICP-15.03), SHA-256 of its document
``b16e88bb...a3d5``, published at ``http://politicas.icpbrasil.gov.br/PA_AD_RB_v2_3.der``
[verify: OID and hash taken from two independent public implementations, one of them a real
ICP-Brasil signature, not from the LPA itself (``http://politicas.icpbrasil.gov.br/LPA_CAdES.der``);
check there that v2.3 is still the version in force].
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from tornado_core.errors import ConfigError
from tornado_core.ports.objects import ObjectStorePort

from .signing import SignaturePolicy, Signer, load_signer

#: Object key of the REP-P developer's signer (private key and certificate, one PEM).
REP_SIGNER_KEY = "signing/rep-p-developer/signer.pem"
#: Where ``tornado dev up`` puts its test signer (``tornado_core.devstack.certs.TEST_SIGNER_KEY``);
#: read only for REPs that are not registered, when no developer signer is installed.
DEV_SIGNER_KEY = "signing/default/signer.pem"
#: ``O=`` of every ICP-Brasil certification authority.
ICP_BRASIL_ORGANIZATION = "ICP-Brasil"
#: The arc of ICP-Brasil certificate policies for signature certificates (A1, A3, ...).
ICP_BRASIL_POLICY_ARC = "2.16.76.1.2."
#: The ICP-Brasil signature policy for CAdES, basic reference (AD-RB), version 2.3.
AD_RB_POLICY = SignaturePolicy(
    oid="2.16.76.1.7.1.1.2.3",
    sha256=bytes.fromhex("b16e88bbf77322a67995b79078778ed3d0ea7c88587b6f6d518b715e8f76a3d5"),
    uri="http://politicas.icpbrasil.gov.br/PA_AD_RB_v2_3.der",
    name="ICP-Brasil AD-RB v2.3",
)
#: What a test signature's carrier says to its reader (job results, receipts, reports).
TEST_SIGNATURE_NOTICE = (
    "TEST SIGNATURE: this REP-P is not registered at INPI; the signature has no legal value"
)


class SignerError(ConfigError):
    """The REP-P developer's signer is not installed or cannot be read."""


class SignerRefused(SignerError):
    """A REP registered at INPI may not sign with this certificate (not ICP-Brasil, or not valid now)."""


def icp_brasil_problem(certificate: x509.Certificate) -> str | None:
    """Why ``certificate`` is not an ICP-Brasil signature certificate, or ``None`` if it is one.

    A check of form (issuer ``O=ICP-Brasil``, not self-signed, an ICP-Brasil certificate
    policy), not of the chain: see the module's notes.
    """
    issuers = [str(a.value) for a in certificate.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if ICP_BRASIL_ORGANIZATION not in issuers:
        return f"its issuer ({certificate.issuer.rfc4514_string()}) is not an ICP-Brasil authority"
    if certificate.issuer == certificate.subject:
        return "it is self-signed (an ICP-Brasil signer is issued by an AC)"
    if not any(oid.startswith(ICP_BRASIL_POLICY_ARC) for oid in _policies(certificate)):
        return f"it carries no ICP-Brasil certificate policy ({ICP_BRASIL_POLICY_ARC}*)"
    return None


def is_icp_brasil(certificate: x509.Certificate) -> bool:
    """Whether ``certificate`` looks like an ICP-Brasil signature certificate (:func:`icp_brasil_problem`)."""
    return icp_brasil_problem(certificate) is None


def _policies(certificate: x509.Certificate) -> list[str]:
    try:
        policies = certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return []
    return [policy.policy_identifier.dotted_string for policy in policies]


def load_rep_signer(objects: ObjectStorePort, *, registered: bool) -> Signer:
    """The signer of a REP-P's files, naming the AD-RB policy.

    Args:
        objects: The object store holding :data:`REP_SIGNER_KEY`.
        registered: Whether the REP is registered at INPI (production): then only a valid
            ICP-Brasil certificate is accepted; otherwise any, and the signer is a test one.

    Returns:
        The signer, with ``policy`` :data:`AD_RB_POLICY` and ``test`` set when not registered.

    Raises:
        SignerError: No signer installed (or, unregistered, no test signer either), or an unreadable PEM.
        SignerRefused: Registered, and the certificate is not ICP-Brasil or not valid now.
        ObjectStoreError: The object store failed (worth a retry).
    """
    keys = (REP_SIGNER_KEY,) if registered else (REP_SIGNER_KEY, DEV_SIGNER_KEY)
    key = next((k for k in keys if objects.exists(k)), None)
    if key is None:
        raise SignerError(
            f"no REP-P developer signer at {REP_SIGNER_KEY} (install it: tornado ponto install-signer PEM)"
            + ("" if registered else f", and no test signer at {DEV_SIGNER_KEY}")
        )
    signer = _read(objects.get(key), key)
    if registered:
        problem = icp_brasil_problem(signer.certificate) or _validity_problem(signer.certificate)
        if problem:
            raise SignerRefused(
                f"a REP registered at INPI signs with the developer's ICP-Brasil certificate;"
                f" the one at {key} ({signer.certificate.subject.rfc4514_string()}) is refused: {problem}"
            )
    return replace(signer, policy=AD_RB_POLICY, test=not registered)


def install_rep_signer(objects: ObjectStorePort, pem: bytes) -> Signer:
    """Store the REP-P developer's PEM (key + certificate) at :data:`REP_SIGNER_KEY`, after reading it.

    Raises:
        SignerError: The PEM is not a key with its certificate.
    """
    signer = _read(pem, "the PEM")
    objects.put(REP_SIGNER_KEY, pem, content_type="application/x-pem-file")
    return signer


def _read(pem: bytes, where: str) -> Signer:
    try:
        return load_signer(pem)
    except (ValueError, TypeError) as exc:  # TypeError: an encrypted key (no password is kept)
        raise SignerError(f"the signer at {where} cannot be read: {exc}") from exc


def _validity_problem(certificate: x509.Certificate) -> str | None:
    now = datetime.now(UTC)
    if now < certificate.not_valid_before_utc:
        return f"it is valid only from {certificate.not_valid_before_utc.isoformat()}"
    if now > certificate.not_valid_after_utc:
        return f"it expired on {certificate.not_valid_after_utc.isoformat()}"
    return None
