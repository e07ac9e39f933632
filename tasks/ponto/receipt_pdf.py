"""The receipt as a PDF: laid out with fpdf2, certified with a PAdES signature by pyHanko, and verified.

The page shows every field of :class:`~tornado_tasks.ponto.receipt.ReceiptFields` in Portuguese; the
same fields travel as an embedded ``comprovante.json`` (machine-readable, like a Factur-X invoice).
The signature is a PAdES baseline (``ETSI.CAdES.detached``) certification signature that allows no
change afterwards, so both the page and the JSON are covered by it. A receipt of a REP not registered
at INPI carries a red band saying it is a test receipt with a test signature.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .receipt import RECEIPT_KIND, ReceiptFields, collector_name, field_differences, receipt_of_record
from .signing import Signer

#: Name of the JSON file embedded in every receipt.
EMBEDDED_NAME = "comprovante.json"
#: The signature's reason, as readers show it.
SIGN_REASON = "Comprovante de registro de ponto (Portaria MTP 671/2021, REP-P)"
_PAGE = (148.0, 210.0)  # A5, millimetres
_SUBTITLE = "Portaria MTP nº 671/2021 - REP-P (registro eletrônico via programa)"
_TEST_BAND = "RECIBO DE TESTE - REP-P não registrado no INPI - assinatura de teste, sem validade jurídica"


def _latin1(text: str) -> str:
    """What the PDF's core fonts can show (ISO-8859-1); other characters become ``?`` on the page only."""
    return text.encode("latin-1", "replace").decode("latin-1")


def format_cpf(cpf: str) -> str:
    """``12345678909`` as ``123.456.789-09``."""
    return f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}" if len(cpf) == 11 else cpf


def format_employer_id(kind: int, digits: str) -> str:
    """A CNPJ as ``11.222.333/0001-81``, a CPF as ``123.456.789-09``, with its name."""
    if kind == 1 and len(digits) == 14:
        return f"CNPJ {digits[:2]}.{digits[2:5]}.{digits[5:8]}/{digits[8:12]}-{digits[12:]}"
    return f"CPF {format_cpf(digits)}" if kind == 2 else digits


def _when(moment: datetime, zone: str) -> str:
    offset = moment.strftime("%z")
    return f"{moment:%d/%m/%Y %H:%M:%S} (UTC{offset[:3]}:{offset[3:]}, {zone})"


def receipt_lines(fields: ReceiptFields, signer_name: str) -> list[tuple[str, str]]:
    """The page's ``(label, value)`` lines, in order (what a reader of the PDF sees)."""
    rep = (
        f"nº INPI {fields.inpi}"
        if fields.registered
        else f"não registrado no INPI (nº informado: {fields.inpi})"
    )
    mode = "offline (sincronizada depois)" if fields.offline else "online"
    return [
        ("NSR", f"{fields.nsr:09d}"),
        ("Empregador", fields.employer_name),
        ("CNPJ/CPF", format_employer_id(fields.employer_id_type, fields.employer_id)),
        ("CNO/CAEPF", fields.cno_caepf or "não informado"),
        ("Local", f"{fields.site} ({fields.establishment_id})"),
        ("Trabalhador", fields.employee_name or "(sem inclusão no REP)"),
        ("CPF", format_cpf(fields.cpf)),
        ("Marcação", _when(fields.marked_at, fields.time_zone)),
        ("Gravação", _when(fields.recorded_at, fields.time_zone)),
        ("REP-P", f"{fields.rep_id}, {rep}"),
        ("Coletor", f"{fields.collector:02d} {collector_name(fields.collector)}, {mode}"),
        ("Identificador", fields.punch_id),
        ("Hash SHA-256", fields.hash),
        ("Assinatura", f"PAdES, {signer_name}"),
    ]


