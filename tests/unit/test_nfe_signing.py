"""XML-DSig the SEFAZ way, and the verifier of every signature of a document (nfe.signing)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from tornado_tasks.nfe.certificates import A1Certificate, CertificateInvalid, TestAuthority, load_a1
from tornado_tasks.nfe.signing import (
    C14N,
    DS_NS,
    ENVELOPED,
    RSA_SHA1,
    SHA1,
    SignatureInvalid,
    SigningFailed,
    canonical,
    sign_enveloped,
    verify_enveloped,
)
from tornado_tasks.nfe.xml_builder import build_nfe

from tests.nfe_samples import (
    ISSUED_AT,
    ISSUER_CNPJ,
    NFE_NS,
    cancellation_request,
    new_a1,
    sample_invoice,
    sample_key,
)
from tornado_core import NonRetryable

DS = {"ds": DS_NS, "n": NFE_NS}


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority.create()


@pytest.fixture(scope="module")
def a1(authority: TestAuthority) -> A1Certificate:
    return new_a1(authority)


def unsigned_nfe(number: int = 1) -> bytes:
    invoice = sample_invoice(2)
    key = sample_key(invoice, number=number)
    return build_nfe(invoice, key=key, issued_at=ISSUED_AT, environment=2, software_version="test-1")


@pytest.fixture(scope="module")
def signed(a1: A1Certificate) -> bytes:
    return sign_enveloped(unsigned_nfe(), a1)


def key_id(xml: bytes) -> str:
    return str(etree.fromstring(xml).find("n:infNFe", DS).get("Id"))


# --- what a signature looks like ----------------------------------------------------------------------------


def test_sign_then_verify_gives_back_the_signer(a1: A1Certificate, signed: bytes) -> None:
    assert verify_enveloped(signed) == [a1.certificate]


def test_the_signature_has_exactly_the_sefaz_form(a1: A1Certificate, signed: bytes) -> None:
    root = etree.fromstring(signed)
    assert [etree.QName(child).localname for child in root] == ["infNFe", "Signature"]  # last child of NFe
    signature = root[-1]
    assert signature.prefix is None and signature.nsmap[None] == DS_NS
    assert signature.xpath("ds:SignedInfo/ds:CanonicalizationMethod/@Algorithm", namespaces=DS) == [C14N]
    assert signature.xpath("ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces=DS) == [RSA_SHA1]
    (reference,) = signature.xpath("ds:SignedInfo/ds:Reference", namespaces=DS)
    assert reference.get("URI") == f"#{key_id(signed)}"
    transforms = reference.xpath("ds:Transforms/ds:Transform/@Algorithm", namespaces=DS)
    assert transforms == [ENVELOPED, C14N]
    assert reference.xpath("ds:DigestMethod/@Algorithm", namespaces=DS) == [SHA1]
    (certificate,) = signature.xpath("ds:KeyInfo/ds:X509Data/ds:X509Certificate/text()", namespaces=DS)
    assert base64.b64decode(certificate) == a1.certificate.public_bytes(Encoding.DER)  # the leaf only
    assert C14N == "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"


def test_no_ds_prefix_no_whitespace_and_no_declaration_in_the_bytes(signed: bytes) -> None:
    assert b"ds:" not in signed and b"xmlns:ds" not in signed
    assert b'<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>' in signed
    assert re.search(rb">\s+<", signed) is None
    assert b"\n" not in signed and b"\r" not in signed
    assert signed.startswith(b'<NFe xmlns="http://www.portalfiscal.inf.br/nfe"><infNFe')
    assert signed.endswith(b"</Signature></NFe>")


def test_indented_input_comes_out_compact_and_valid(a1: A1Certificate) -> None:
    pretty = etree.tostring(etree.fromstring(unsigned_nfe()), pretty_print=True)
    assert b"\n  <infNFe" in pretty
    signed = sign_enveloped(pretty, a1)
    assert re.search(rb">\s+<", signed) is None
    assert verify_enveloped(signed) == [a1.certificate]


def test_a_declaration_is_kept_only_if_the_input_had_one(a1: A1Certificate) -> None:
    declared = sign_enveloped(b'<?xml version="1.0" encoding="UTF-8"?>\n' + unsigned_nfe(), a1)
    assert declared.startswith(b'<?xml version="1.0" encoding="UTF-8"?><NFe ')
    assert verify_enveloped(declared)
    assert sign_enveloped(unsigned_nfe(), a1).startswith(b"<NFe ")


def test_non_ascii_text_is_signed_as_utf8(a1: A1Certificate) -> None:
    xml = unsigned_nfe().replace(b"Venda de mercadoria", "Venda de mercadoria à vista".encode())
    signed = sign_enveloped(xml, a1)
    assert "à vista".encode() in signed
    assert verify_enveloped(signed) == [a1.certificate]


def test_an_event_is_signed_on_its_inf_evento(a1: A1Certificate) -> None:
    key = sample_key(sample_invoice()).text
    signed = sign_enveloped(cancellation_request(key), a1)
    event = etree.fromstring(signed).find("n:evento", DS)
    assert [etree.QName(child).localname for child in event] == ["infEvento", "Signature"]
    assert event.find("ds:Signature/ds:SignedInfo/ds:Reference", DS).get("URI") == f"#ID110111{key}01"
    assert verify_enveloped(signed) == [a1.certificate]


def test_canonical_form_has_no_spurious_empty_namespace(signed: bytes) -> None:
    """lxml's C14N of a sub-element writes xmlns="" on grandchildren; ours must not."""
    info = etree.fromstring(signed).find("n:infNFe", DS)
    text = canonical(info)
    assert b'xmlns=""' not in text
    assert text.startswith(b'<infNFe xmlns="http://www.portalfiscal.inf.br/nfe" Id="NFe')


