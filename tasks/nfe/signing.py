"""XML-DSig for NF-e documents, the way SEFAZ demands it, and a verifier for every signature of a document.

SEFAZ accepts exactly one form (``xmldsig-core-schema_v1.01.xsd`` plus practice):

* an *enveloped* signature of the element carrying ``Id`` (``infNFe``, ``infEvento``,
  ``infInut``), placed as the last child of that element's parent;
* RSA-SHA1 over SHA-1 digests, C14N 1.0 without comments, exactly the two transforms
  enveloped-signature then C14N, one ``Reference URI="#<Id>"``;
* ``KeyInfo/X509Data/X509Certificate`` with the leaf certificate only;
* ``<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">`` with no ``ds:`` prefix, and no
  whitespace between tags anywhere in the document.

The signature is written directly with lxml and cryptography (no signxml): the form is fixed,
so a generic library adds nothing but its defaults to override.

Canonicalisation never runs on a sub-element in place: lxml's C14N of a sub-element writes a
spurious ``xmlns=""`` on grandchildren when a default namespace is used (libxml2 2.13/2.14), which
makes correct signatures look bad. :func:`canonical` serialises the element (lxml copies every
namespace declaration in scope onto it), parses that copy and canonicalises the copy's whole
document, which is the inclusive C14N of the element.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from tornado_core import NonRetryable

from .certificates import A1Certificate

NFE_NS = "http://www.portalfiscal.inf.br/nfe"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
RSA_SHA1 = f"{DS_NS}rsa-sha1"
SHA1 = f"{DS_NS}sha1"
ENVELOPED = f"{DS_NS}enveloped-signature"
#: The transforms SEFAZ requires, in order.
TRANSFORMS = (ENVELOPED, C14N)
#: Local names (NF-e namespace) of the elements a signature covers.
SIGNED_ELEMENTS = ("infNFe", "infEvento", "infInut")
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'


class SignatureInvalid(NonRetryable):
    """A document's signature is missing, malformed or does not verify; the message says which and why."""


class SigningFailed(NonRetryable):
    """A document cannot be signed: not well-formed, no (or several) elements to sign, already signed."""


def parse_untrusted(xml: bytes, *, compact: bool = False) -> Any:
    """The root element of ``xml``, parsed without entities, network, DTDs or huge-tree limits lifted.

    Args:
        xml: The document's bytes (its encoding declaration is honoured).
        compact: Drop whitespace-only text between tags (for documents about to be signed).

    Raises:
        ValueError: The document is not well-formed, or it has a DOCTYPE (never in NF-e documents,
            and the door to entity tricks).
    """
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_blank_text=compact,
    )
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise ValueError("a DOCTYPE is not allowed in an NF-e document")
    return root


def canonical(element: Any) -> bytes:
    """Inclusive C14N 1.0 (no comments) of ``element``, computed on a re-parsed copy.

    The copy carries every namespace declaration in scope where ``element`` stands, so the
    result is the C14N of ``element`` in its document, without lxml's spurious ``xmlns=""``.
    """
    copy = parse_untrusted(etree.tostring(element, with_tail=False, encoding="utf-8"))
    return bytes(etree.tostring(copy, method="c14n", exclusive=False, with_comments=False))


def sign_enveloped(xml: bytes, certificate: A1Certificate) -> bytes:
    """Sign the one ``infNFe``/``infEvento``/``infInut`` of ``xml`` the way SEFAZ demands.

    Whitespace between tags is dropped before signing. The result is UTF-8, starts with an XML
    declaration only if ``xml`` had one, and ends its signed element's parent with the
    ``Signature``.

    Args:
        xml: An unsigned document (``NFe``, ``evento``, ``inutNFe``...).
        certificate: The issuer's A1.

    Raises:
        SigningFailed: ``xml`` is not well-formed, has no or several elements to sign, the element
            is the root or is already signed.
    """
    declared = xml.lstrip().removeprefix(b"\xef\xbb\xbf").startswith(b"<?xml")
    try:
        root = parse_untrusted(xml, compact=True)
    except ValueError as exc:
        raise SigningFailed(str(exc)) from None
    target = _signing_target(root)
    parent = target.getparent()
    signature = _signature(target.get("Id"), hashlib.sha1(canonical(target)).digest(), certificate)
    parent.append(signature)
    value = certificate.private_key.sign(canonical(signature[0]), padding.PKCS1v15(), hashes.SHA1())
    signature[1].text = base64.b64encode(value).decode("ascii")
    body = bytes(etree.tostring(root, encoding="utf-8", xml_declaration=False))
    return _DECLARATION + body if declared else body


