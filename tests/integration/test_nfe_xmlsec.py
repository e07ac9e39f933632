"""Our NF-e signatures verify with the reference implementation, xmlsec1, and tampered copies do not.

xmlsec1 (Debian package ``xmlsec1``, installed by the bootstrap) is an external command: missing,
the tests skip on a developer's machine and fail in a strict run (``TORNADO_STRICT``/``CI``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree
from tornado_tasks.nfe.certificates import A1Certificate, TestAuthority
from tornado_tasks.nfe.signing import SignatureInvalid, sign_enveloped, verify_enveloped
from tornado_tasks.nfe.xml_builder import build_nfe

from tests.nfe_samples import ISSUED_AT, cancellation_request, new_a1, sample_invoice, sample_key
from tornado_core.toolchain.strict import strict_mode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def xmlsec1() -> str:
    found = shutil.which("xmlsec1")
    if found is None:
        if strict_mode(os.environ):
            pytest.fail("xmlsec1 is needed (apt-get install xmlsec1; bash .ci/bootstrap installs it)")
        pytest.skip("xmlsec1 is not installed (apt-get install xmlsec1)")
    return found


@pytest.fixture(scope="module")
def a1() -> A1Certificate:
    return new_a1(TestAuthority.create())


def xmlsec_verify(
    xmlsec1: str, document: bytes, element: str, folder: Path
) -> subprocess.CompletedProcess[str]:
    path = folder / f"{element}.xml"
    path.write_bytes(document)
    command = [xmlsec1, "--verify", "--insecure", "--id-attr:Id", element, str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def signed_nfe(a1: A1Certificate, items: int = 3) -> bytes:
    invoice = sample_invoice(items)
    xml = build_nfe(
        invoice, key=sample_key(invoice), issued_at=ISSUED_AT, environment=2, software_version="t"
    )
    return sign_enveloped(xml, a1)


def test_xmlsec1_accepts_a_signed_nfe_and_refuses_a_tampered_one(
    xmlsec1: str, a1: A1Certificate, tmp_path: Path
) -> None:
    signed = signed_nfe(a1)
    result = xmlsec_verify(xmlsec1, signed, "infNFe", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr
    tampered = signed.replace(b"<vProd>100.00</vProd>", b"<vProd>100.01</vProd>", 1)
    assert tampered != signed
    refused = xmlsec_verify(xmlsec1, tampered, "infNFe", tmp_path)
    assert refused.returncode != 0
    assert "FAIL" in refused.stdout + refused.stderr


def test_xmlsec1_accepts_a_signed_cancellation_event(xmlsec1: str, a1: A1Certificate, tmp_path: Path) -> None:
    key = sample_key(sample_invoice()).text
    signed = sign_enveloped(cancellation_request(key), a1)
    result = xmlsec_verify(xmlsec1, signed, "infEvento", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    tampered = signed.replace(b"<nSeqEvento>1</nSeqEvento>", b"<nSeqEvento>2</nSeqEvento>")
    assert xmlsec_verify(xmlsec1, tampered, "infEvento", tmp_path).returncode != 0


def test_xmlsec1_accepts_a_990_item_nfe(xmlsec1: str, a1: A1Certificate, tmp_path: Path) -> None:
    result = xmlsec_verify(xmlsec1, signed_nfe(a1, 990), "infNFe", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_our_verifier_and_xmlsec1_agree_on_nfelib_samples(xmlsec1: str, tmp_path: Path) -> None:
    """nfelib's samples were re-indented after signing, so both must refuse them, for the same reason."""
    folder = files("nfelib") / "nfe" / "samples" / "v4_0" / "leiauteNFe"
    sample = folder.joinpath("35180834128745000152550010000474281920007498-nfe.xml").read_bytes()
    assert xmlsec_verify(xmlsec1, sample, "infNFe", tmp_path).returncode != 0
    with pytest.raises(SignatureInvalid, match="digest of #NFe35180834128745000152550010000474281920007498"):
        verify_enveloped(sample)


def test_xmlsec1_signing_our_template_gives_our_values_and_our_verifier_accepts_it(
    xmlsec1: str, a1: A1Certificate, tmp_path: Path
) -> None:
    """The other direction: xmlsec1 signs (base64 with line breaks) and computes the same values as we do."""
    ours = signed_nfe(a1)
    template = re.sub(rb"<(DigestValue|SignatureValue)>[^<]*</\1>", rb"<\1></\1>", ours)
    template = re.sub(rb"<X509Data>.*</X509Data>", b"<X509Data><X509Certificate/></X509Data>", template)
    (tmp_path / "template.xml").write_bytes(template)
    private = serialization.PrivateFormat.PKCS8
    key = a1.private_key.private_bytes(serialization.Encoding.PEM, private, serialization.NoEncryption())
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "cert.pem").write_bytes(a1.certificate.public_bytes(serialization.Encoding.PEM))
    pems = f"{tmp_path / 'key.pem'},{tmp_path / 'cert.pem'}"
    command = [xmlsec1, "--sign", "--privkey-pem", pems, "--id-attr:Id", "infNFe"]
    command += ["--output", str(tmp_path / "theirs.xml"), str(tmp_path / "template.xml")]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    theirs = (tmp_path / "theirs.xml").read_bytes()
    assert verify_enveloped(theirs) == [a1.certificate]
    for name in ("DigestValue", "SignatureValue", "X509Certificate"):
        assert _value(theirs, name) == _value(ours, name), name


def _value(document: bytes, name: str) -> str:
    found = etree.fromstring(document).find(f".//{{http://www.w3.org/2000/09/xmldsig#}}{name}")
    return "".join((found.text or "").split())