# --- what fails ---------------------------------------------------------------------------------------------


def test_a_tampered_value_fails_naming_the_document(signed: bytes) -> None:
    tampered = signed.replace(b"<vProd>200.00</vProd>", b"<vProd>200.01</vProd>", 1)
    assert tampered != signed
    with pytest.raises(SignatureInvalid) as caught:
        verify_enveloped(tampered)
    assert str(caught.value).startswith(f"digest of #{key_id(signed)} does not match")
    assert isinstance(caught.value, NonRetryable)


def test_a_tampered_signature_value_fails(signed: bytes) -> None:
    root = etree.fromstring(signed)
    value = root.find("ds:Signature/ds:SignatureValue", DS)
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(SignatureInvalid, match=r"signature value of #NFe\d{44} does not verify"):
        verify_enveloped(etree.tostring(root))


def test_a_tampered_digest_value_fails(signed: bytes) -> None:
    root = etree.fromstring(signed)
    root.find("ds:Signature/ds:SignedInfo/ds:Reference/ds:DigestValue", DS).text = base64.b64encode(
        b"\x00" * 20
    ).decode()
    with pytest.raises(SignatureInvalid, match="digest of"):
        verify_enveloped(etree.tostring(root))


def test_another_certificate_in_key_info_fails(authority: TestAuthority, signed: bytes) -> None:
    other = new_a1(authority).certificate.public_bytes(Encoding.DER)
    root = etree.fromstring(signed)
    root.find(".//ds:X509Certificate", DS).text = base64.b64encode(other).decode()
    with pytest.raises(SignatureInvalid, match="does not verify with its certificate"):
        verify_enveloped(etree.tostring(root))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (RSA_SHA1.encode(), b"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "SignatureMethod must be"),
        (f'"{C14N}"/><SignatureMethod'.encode(), b'"x"/><SignatureMethod', "CanonicalizationMethod must be"),
        (
            f'Algorithm="{SHA1}"'.encode(),
            b'Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"',
            "DigestMethod",
        ),
        (f'<Transform Algorithm="{ENVELOPED}"/>'.encode(), b"", "the transforms of #NFe"),
        (b'URI="#NFe', b'URI="#NFX', "points at no element"),
        (b'URI="#NFe', b'URI="NFe', "must be '#' and the Id"),
        (b"<X509Data><X509Certificate>", b"<X509Data><X509Certificate>AAAA", "not a DER certificate"),
    ],
)
def test_a_signature_off_the_sefaz_form_fails(signed: bytes, old: bytes, new: bytes, message: str) -> None:
    assert old in signed
    with pytest.raises(SignatureInvalid, match=re.escape(message)):
        verify_enveloped(signed.replace(old, new, 1))


