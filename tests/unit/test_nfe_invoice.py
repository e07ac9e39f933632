"""The invoice the ERP submits: strict JSON, decimals as strings, business rules (nfe.invoice)."""

from __future__ import annotations

import copy
import decimal
import json
from decimal import Decimal
from typing import Any

import pytest
from tornado_tasks.nfe.examples import EXAMPLE_ADDRESS, example_invoice, example_item
from tornado_tasks.nfe.invoice import MAX_ITEMS, Invoice, validate_invoice

from tornado_core import PayloadInvalid, task

ADDRESS = EXAMPLE_ADDRESS
item = example_item


def invoice(items: int = 1) -> dict[str, Any]:
    """A valid payload with ``items`` identical items of 100.00 and totals that add up."""
    return example_invoice(items, cnpj="59.594.315/0001-57")


def problems(payload: Any) -> list[dict[str, str]]:
    with pytest.raises(PayloadInvalid) as caught:
        validate_invoice(payload)
    return caught.value.errors


def fields_of(payload: Any) -> list[str]:
    return [p["field"] for p in problems(payload)]


def changed(path: str, value: Any, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of ``payload`` (a valid invoice by default) with ``value`` at a dotted ``path``."""
    result = copy.deepcopy(payload or invoice())
    *parents, last = path.split(".")
    target: Any = result
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    target[int(last) if last.isdigit() else last] = value
    return result


# --- a valid invoice ------------------------------------------------------------------------------------


def test_a_valid_invoice_passes_with_exact_decimals() -> None:
    parsed = validate_invoice(invoice(items=3))
    assert parsed.model == 55
    assert parsed.issuer.cnpj == "59594315000157"  # kept without the mask
    assert parsed.recipient.cpf == "12345678909"
    assert parsed.items[0].quantity == Decimal("2.0000")
    assert parsed.totals.products == Decimal("300.00")
    assert all(isinstance(line.total, Decimal) for line in parsed.items)


def test_decimals_go_back_to_json_as_the_same_strings() -> None:
    dumped = validate_invoice(invoice()).model_dump(mode="json")
    assert dumped["items"][0]["quantity"] == "2.0000"
    assert dumped["totals"]["pis"] == "1.65"
    assert validate_invoice(dumped) == validate_invoice(invoice())


def test_an_alphanumeric_cnpj_issuer_and_a_cnpj_recipient_pass() -> None:
    payload = changed("issuer.cnpj", "12.abc.345/01de-35")
    payload["recipient"] = {
        **payload["recipient"],
        "cpf": None,
        "cnpj": "11.222.333/0001-81",
        "ie_indicator": 1,
    }
    parsed = validate_invoice(payload)
    assert parsed.issuer.cnpj == "12ABC34501DE35"
    assert parsed.recipient.cnpj == "11222333000181"


def test_the_json_schema_says_decimals_are_strings() -> None:
    schema = Invoice.model_json_schema()
    total = schema["$defs"]["Item"]["properties"]["total"]
    assert total["type"] == "string"
    assert schema["properties"]["items"]["maxItems"] == MAX_ITEMS


# --- decimals are strings, never JSON numbers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("items.0.quantity", "items[0].quantity"),
        ("items.0.unit_price", "items[0].unit_price"),
        ("items.0.total", "items[0].total"),
        ("items.0.icms.rate", "items[0].icms.rate"),
        ("totals.products", "totals.products"),
        ("payments.0.amount", "payments[0].amount"),
    ],
)
def test_a_float_is_refused_with_the_field_named(path: str, field: str) -> None:
    (problem,) = problems(changed(path, 10.1))
    assert problem["field"] == field
    assert 'send decimals as JSON strings, like "10.10"' in problem["message"]
    assert "10.1" in problem["message"]


def test_an_integer_json_number_is_refused_too() -> None:
    (problem,) = problems(changed("items.0.quantity", 2))
    assert problem["field"] == "items[0].quantity"
    assert "send decimals as JSON strings" in problem["message"]


def test_the_core_refuses_floats_the_same_way() -> None:
    spec = task(name="nfe.emit_probe", payload=Invoice, version="0")(lambda ctx, payload: None)
    with pytest.raises(PayloadInvalid) as caught:
        spec.parse_payload(changed("items.0.unit_price", 50.0))
    assert [e["field"] for e in caught.value.errors] == ["items.0.unit_price"]  # the core's dotted paths
    assert "send decimals as JSON strings" in caught.value.errors[0]["message"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("10,10", "a dot, no sign, no thousands separator"),
        ("1.000,00", "a dot"),
        ("-5.00", "no sign"),
        ("10.101", "2 after it"),
        ("1e3", "like"),
        ("", "like"),
        (" 10.10", "like"),
        (True, "must be a JSON string"),
        (None, "must be a JSON string"),
    ],
)
def test_a_malformed_money_string_is_refused(value: Any, words: str) -> None:
    (problem,) = problems(changed("payments.0.amount", value))
    assert problem["field"] == "payments[0].amount"
    assert words in problem["message"]


def test_a_zero_quantity_is_refused() -> None:
    payload = changed("items.0.quantity", "0.0000")
    assert {"field": "items[0].quantity", "message": "must be greater than zero"} in problems(payload)


def test_a_unit_price_may_have_ten_places() -> None:
    payload = changed("items.0.unit_price", "50.0000000000")
    assert validate_invoice(payload).items[0].unit_price == Decimal("50")


# --- items ------------------------------------------------------------------------------------------------


def test_991_items_are_refused_and_990_pass() -> None:
    assert len(validate_invoice(invoice(items=MAX_ITEMS)).items) == 990
    (problem,) = problems(invoice(items=MAX_ITEMS + 1))
    assert problem["field"] == "items"
    assert "990" in problem["message"]


def test_an_invoice_without_items_is_refused() -> None:
    assert fields_of(changed("items", [])) == ["items"]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("items.0.ncm", "9403300", "items[0].ncm"),
        ("items.0.ncm", "94O33000", "items[0].ncm"),
        ("items.0.cfop", "510", "items[0].cfop"),
        ("items.0.cfop", "4102", "items[0].cfop"),
        ("items.0.icms.origin", 9, "items[0].icms.origin"),
        ("items.0.colour", "red", "items[0].colour"),
        ("model", 65, "model"),
        ("model", "55", "model"),
        ("series", 1000, "series"),
        ("issuer.address.uf", "XX", "issuer.address.uf"),
    ],
)
def test_a_malformed_field_is_named(path: str, value: Any, field: str) -> None:
    assert fields_of(changed(path, value)) == [field]


def test_an_item_total_that_is_not_quantity_times_price_names_the_item() -> None:
    payload = changed("items.3.total", "100.01", invoice(items=5))
    found = problems(payload)
    assert found[0] == {
        "field": "items[3].total",
        "message": "must equal quantity x unit_price rounded half-even to cents: "
        "2.0000 x 50.00 = 100.00, got 100.01",
    }
    assert [p["field"] for p in found] == ["items[3].total", "totals.products"]  # the sum no longer holds


@pytest.mark.parametrize(("total", "valid"), [("0.12", True), ("0.13", False)])
def test_item_totals_round_half_even(total: str, valid: bool) -> None:
    # 2.5 x 0.05 = 0.125: half-even (ABNT NBR 5891) gives 0.12 where half-up would give 0.13.
    line = item(quantity="2.5", unit_price="0.05", total=total)
    line["icms"] = {**line["icms"], "amount": "0.02"}
    line["pis"] = {**line["pis"], "amount": "0.00"}
    line["cofins"] = {**line["cofins"], "amount": "0.01"}
    payload = changed("items", [line])
    payload["totals"] = {
        "products": total, "icms_base": total, "icms": "0.02", "pis": "0.00", "cofins": "0.01",
        "invoice": total,
    }  # fmt: skip
    payload["payments"] = [{"method": "01", "amount": total}]
    if valid:
        assert validate_invoice(payload).items[0].total == Decimal("0.12")
    else:
        assert fields_of(payload) == ["items[0].total"]


# --- totals and payments ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["products", "icms_base", "icms", "pis", "cofins", "invoice"])
def test_a_total_that_is_not_the_sum_of_the_items_names_it(name: str) -> None:
    payload = invoice(items=3)
    payload["totals"][name] = str(Decimal(payload["totals"][name]) + Decimal("0.01"))
    found = problems(payload)
    assert found[0]["field"] == f"totals.{name}"
    assert found[0]["message"].startswith("must equal ")


def test_totals_are_summed_in_decimal_without_float_drift() -> None:
    # 0.10 + 0.20 as floats is 0.30000000000000004; as Decimals the totals must say 0.30.
    payload = invoice(items=2)
    for index, price in enumerate(["0.10", "0.20"]):
        payload["items"][index] = item(index, quantity="1", unit_price=price, total=price)
    payload["totals"] = {
        "products": "0.30", "icms_base": "0.30", "icms": "36.00", "pis": "3.30", "cofins": "15.20",
        "invoice": "0.30",
    }  # fmt: skip
    payload["payments"] = [{"method": "01", "amount": "0.30"}]
    assert validate_invoice(payload).totals.products == Decimal("0.30")


def test_the_rules_ignore_the_callers_decimal_precision() -> None:
    line = item(quantity="3", unit_price="12345.67", total="37037.01")
    payload = changed("items", [line])
    payload["totals"] = {
        **payload["totals"],
        "products": "37037.01",
        "icms_base": "37037.01",
        "invoice": "37037.01",
    }
    payload["payments"] = [{"method": "15", "amount": "37037.01"}]
    with decimal.localcontext(prec=4):  # 3 x 12345.67 would be 3.704E+4 in this context
        assert validate_invoice(payload).totals.invoice == Decimal("37037.01")


def test_payments_minus_change_must_equal_the_invoice_total() -> None:
    assert fields_of(changed("payments", [{"method": "01", "amount": "99.99"}])) == ["payments"]
    paid_in_cash = changed("payments", [{"method": "01", "amount": "120.00"}])
    assert fields_of(paid_in_cash) == ["payments"]
    assert validate_invoice(changed("change", "20.00", paid_in_cash)).change == Decimal("20.00")


def test_no_payment_means_a_zero_amount() -> None:
    assert validate_invoice(changed("payments", [{"method": "90", "amount": "0.00"}]))
    assert fields_of(changed("payments", [{"method": "90", "amount": "100.00"}])) == ["payments[0].amount"]


# --- parties ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        (
            "issuer.cnpj",
            "59.594.315/0001-58",
            "issuer.cnpj",
            "CNPJ check digit 2 (position 14) should be 7, found 8",
        ),
        (
            "recipient.cpf",
            "123.456.789-00",
            "recipient.cpf",
            "CPF check digit 2 (position 11) should be 9, found 0",
        ),
        ("recipient.cpf", "111.111.111-11", "recipient.cpf", "CPF is not an issued CPF (one repeated digit)"),
        ("recipient.cpf", None, "recipient", "send exactly one of cnpj and cpf"),
    ],
)
def test_a_bad_document_names_the_party(path: str, value: Any, field: str, message: str) -> None:
    assert problems(changed(path, value)) == [{"field": field, "message": message}]


def test_a_recipient_with_both_documents_is_refused() -> None:
    assert fields_of(changed("recipient.cnpj", "11.222.333/0001-81")) == ["recipient"]


def test_the_icms_cst_must_fit_the_issuer_regime() -> None:
    simples = changed("issuer.crt", 1)
    assert problems(simples) == [
        {
            "field": "items[0].icms.cst",
            "message": "must be a 3-digit CSOSN for an issuer with CRT 1, got '00'",
        }
    ]
    assert validate_invoice(changed("items.0.icms.cst", "102", simples)).items[0].icms.cst == "102"


# --- many problems at once, and what is not JSON -----------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    payload = changed("items.0.quantity", 2.5)
    payload = changed("issuer.cnpj", "11.222.333/0001-82", payload)
    payload = changed("recipient.address.cep", "0100100", payload)
    assert fields_of(payload) == ["issuer.cnpj", "recipient.address.cep", "items[0].quantity"]


@pytest.mark.parametrize("payload", [{"series": Decimal("1")}, {"series": float("nan")}, [1, 2]])
def test_what_is_not_a_json_object_of_the_right_shape_is_refused(payload: Any) -> None:
    found = problems(payload)
    assert found[0]["field"] == "(payload)"


def test_validation_runs_on_json_text_so_a_python_decimal_is_not_smuggled_in() -> None:
    payload = changed("items.0.total", Decimal("100.00"))
    assert problems(payload) == [
        {"field": "(payload)", "message": "not JSON data: Object of type Decimal is not JSON serializable"}
    ]
    assert json.loads(json.dumps(invoice()))  # the reference payload itself is plain JSON
