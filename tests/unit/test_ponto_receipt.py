"""The employee's receipt (comprovante de registro de ponto): its PDF, its PAdES signature, its store."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from tornado_tasks.ponto.receipt import ReceiptFields, field_differences, receipt_key
from tornado_tasks.ponto.receipt_cli import verify_receipt_command
from tornado_tasks.ponto.receipt_pdf import make_receipt, render_receipt, verify_receipt
from tornado_tasks.ponto.receipt_store import Signers, stored_receipt
from tornado_tasks.ponto.rep_signer import DEV_SIGNER_KEY
from tornado_tasks.ponto.signing import Signer, load_signer

from tornado_core.adapters.memory.stores import MemoryObjectStore
from tornado_core.devstack.certs import make_test_signer_pem
from tornado_core.errors import ObjectStoreError

ACRE = ZoneInfo("America/Rio_Branco")
FIELDS = ReceiptFields(
    punch_id="7c1e9a52-0d3f-4a8e-9b6c-2f1d3e4a5b6c",
    nsr=3,
    rep_id="acme-rep00",
    inpi="BR512021000001",
    registered=False,
    employer_name="ACME Indústria LTDA",
    employer_id_type=1,
    employer_id="11222333000181",
    cno_caepf="",
    establishment_id="acme-est",
    site="Rua das Flores, 100 - Rio Branco/AC",
    employee_name="José da Conceição",
    cpf="12345678909",
    marked_at=datetime(2025, 3, 10, 8, 0, 5, tzinfo=ACRE),
    recorded_at=datetime(2025, 3, 10, 8, 0, 6, tzinfo=ACRE),
    time_zone="America/Rio_Branco",
    collector=4,
    offline=True,
    hash="10e62e2b13452de8e51e7b7e1962f2e8d1cc61928c8d9ab13da09afe595cb040",
)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return load_signer(make_test_signer_pem())


@pytest.fixture(scope="module")
def receipt(signer: Signer) -> bytes:
    return make_receipt(FIELDS, signer)


def page_text(pdf: bytes) -> str:
    """The strings the page draws (the core fonts write ISO-8859-1 in ``(...) Tj``)."""
    page = PdfFileReader(io.BytesIO(pdf)).root["/Pages"]["/Kids"][0]
    stream = page["/Contents"].data.decode("latin-1")
    return "\n".join(
        m.replace("\\(", "(").replace("\\)", ")") for m in re.findall(r"\((.*?)(?<!\\)\) Tj", stream)
    )


def test_a_receipt_verifies_and_carries_every_field_of_the_ledger_row(receipt: bytes, signer: Signer) -> None:
    check = verify_receipt(receipt, trust_roots=[signer.certificate])
    assert check.ok, check.problems
    assert check.trusted and "Tornado TEST signer" in check.signer
    assert check.fields == FIELDS.to_json()
    assert check.fields["marked_at"] == "2025-03-10T08:00:05-05:00"  # the establishment's offset, not -03:00
    assert check.fields["rep"] == {"id": "acme-rep00", "inpi": "BR512021000001", "registered": False}
    assert (check.fields["collector"], check.fields["offline"]) == (
        {"code": "04", "name": "dispositivo"},
        True,
    )


def test_the_page_shows_the_fields_and_says_a_test_receipt_is_one(receipt: bytes) -> None:
    text = page_text(receipt)
    for shown in (
        "000000003",
        "ACME Indústria LTDA",
        "CNPJ 11.222.333/0001-81",
        "Rua das Flores, 100 - Rio Branco/AC (acme-est)",
        "José da Conceição",
        "123.456.789-09",
        "10/03/2025 08:00:05 (UTC-05:00, America/Rio_Branco)",
        "10/03/2025 08:00:06 (UTC-05:00, America/Rio_Branco)",
        FIELDS.hash,
        "04 dispositivo, offline",
        "RECIBO DE TESTE",
    ):
        assert shown in text, shown
    assert "não registrado no INPI" in text


def test_a_registered_reps_receipt_has_no_test_band(signer: Signer) -> None:
    registered = replace(FIELDS, registered=True)
    pdf = make_receipt(registered, signer)
    check = verify_receipt(pdf)
    assert check.ok and not check.test and not check.trusted  # no trust root given: never "trusted"
    assert "RECIBO DE TESTE" not in page_text(pdf) and "nº INPI BR512021000001" in page_text(pdf)


def test_the_same_fields_render_the_same_document() -> None:
    assert render_receipt(FIELDS, "x") == render_receipt(FIELDS, "x")
    assert render_receipt(FIELDS, "x") != render_receipt(replace(FIELDS, nsr=4), "x")


def test_a_changed_byte_fails_the_signature(receipt: bytes) -> None:
    at = receipt.index(b"/Subject")  # inside the signed range
    check = verify_receipt(receipt[:at] + b"/Subjecu" + receipt[at + 8 :])
    assert not check.ok
    assert "the signature does not verify" in " ".join(check.problems)


def test_an_update_appended_after_signing_is_refused(receipt: bytes) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(receipt))
    writer.root["/Lang"] = generic.pdf_string("pt-BR")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    check = verify_receipt(out.getvalue())
    assert not check.ok
    assert any("does not cover the whole file" in p or "changed after" in p for p in check.problems)


def test_another_certificate_is_not_trusted(receipt: bytes) -> None:
    stranger = load_signer(make_test_signer_pem("someone else"))
    check = verify_receipt(receipt, trust_roots=[stranger.certificate])
    assert check.ok and not check.trusted  # valid signature, untrusted certificate


def test_not_a_pdf_is_a_problem_not_a_crash() -> None:
    check = verify_receipt(b"%PDF-1.4 nothing")
    assert not check.ok and check.fields == {}


def test_a_name_outside_latin_1_is_kept_exact_in_the_signed_fields(signer: Signer) -> None:
    fields = replace(FIELDS, employee_name="Łukasz Nguyễn")
    check = verify_receipt(make_receipt(fields, signer))
    assert check.ok and check.fields["employee"]["name"] == "Łukasz Nguyễn"


def test_field_differences_name_each_changed_field() -> None:
    found = FIELDS.to_json()
    expected = replace(FIELDS, nsr=4, employee_name="Maria").to_json()
    assert field_differences(found, expected) == [
        "employee.name: receipt says 'José da Conceição', the ledger 'Maria'",
        "nsr: receipt says 3, the ledger 4",
    ]
    assert field_differences(found, FIELDS.to_json()) == []


class _Signers:
    def __init__(self, signer: Signer) -> None:
        self.signer, self.calls = signer, 0

    def __call__(self, registered: bool) -> Signer:
        self.calls += 1
        return self.signer


def test_a_receipt_is_signed_once_then_served_as_stored(signer: Signer) -> None:
    objects, signers = MemoryObjectStore(), _Signers(signer)
    first = stored_receipt(objects, "acme", FIELDS, signers)
    assert stored_receipt(objects, "acme", FIELDS, signers) == first
    assert signers.calls == 1
    assert objects.get(receipt_key("acme", "acme-rep00", 3)) == first
    assert receipt_key("acme", "acme-rep00", 3) == "ponto/receipts/acme/acme-rep00/000000003.pdf"


class _FlakyReads(MemoryObjectStore):
    def get(self, key: str) -> bytes:
        raise ObjectStoreError("S3 timed out")


def test_a_failed_read_of_a_stored_receipt_never_signs_a_second_one(signer: Signer) -> None:
    objects, signers = _FlakyReads(), _Signers(signer)
    objects.put(receipt_key("acme", "acme-rep00", 3), b"the receipt given out")
    with pytest.raises(ObjectStoreError):
        stored_receipt(objects, "acme", FIELDS, signers)
    assert signers.calls == 0


def test_an_api_process_signs_with_a_newly_installed_signer_within_its_max_age() -> None:
    objects, now = MemoryObjectStore(), [1000.0]
    objects.put(DEV_SIGNER_KEY, make_test_signer_pem("first"))
    signers = Signers(objects, max_age=60, clock=lambda: now[0])
    assert "first" in signers(False).certificate.subject.rfc4514_string()
    objects.put(DEV_SIGNER_KEY, make_test_signer_pem("second"))
    now[0] += 30
    assert "first" in signers(False).certificate.subject.rfc4514_string()
    now[0] += 31
    assert "second" in signers(False).certificate.subject.rfc4514_string()


def test_verify_receipt_says_ok_for_a_receipt_and_exits_1_for_one_appended_to(
    receipt: bytes, signer: Signer, tmp_path: Path
) -> None:
    (tmp_path / "root.pem").write_bytes(signer.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "good.pdf").write_bytes(receipt)
    (tmp_path / "bad.pdf").write_bytes(receipt + b"\n%% appended\n")
    trust = ["--trust", str(tmp_path / "root.pem")]
    good = CliRunner().invoke(verify_receipt_command, [str(tmp_path / "good.pdf"), *trust])
    assert good.exit_code == 0, good.output
    assert "NSR 3 on REP acme-rep00" in good.output and "; trusted" in good.output
    assert "TEST receipt" in good.output
    bad = CliRunner().invoke(verify_receipt_command, [str(tmp_path / "bad.pdf"), *trust])
    assert bad.exit_code == 1 and "does not cover the whole file" in bad.output