def render_receipt(fields: ReceiptFields, signer_name: str) -> bytes:
    """The unsigned PDF of a receipt; the same fields always give the same bytes (dated at gravação)."""
    from fpdf import FPDF  # here: fpdf2 takes a third of a second to import

    pdf = FPDF(format=_PAGE)
    pdf.set_creation_date(fields.recorded_at)
    pdf.set_title("Comprovante de registro de ponto")
    pdf.set_subject(f"NSR {fields.nsr:09d}, REP {fields.rep_id}")
    pdf.set_author(_latin1(fields.employer_name))
    pdf.set_margins(10, 10, 10)
    pdf.add_page()
    pdf.set_font("helvetica", "B", 12)
    pdf.multi_cell(0, 6, "Comprovante de Registro de Ponto do Trabalhador", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 8)
    pdf.cell(0, 5, _SUBTITLE, new_x="LMARGIN", new_y="NEXT")
    if fields.test:
        pdf.set_fill_color(200, 0, 0)
        pdf.set_text_color(255, 255, 255)
        pdf.set_font("helvetica", "B", 9)
        pdf.multi_cell(0, 5, _TEST_BAND, fill=True, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(3)
    for label, value in receipt_lines(fields, signer_name):
        pdf.set_font("helvetica", "B", 9)
        pdf.cell(28, 5, label)
        pdf.set_font(*(("courier", "", 7) if label == "Hash SHA-256" else ("helvetica", "", 9)))
        pdf.multi_cell(0, 5, _latin1(value), align="L", new_x="LMARGIN", new_y="NEXT")
    content = json.dumps(fields.to_json(), ensure_ascii=False, sort_keys=True).encode()
    pdf.embed_file(basename=EMBEDDED_NAME, bytes=content, desc="Campos do comprovante (JSON)")
    return bytes(pdf.output())


def _raw_signature(signer: Signer, data: bytes, digest_algorithm: str) -> bytes:
    if digest_algorithm != "sha256":
        raise ValueError(f"receipts are signed with SHA-256, not {digest_algorithm}")
    if isinstance(signer.key, rsa.RSAPrivateKey):
        return signer.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return signer.key.sign(data, ec.ECDSA(hashes.SHA256()))


def _pyhanko_signer(signer: Signer) -> Any:
    """A pyHanko signer over our key object (pyHanko's ``SimpleSigner`` re-parses the key per signature)."""
    from pyhanko.sign.signers.pdf_cms import Signer as HankoSigner

    class KeySigner(HankoSigner):
        async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
            return _raw_signature(signer, data, digest_algorithm)

    cert = asn1_x509.Certificate.load(signer.certificate.public_bytes(serialization.Encoding.DER))
    return KeySigner(signing_cert=cert)  # the certificate goes into every signature


def signer_name(signer: Signer) -> str:
    """The signer's common name (or its whole subject), as the receipt names it."""
    names = signer.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else signer.certificate.subject.rfc4514_string()


def sign_receipt(pdf: bytes, signer: Signer, *, location: str = "") -> bytes:
    """``pdf`` certified with a PAdES signature of ``signer`` (SHA-256) that allows no later change."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.signers.pdf_signer import PdfSignatureMetadata

    metadata = PdfSignatureMetadata(
        field_name="Assinatura",
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=SIGN_REASON,
        location=_latin1(location) or None,
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    out = signers.sign_pdf(writer, metadata, signer=_pyhanko_signer(signer))
    return bytes(out.getvalue())


def make_receipt(fields: ReceiptFields, signer: Signer) -> bytes:
    """Render and sign the receipt of one punch."""
    return sign_receipt(render_receipt(fields, signer_name(signer)), signer, location=fields.site)


@dataclass
class ReceiptCheck:
    """What :func:`verify_receipt` found: the signature's state, the signed fields, the problems.

    Attributes:
        fields: The embedded fields (``{}`` if unreadable).
        signer: The signing certificate's subject.
        signed_at: The signing time the signer reported.
        trusted: The certificate chains to one of the trust roots given (never without roots).
        problems: Everything wrong; empty when the receipt verifies.
    """

    fields: dict[str, Any] = field(default_factory=dict)
    signer: str = ""
    signed_at: datetime | None = None
    trusted: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Signature intact and valid over the whole file, fields readable."""
        return not self.problems

    @property
    def test(self) -> bool:
        """The receipt says it is a test (its REP is not registered)."""
        return bool(self.fields.get("test", True))


def verify_receipt(pdf: bytes, *, trust_roots: Sequence[x509.Certificate] = ()) -> ReceiptCheck:
    """Check a receipt's PAdES signature and read its fields back (no network: nothing is fetched).

    The signature must be the only one, intact and cryptographically valid, cover the whole file
    (nothing appended after it) and be a certification that forbids changes. ``trusted`` says
    whether its certificate chains to ``trust_roots`` (e.g. ICP-Brasil's); without roots it is
    checked against its own certificate only and reported untrusted.
    """
    from pyhanko.pdf_utils.reader import PdfFileReader

    check = ReceiptCheck()
    try:
        reader = PdfFileReader(io.BytesIO(pdf))
        signatures = reader.embedded_signatures
    except Exception as exc:  # pyHanko raises several kinds of errors on a file that is not a PDF
        check.problems.append(f"not a readable PDF: {exc}")
        return check
    if len(signatures) != 1:
        check.problems.append(f"expected one signature, found {len(signatures)}")
        return check
    _check_signature(check, signatures[0], trust_roots)
    try:
        check.fields = _embedded_fields(reader)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        check.problems.append(f"no readable {EMBEDDED_NAME}: {exc}")
    if check.fields and check.fields.get("kind") != RECEIPT_KIND:
        check.problems.append(f"{EMBEDDED_NAME} is not a {RECEIPT_KIND}")
    return check


def _check_signature(check: ReceiptCheck, signature: Any, trust_roots: Sequence[x509.Certificate]) -> None:
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    roots = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in trust_roots]
    context = ValidationContext(trust_roots=roots or [signature.signer_cert], allow_fetching=False)
    status = validate_pdf_signature(signature, context)
    check.signer = status.signing_cert.subject.human_friendly
    check.signed_at = signature.self_reported_timestamp
    check.trusted = bool(roots) and bool(status.trusted)
    if not (status.intact and status.valid):
        check.problems.append("the signature does not verify (the file was changed or the signature is bad)")
    whole = status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    if not whole or status.modification_level != ModificationLevel.NONE:
        check.problems.append("the signature does not cover the whole file (something was added after it)")
    if not status.docmdp_ok:
        check.problems.append("the file was changed after its certification signature")