def verify_enveloped(xml: bytes) -> list[x509.Certificate]:
    """Verify every ``Signature`` of ``xml`` (one per ``NFe`` of a lote, per ``evento``...).

    Each signature must have the SEFAZ form (see the module), reference by a unique ``Id`` an
    element beside it, carry the right digest of that element, and a signature value that the
    certificate in its ``KeyInfo`` verifies. Every ``infNFe``/``infEvento``/``infInut`` must be
    covered by a signature. The certificate is not checked against any authority: that is the
    caller's policy.

    Returns:
        The signer certificates, in document order.

    Raises:
        SignatureInvalid: Naming the signature and what failed (``"no Signature"``,
            ``"digest of #NFe35... does not match"``...).
    """
    try:
        root = parse_untrusted(xml)
    except ValueError as exc:
        raise SignatureInvalid(str(exc)) from None
    signatures = list(root.iter(f"{{{DS_NS}}}Signature"))
    if not signatures:
        raise SignatureInvalid("no Signature")
    ids = _elements_by_id(root)
    signers = [_verify_one(signature, ids) for signature in signatures]
    _require_all_signed(root, signatures)
    return signers


# --- signing ---------------------------------------------------------------------------------------------


def _signing_target(root: Any) -> Any:
    candidates = [
        element
        for name in SIGNED_ELEMENTS
        for element in root.iter(f"{{{NFE_NS}}}{name}")
        if element.get("Id") is not None
    ]
    if len(candidates) != 1:
        names = "/".join(SIGNED_ELEMENTS)
        raise SigningFailed(f"expected one {names} with an Id attribute to sign, found {len(candidates)}")
    target = candidates[0]
    parent = target.getparent()
    if parent is None:
        name = etree.QName(target).localname
        raise SigningFailed(f"{name} is the root element: the Signature goes into its parent")
    if parent.find(f"{{{DS_NS}}}Signature") is not None:
        raise SigningFailed(f"#{target.get('Id')} is already signed")
    return target


def _signature(reference_id: str, digest: bytes, certificate: A1Certificate) -> Any:
    """The ``Signature`` element, its ``SignatureValue`` still empty."""

    def ds(parent: Any, name: str, text: str | None = None, **attributes: str) -> Any:
        element = etree.SubElement(parent, f"{{{DS_NS}}}{name}", attributes)
        element.text = text
        return element

    signature = etree.Element(f"{{{DS_NS}}}Signature", nsmap={None: DS_NS})
    signed_info = ds(signature, "SignedInfo")
    ds(signed_info, "CanonicalizationMethod", Algorithm=C14N)
    ds(signed_info, "SignatureMethod", Algorithm=RSA_SHA1)
    reference = ds(signed_info, "Reference", URI=f"#{reference_id}")
    transforms = ds(reference, "Transforms")
    for algorithm in TRANSFORMS:
        ds(transforms, "Transform", Algorithm=algorithm)
    ds(reference, "DigestMethod", Algorithm=SHA1)
    ds(reference, "DigestValue", base64.b64encode(digest).decode("ascii"))
    ds(signature, "SignatureValue")
    leaf = certificate.certificate.public_bytes(Encoding.DER)
    ds(ds(ds(signature, "KeyInfo"), "X509Data"), "X509Certificate", base64.b64encode(leaf).decode("ascii"))
    return signature


# --- verification ----------------------------------------------------------------------------------------


def _verify_one(signature: Any, ids: dict[str, list[Any]]) -> x509.Certificate:
    signed_info = _one(signature, "SignedInfo", "the Signature")
    _expect_algorithm(signed_info, "CanonicalizationMethod", C14N)
    _expect_algorithm(signed_info, "SignatureMethod", RSA_SHA1)
    references = signed_info.findall(f"{{{DS_NS}}}Reference")
    if len(references) != 1:
        raise SignatureInvalid(f"a Signature must have exactly one Reference, found {len(references)}")
    reference = references[0]
    uri = reference.get("URI") or ""
    target = _target(uri, ids, signature)
    _check_digest(reference, uri, target, signature)
    certificate = _certificate(signature, uri)
    _check_value(signature, signed_info, certificate, uri)
    return certificate