def test_a_document_without_signature_fails(signed: bytes) -> None:
    with pytest.raises(SignatureInvalid, match=r"^no Signature$"):
        verify_enveloped(unsigned_nfe())


def test_a_signed_element_moved_away_from_its_signature_fails(signed: bytes) -> None:
    """Signature wrapping: the signed infNFe is kept elsewhere and an altered one takes its place."""
    root = etree.fromstring(signed)
    original = root.find("n:infNFe", DS)
    holder = etree.SubElement(root, f"{{{NFE_NS}}}infAdic")
    holder.append(etree.fromstring(etree.tostring(original)))
    with pytest.raises(SignatureInvalid, match="ambiguous: 2 elements carry that Id"):
        verify_enveloped(etree.tostring(root))
    original.set("Id", "NFe" + "1" * 44)
    with pytest.raises(SignatureInvalid, match="is not beside the element it signs"):
        verify_enveloped(etree.tostring(root))


def lote(*documents: bytes) -> bytes:
    head = f'<enviNFe xmlns="{NFE_NS}" versao="4.00"><idLote>1</idLote><indSinc>0</indSinc>'.encode()
    return head + b"".join(documents) + b"</enviNFe>"


def test_every_signature_of_a_lote_is_verified(authority: TestAuthority, a1: A1Certificate) -> None:
    other = new_a1(authority)
    first, second = sign_enveloped(unsigned_nfe(1), a1), sign_enveloped(unsigned_nfe(2), other)
    assert verify_enveloped(lote(first, second)) == [a1.certificate, other.certificate]
    tampered = second.replace(b"<nNF>2</nNF>", b"<nNF>3</nNF>")
    with pytest.raises(SignatureInvalid, match=f"digest of #{key_id(second)} does not match"):
        verify_enveloped(lote(first, tampered))


def test_an_unsigned_nfe_in_a_lote_fails(a1: A1Certificate) -> None:
    unsigned = unsigned_nfe(2)
    with pytest.raises(SignatureInvalid, match=f"infNFe #{key_id(unsigned)} has no Signature"):
        verify_enveloped(lote(sign_enveloped(unsigned_nfe(1), a1), unsigned))


def test_untrusted_xml_is_parsed_safely() -> None:
    external = b'<!DOCTYPE NFe [<!ENTITY x SYSTEM "file:///etc/passwd">]><NFe>&x;</NFe>'
    with pytest.raises(SignatureInvalid, match="DOCTYPE is not allowed"):
        verify_enveloped(external)
    with pytest.raises(SignatureInvalid, match="not well-formed"):
        verify_enveloped(b"<NFe><infNFe></NFe>")


# --- what cannot be signed, and the certificate side --------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b'<NFe xmlns="http://www.portalfiscal.inf.br/nfe"/>', "found 0"),
        (b'<infNFe xmlns="http://www.portalfiscal.inf.br/nfe" Id="NFe1"/>', "is the root element"),
        (b"<NFe", "not well-formed"),
    ],
)
def test_what_cannot_be_signed_says_why(a1: A1Certificate, document: bytes, message: str) -> None:
    with pytest.raises(SigningFailed, match=message):
        sign_enveloped(document, a1)


def test_a_lote_or_a_signed_document_cannot_be_signed_again(a1: A1Certificate, signed: bytes) -> None:
    with pytest.raises(SigningFailed, match="already signed"):
        sign_enveloped(signed, a1)
    with pytest.raises(SigningFailed, match="found 2"):
        sign_enveloped(lote(unsigned_nfe(1), unsigned_nfe(2)), a1)


def test_a_wrong_password_never_yields_a_signer(authority: TestAuthority) -> None:
    with pytest.raises(CertificateInvalid, match="password is wrong"):
        load_a1(authority.issue_a1(ISSUER_CNPJ, "X", password="right"), "wrong")


def test_an_expired_certificate_still_signs_and_says_it_is_expired(authority: TestAuthority) -> None:
    started = datetime(2020, 3, 1, tzinfo=UTC)
    expired = load_a1(authority.issue_a1(ISSUER_CNPJ, "X", password="p", days=30, not_before=started), "p")
    assert expired.problem(datetime.now(UTC)) == "expired on 2020-03-31"
    assert verify_enveloped(sign_enveloped(unsigned_nfe(), expired)) == [expired.certificate]