def _embedded_fields(reader: Any) -> dict[str, Any]:
    names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    found = {str(names[i]): names[i + 1] for i in range(0, len(names), 2)}
    data = found[EMBEDDED_NAME]["/EF"]["/F"].data
    parsed = json.loads(data.decode("utf-8"))
    if not isinstance(parsed, dict):
        raise ValueError("not a JSON object")
    return parsed


def verify_receipt_with_ledger(
    conn: Any, pdf: bytes, *, trust_roots: Sequence[x509.Certificate] = ()
) -> ReceiptCheck:
    """:func:`verify_receipt`, then every field compared with the ledger's row of the same REP and NSR.

    Args:
        conn: DB-API connection to the ERP database.
        pdf: The receipt.
        trust_roots: As for :func:`verify_receipt`.
    """
    check = verify_receipt(pdf, trust_roots=trust_roots)
    rep, nsr = check.fields.get("rep", {}).get("id"), check.fields.get("nsr")
    if not isinstance(rep, str) or not isinstance(nsr, int):
        return check
    found = receipt_of_record(conn, rep, nsr)
    if found is None:
        check.problems.append(f"ledger: REP {rep} has no punch with NSR {nsr}")
    else:
        check.problems.extend(f"ledger: {p}" for p in field_differences(check.fields, found.to_json()))
    return check