def _target(uri: str, ids: dict[str, list[Any]], signature: Any) -> Any:
    if not uri.startswith("#") or len(uri) < 2:
        raise SignatureInvalid(f"Reference URI {uri!r} must be '#' and the Id of the signed element")
    found = ids.get(uri[1:], [])
    if not found:
        raise SignatureInvalid(f"Reference {uri} points at no element")
    if len(found) > 1:
        raise SignatureInvalid(f"Reference {uri} is ambiguous: {len(found)} elements carry that Id")
    if found[0].getparent() is not signature.getparent():
        raise SignatureInvalid(f"the Signature of {uri} is not beside the element it signs")
    return found[0]


def _check_digest(reference: Any, uri: str, target: Any, signature: Any) -> None:
    transforms = reference.findall(f"{{{DS_NS}}}Transforms/{{{DS_NS}}}Transform")
    algorithms = tuple(transform.get("Algorithm") for transform in transforms)
    if algorithms != TRANSFORMS:
        raise SignatureInvalid(f"the transforms of {uri} are {list(algorithms)}, expected {list(TRANSFORMS)}")
    _expect_algorithm(reference, "DigestMethod", SHA1)
    expected = _base64(_one(reference, "DigestValue", uri).text, f"DigestValue of {uri}")
    # The Signature stands beside its target (checked), so the enveloped transform removes nothing.
    actual = hashlib.sha1(canonical(target)).digest()
    if not hmac.compare_digest(expected, actual):
        raise SignatureInvalid(f"digest of {uri} does not match: the signed element was changed")


def _certificate(signature: Any, uri: str) -> x509.Certificate:
    path = f"{{{DS_NS}}}KeyInfo/{{{DS_NS}}}X509Data/{{{DS_NS}}}X509Certificate"
    found = signature.findall(path)
    if len(found) != 1:
        message = f"the Signature of {uri} must carry exactly one X509Certificate, has {len(found)}"
        raise SignatureInvalid(message)
    try:
        certificate = x509.load_der_x509_certificate(_base64(found[0].text, f"X509Certificate of {uri}"))
    except ValueError:
        raise SignatureInvalid(f"the X509Certificate of {uri} is not a DER certificate") from None
    return certificate


def _check_value(signature: Any, signed_info: Any, certificate: x509.Certificate, uri: str) -> None:
    value = _base64(_one(signature, "SignatureValue", uri).text, f"SignatureValue of {uri}")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureInvalid(f"the certificate of {uri} has no RSA key")
    try:
        key.verify(value, canonical(signed_info), padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        raise SignatureInvalid(f"signature value of {uri} does not verify with its certificate") from None


def _require_all_signed(root: Any, signatures: list[Any]) -> None:
    referenced = {
        reference.get("URI")
        for signature in signatures
        for reference in signature.iter(f"{{{DS_NS}}}Reference")
    }
    for name in SIGNED_ELEMENTS:
        for element in root.iter(f"{{{NFE_NS}}}{name}"):
            identifier = element.get("Id")
            if identifier is None:
                raise SignatureInvalid(f"{name} has no Id attribute, so no Signature covers it")
            if f"#{identifier}" not in referenced:
                raise SignatureInvalid(f"{name} #{identifier} has no Signature")


def _elements_by_id(root: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for element in root.iter(tag=etree.Element):
        value = element.get("Id")
        if value is not None:
            found.setdefault(value, []).append(element)
    return found


def _one(parent: Any, name: str, owner: str) -> Any:
    found = parent.findall(f"{{{DS_NS}}}{name}")
    if len(found) != 1:
        raise SignatureInvalid(f"{owner} must have exactly one {name}, has {len(found)}")
    return found[0]


def _expect_algorithm(parent: Any, name: str, expected: str) -> None:
    algorithm = _one(parent, name, etree.QName(parent).localname).get("Algorithm")
    if algorithm != expected:
        raise SignatureInvalid(f"{name} must be {expected}, found {algorithm!r}")


def _base64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid(f"{what} is not base64") from None
