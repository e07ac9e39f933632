"""The NF-e XML of an invoice and its key: XSD-valid, ide from the key, exact decimals (nfe.xml_builder)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree
from tornado_tasks.nfe.access_key import AccessKeyInvalid
from tornado_tasks.nfe.certificates import A1Certificate, TestAuthority
from tornado_tasks.nfe.invoice import Invoice, validate_invoice
from tornado_tasks.nfe.signing import sign_enveloped, verify_enveloped
from tornado_tasks.nfe.xml_builder import HOMOLOGATION_NAME, Contingency, build_nfe, key_problems
from tornado_tasks.nfe.xml_parts import fixed, money, quantity, rate, unit_price
from tornado_tasks.nfe.xsd import schema_errors

from tests.nfe_samples import (
    ISSUED_AT,
    NFE_NS,
    invoice_payload,
    item,
    new_a1,
    sample_invoice,
    sample_key,
    with_items,
)
from tornado_core import PayloadInvalid

N = {"n": NFE_NS}
CONTINGENCY = Contingency(ISSUED_AT - timedelta(hours=1), "SEFAZ-SP fora do ar desde as 09h30")


@pytest.fixture(scope="module")
def a1() -> A1Certificate:
    return new_a1(TestAuthority.create())


def build(invoice: Invoice, *, environment: int = 2, **options: Any) -> bytes:
    key = options.pop("key", None) or sample_key(invoice)
    return build_nfe(
        invoice, key=key, issued_at=options.pop("issued_at", ISSUED_AT), environment=environment,
        software_version="tornado-nfe 1.0", **options,
    )  # fmt: skip


def text(xml: bytes, path: str) -> str | None:
    return etree.fromstring(xml).findtext(path, namespaces=N)


def payload_with(**changes: Any) -> dict[str, Any]:
    """The one-item sample payload with parts of its first item replaced (totals recomputed)."""
    line = item()
    for name, value in changes.items():
        line[name] = {**line[name], **value} if isinstance(value, dict) else value
    return with_items([line])


# --- valid documents ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("items", [1, 2, 990])
def test_a_built_and_signed_invoice_has_no_xsd_error(a1: A1Certificate, items: int) -> None:
    xml = build(sample_invoice(items))
    assert len(etree.fromstring(xml).findall("n:infNFe/n:det", N)) == items
    signed = sign_enveloped(xml, a1)
    assert schema_errors(signed) == []
    assert verify_enveloped(signed) == [a1.certificate]
    assert key_problems(signed) == []


def test_the_output_is_compact_unprefixed_and_without_declaration() -> None:
    xml = build(sample_invoice(2))
    assert xml.startswith(b'<NFe xmlns="http://www.portalfiscal.inf.br/nfe"><infNFe versao="4.00" Id="NFe')
    assert re.search(rb">\s+<", xml) is None and b"\n" not in xml
    assert b"ns0:" not in xml and b"<?xml" not in xml


def test_the_id_and_the_ide_fields_come_from_the_key() -> None:
    invoice = sample_invoice()
    key = sample_key(invoice, number=123456)
    xml = build(invoice, key=key)
    assert etree.fromstring(xml).find("n:infNFe", N).get("Id") == f"NFe{key.text}"
    ide = {
        etree.QName(child).localname: child.text for child in etree.fromstring(xml).find("n:infNFe/n:ide", N)
    }
    assert ide["cUF"] == key.text[:2] == "35"
    assert ide["cNF"] == key.text[35:43] and ide["cNF"] == f"{key.random_code:08d}"
    assert (ide["mod"], ide["serie"], ide["nNF"]) == ("55", "1", "123456")
    assert (ide["tpEmis"], ide["cDV"]) == (key.text[34], key.text[43])
    assert ide["dhEmi"] == "2026-11-20T10:30:15-03:00"
    assert (ide["tpAmb"], ide["tpNF"], ide["finNFe"], ide["idDest"]) == ("2", "1", "1", "1")
    assert text(xml, "n:infNFe/n:emit/n:CNPJ") == key.issuer
    assert key_problems(xml) == []


def test_homologation_renames_the_recipient_and_production_does_not() -> None:
    assert text(build(sample_invoice(), environment=2), "n:infNFe/n:dest/n:xNome") == HOMOLOGATION_NAME
    assert HOMOLOGATION_NAME == "NF-E EMITIDA EM AMBIENTE DE HOMOLOGACAO - SEM VALOR FISCAL"
    production = build(sample_invoice(), environment=1)
    assert text(production, "n:infNFe/n:dest/n:xNome") == "Fulano de Tal"
    assert text(production, "n:infNFe/n:ide/n:tpAmb") == "1"


def test_a_company_recipient_in_another_uf_with_ie(a1: A1Certificate) -> None:
    payload = invoice_payload()
    payload["recipient"] = {
        "cnpj": "11.222.333/0001-81", "name": "Cliente SA", "ie_indicator": 1, "ie": "123456789",
        "email": "fiscal@cliente.com.br", "address": {**payload["recipient"]["address"], "uf": "RJ"},
    }  # fmt: skip
    xml = build(validate_invoice(payload))
    assert text(xml, "n:infNFe/n:dest/n:CNPJ") == "11222333000181"
    assert text(xml, "n:infNFe/n:dest/n:IE") == "123456789"
    assert text(xml, "n:infNFe/n:ide/n:idDest") == "2"
    assert text(xml, "n:infNFe/n:ide/n:indFinal") == "0"
    assert schema_errors(sign_enveloped(xml, a1)) == []


def test_an_alphanumeric_cnpj_issuer_is_valid(a1: A1Certificate) -> None:
    payload = invoice_payload()
    payload["issuer"]["cnpj"] = "12.ABC.345/01DE-35"
    invoice = validate_invoice(payload)
    xml = build(invoice)
    assert sample_key(invoice).text[6:20] == "12ABC34501DE35" == text(xml, "n:infNFe/n:emit/n:CNPJ")
    assert schema_errors(sign_enveloped(xml, a1)) == []


def test_change_is_written_only_when_there_is_some() -> None:
    assert text(build(sample_invoice()), "n:infNFe/n:pag/n:vTroco") is None
    payload = invoice_payload()
    payload["payments"] = [{"method": "01", "amount": "150.00"}]
    payload["change"] = "50.00"
    assert text(build(validate_invoice(payload)), "n:infNFe/n:pag/n:vTroco") == "50.00"


def test_contingency_fills_dh_cont_and_x_just(a1: A1Certificate) -> None:
    invoice = sample_invoice()
    xml = build(invoice, key=sample_key(invoice, emission_type=6), contingency=CONTINGENCY)
    assert text(xml, "n:infNFe/n:ide/n:tpEmis") == "6"
    assert text(xml, "n:infNFe/n:ide/n:dhCont") == "2026-11-20T09:30:15-03:00"
    assert text(xml, "n:infNFe/n:ide/n:xJust") == "SEFAZ-SP fora do ar desde as 09h30"
    assert schema_errors(sign_enveloped(xml, a1)) == []


# --- decimals -----------------------------------------------------------------------------------------------


def test_decimals_are_written_exactly_in_the_xsd_formats(a1: A1Certificate) -> None:
    line = item(quantity="1.5", unit_price="0.0012345", total="0.00")
    line["icms"] = {"origin": 0, "cst": "00", "base": "0.00", "rate": "18", "amount": "0.00"}
    line["pis"] = {"cst": "01", "base": "0.00", "rate": "1.65", "amount": "0.00"}
    line["cofins"] = {"cst": "01", "base": "0.00", "rate": "7.6", "amount": "0.00"}
    second = item(1, quantity="3", unit_price="12345.67", total="37037.01")
    xml = build(validate_invoice(with_items([line, second])))
    first, other = etree.fromstring(xml).findall("n:infNFe/n:det", N)
    assert first.findtext("n:prod/n:qCom", namespaces=N) == "1.5000"
    assert first.findtext("n:prod/n:qTrib", namespaces=N) == "1.5000"
    assert first.findtext("n:prod/n:vUnCom", namespaces=N) == "0.0012345"
    assert first.findtext("n:prod/n:vProd", namespaces=N) == "0.00"
    assert first.findtext(".//n:ICMS00/n:pICMS", namespaces=N) == "18.00"
    assert first.findtext(".//n:PISAliq/n:pPIS", namespaces=N) == "1.65"
    assert first.findtext(".//n:COFINSAliq/n:pCOFINS", namespaces=N) == "7.60"
    assert other.findtext("n:prod/n:qCom", namespaces=N) == "3.0000"
    assert other.findtext("n:prod/n:vUnCom", namespaces=N) == "12345.67"
    assert text(xml, "n:infNFe/n:total/n:ICMSTot/n:vProd") == "37037.01"
    assert text(xml, "n:infNFe/n:total/n:ICMSTot/n:vNF") == "37037.01"
    assert schema_errors(sign_enveloped(xml, a1)) == []


@pytest.mark.parametrize(
    ("write", "value", "expected"),
    [
        (money, Decimal("100"), "100.00"),
        (money, Decimal("1E+2"), "100.00"),
        (money, Decimal("0"), "0.00"),
        (money, Decimal("1234567890123.45"), "1234567890123.45"),
        (quantity, Decimal("1.5"), "1.5000"),
        (quantity, Decimal("0.0001"), "0.0001"),
        (unit_price, Decimal("50"), "50.00"),
        (unit_price, Decimal("0.1234567891"), "0.1234567891"),
        (unit_price, Decimal("0E-10"), "0.00"),
        (rate, Decimal("18"), "18.00"),
        (rate, Decimal("1.65"), "1.65"),
        (rate, Decimal("0.6525"), "0.6525"),
        (rate, Decimal("7.600"), "7.60"),
    ],
)
def test_each_format(write: Any, value: Decimal, expected: str) -> None:
    assert write(value) == expected


@pytest.mark.parametrize("value", [Decimal("0.001"), Decimal("NaN"), Decimal("Infinity")])
def test_a_decimal_is_never_rounded_to_fit(value: Decimal) -> None:
    with pytest.raises(ValueError):
        money(value)
    with pytest.raises(ValueError, match="does not fit 4 decimal places"):
        fixed(Decimal("1.23456"), 2, 4)


# --- tax groups ---------------------------------------------------------------------------------------------

NO_TAX = {"base": "0.00", "rate": "0.00", "amount": "0.00"}


@pytest.mark.parametrize(
    ("crt", "icms", "group"),
    [
        (3, {"cst": "00"}, "ICMS00"),
        (3, {"cst": "40", **NO_TAX}, "ICMS40"),
        (2, {"cst": "41", **NO_TAX}, "ICMS40"),
        (3, {"cst": "50", **NO_TAX}, "ICMS40"),
        (3, {"cst": "60", **NO_TAX}, "ICMS60"),
        (3, {"cst": "90"}, "ICMS90"),
        (3, {"cst": "90", **NO_TAX}, "ICMS90"),
        (1, {"cst": "102", **NO_TAX}, "ICMSSN102"),
        (4, {"cst": "400", **NO_TAX}, "ICMSSN102"),
        (1, {"cst": "500", **NO_TAX}, "ICMSSN500"),
        (1, {"cst": "900"}, "ICMSSN900"),
    ],
)
def test_crt_and_cst_choose_the_icms_group(
    a1: A1Certificate, crt: int, icms: dict[str, str], group: str
) -> None:
    payload = payload_with(icms=icms)
    payload["issuer"]["crt"] = crt
    xml = build(validate_invoice(payload))
    (found,) = etree.fromstring(xml).find("n:infNFe/n:det/n:imposto/n:ICMS", N)
    assert etree.QName(found).localname == group
    code = found.findtext("n:CST", namespaces=N) or found.findtext("n:CSOSN", namespaces=N)
    assert code == icms["cst"]
    assert schema_errors(sign_enveloped(xml, a1)) == []


@pytest.mark.parametrize(
    ("cst", "group"),
    [("02", "PISAliq"), ("04", "PISNT"), ("09", "PISNT"), ("49", "PISOutr"), ("99", "PISOutr")],
)
def test_the_pis_and_cofins_cst_choose_their_group(a1: A1Certificate, cst: str, group: str) -> None:
    taxes = {"cst": cst, **NO_TAX} if group == "PISNT" else {"cst": cst}
    xml = build(validate_invoice(payload_with(pis=taxes, cofins=taxes)))
    assert etree.fromstring(xml).find(f"n:infNFe/n:det/n:imposto/n:PIS/n:{group}", N) is not None
    cofins = group.replace("PIS", "COFINS")
    assert etree.fromstring(xml).find(f"n:infNFe/n:det/n:imposto/n:COFINS/n:{cofins}", N) is not None
    assert schema_errors(sign_enveloped(xml, a1)) == []


@pytest.mark.parametrize(
    ("crt", "changes", "field", "words"),
    [
        (
            3,
            {"icms": {"cst": "20"}},
            "items[0].icms.cst",
            "ICMS CST '20' is not supported by the NF-e builder",
        ),
        (3, {"icms": {"cst": "10"}}, "items[0].icms.cst", "supported: 00, 40, 41, 50, 60, 90"),
        (1, {"icms": {"cst": "101"}}, "items[0].icms.cst", "CSOSN '101' is not supported"),
        (3, {"icms": {"cst": "40"}}, "items[0].icms.base", "must be zero with CST 40, which carries no tax"),
        (3, {"pis": {"cst": "03"}}, "items[0].pis.cst", "PIS CST '03' is not supported"),
        (3, {"cofins": {"cst": "06"}}, "items[0].cofins.base", "must be zero with COFINS CST 06"),
    ],
)
def test_a_tax_the_builder_cannot_map_is_a_payload_error(
    crt: int, changes: dict[str, Any], field: str, words: str
) -> None:
    payload = payload_with(**changes)
    payload["issuer"]["crt"] = crt
    with pytest.raises(PayloadInvalid) as caught:
        build(validate_invoice(payload))
    (problem,) = caught.value.errors
    assert problem["field"] == field and words in problem["message"]


def test_every_unmappable_tax_of_every_item_is_reported() -> None:
    lines = [item(i) for i in range(3)]
    lines[0]["icms"]["cst"] = "20"
    lines[2]["icms"]["cst"] = "70"
    lines[2]["pis"]["cst"] = "03"
    with pytest.raises(PayloadInvalid) as caught:
        build(validate_invoice(with_items(lines)))
    fields = [problem["field"] for problem in caught.value.errors]
    assert fields == ["items[0].icms.cst", "items[2].icms.cst", "items[2].pis.cst"]


# --- the key belongs to the invoice -------------------------------------------------------------------------


def test_a_key_for_another_series_issuer_or_month_is_refused() -> None:
    invoice = sample_invoice()
    other_series = validate_invoice({**invoice_payload(), "series": 2})
    with pytest.raises(AccessKeyInvalid) as caught:
        build(other_series, key=sample_key(invoice))
    assert [p["field"] for p in caught.value.problems] == ["ide.serie"]
    other_issuer = invoice_payload()
    other_issuer["issuer"]["cnpj"] = "11.222.333/0001-81"
    with pytest.raises(AccessKeyInvalid) as caught:
        build(validate_invoice(other_issuer), key=sample_key(invoice))
    assert [p["field"] for p in caught.value.problems] == ["emit.CNPJ"]
    with pytest.raises(AccessKeyInvalid) as caught:
        build(invoice, key=sample_key(invoice), issued_at=ISSUED_AT + timedelta(days=20))
    assert [p["field"] for p in caught.value.problems] == ["ide.dhEmi"]


def test_contingency_and_emission_type_must_agree() -> None:
    invoice = sample_invoice()
    with pytest.raises(AccessKeyInvalid) as caught:
        build(invoice, key=sample_key(invoice, emission_type=7))
    assert caught.value.problems[0]["field"] == "ide.dhCont"
    with pytest.raises(AccessKeyInvalid) as caught:
        build(invoice, contingency=CONTINGENCY)
    assert caught.value.problems[0]["field"] == "ide.tpEmis"


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"environment": 3}, "environment (tpAmb) must be 1 or 2"),
        ({"issued_at": datetime(2026, 11, 20, 10)}, "timezone-aware"),
        ({"software_version": "x" * 21}, "1 to 20 characters"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, Any], words: str) -> None:
    invoice = sample_invoice()
    options: dict[str, Any] = {
        "issued_at": ISSUED_AT,
        "environment": 2,
        "software_version": "v1",
        **arguments,
    }
    with pytest.raises(ValueError, match=re.escape(words)):
        build_nfe(invoice, key=sample_key(invoice), **options)


def test_a_contingency_needs_an_aware_start_and_a_real_reason() -> None:
    with pytest.raises(ValueError, match="15 to 256"):
        Contingency(datetime.now(UTC), "   curto    ")
    with pytest.raises(ValueError, match="timezone-aware"):
        Contingency(datetime(2026, 1, 1), "x" * 20)


# --- key_problems on received documents ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (b"<nNF>1</nNF>", b"<nNF>2</nNF>", "ide.nNF"),
        (b"<serie>1</serie>", b"<serie>01</serie>", "ide.serie"),
        (b"<tpEmis>1</tpEmis>", b"<tpEmis>6</tpEmis>", "ide.tpEmis"),
        (b"<cUF>35</cUF>", b"<cUF>41</cUF>", "ide.cUF"),
        (b"<mod>55</mod>", b"<mod>65</mod>", "ide.mod"),
        (b"<dhEmi>2026-11", b"<dhEmi>2026-10", "ide.dhEmi"),
        (b"<CNPJ>59594315000157</CNPJ>", b"<CNPJ>11222333000181</CNPJ>", "emit.CNPJ"),
        (b"<UF>SP</UF>", b"<UF>PR</UF>", "emit.enderEmit.UF"),
    ],
)
def test_key_problems_names_the_field_that_disagrees(old: bytes, new: bytes, field: str) -> None:
    xml = build(sample_invoice())
    assert old in xml
    assert [p["field"] for p in key_problems(xml.replace(old, new, 1))] == [field]


def test_key_problems_of_a_bad_id_or_document() -> None:
    xml = build(sample_invoice())
    key = sample_key(sample_invoice()).text
    wrong_digit = xml.replace(key.encode(), key[:-1].encode() + str((int(key[-1]) + 1) % 10).encode())
    assert [p["field"] for p in key_problems(wrong_digit)] == ["infNFe.Id"]
    assert "check_digit" in key_problems(wrong_digit)[0]["message"]
    assert (
        key_problems(xml.replace(f'Id="NFe{key}"'.encode(), f'Id="{key}"'.encode()))[0]["field"]
        == "infNFe.Id"
    )
    assert key_problems(b"<x/>") == [{"field": "infNFe", "message": "expected one infNFe, found 0"}]
    assert key_problems(b"<x")[0]["field"] == "(xml)"


def test_key_problems_wants_dh_cont_in_contingency() -> None:
    invoice = sample_invoice()
    xml = build(invoice, key=sample_key(invoice, emission_type=6), contingency=CONTINGENCY)
    assert key_problems(xml) == []
    stripped = re.sub(rb"<dhCont>[^<]*</dhCont><xJust>[^<]*</xJust>", b"", xml)
    assert [p["field"] for p in key_problems(stripped)] == ["ide.dhCont", "ide.xJust"]
