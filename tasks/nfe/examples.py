"""A valid example invoice, as the ERP submits it: for the docs, the showcase, benchmarks and tests.

Every amount is a decimal string; :func:`with_items` recomputes the totals and the payment from
the items, so an example stays valid whatever items it is given.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

#: The example issuer's CNPJ (its check digits are valid; any certificate for it is a test one).
EXAMPLE_CNPJ = "59594315000157"
#: An address in São Paulo.
EXAMPLE_ADDRESS = {
    "street": "Rua A", "number": "1", "district": "Centro", "city_code": "3550308",
    "city": "Sao Paulo", "uf": "SP", "cep": "01001000",
}  # fmt: skip


def example_item(
    index: int = 0, quantity: str = "2.0000", unit_price: str = "50.00", total: str = "100.00"
) -> dict[str, Any]:
    """One item (100.00 by default) with ICMS CST 00 at 18 %, PIS and COFINS CST 01."""
    return {
        "code": f"P{index}",
        "description": "Produto teste",
        "ncm": "94033000",
        "cfop": "5102",
        "unit": "UN",
        "quantity": quantity,
        "unit_price": unit_price,
        "total": total,
        "icms": {"origin": 0, "cst": "00", "base": total, "rate": "18.00", "amount": "18.00"},
        "pis": {"cst": "01", "base": total, "rate": "1.6500", "amount": "1.65"},
        "cofins": {"cst": "01", "base": total, "rate": "7.6000", "amount": "7.60"},
    }


def example_invoice(items: int = 1, *, cnpj: str = EXAMPLE_CNPJ) -> dict[str, Any]:
    """A valid invoice of ``items`` identical items of 100.00 issued by ``cnpj``."""
    invoice = with_items([example_item(i) for i in range(items)])
    invoice["issuer"]["cnpj"] = cnpj
    return invoice


def with_items(lines: list[dict[str, Any]], invoice: dict[str, Any] | None = None) -> dict[str, Any]:
    """``invoice`` (the example by default) with these items, its totals and payment recomputed."""
    result = copy.deepcopy(invoice) if invoice else _base()
    result["items"] = lines

    def total(*path: str) -> str:
        amounts = []
        for line in lines:
            value: Any = line
            for key in path:
                value = value[key]
            amounts.append(Decimal(value))
        return str(sum(amounts, Decimal("0.00")))

    amount = total("total")
    result["totals"] = {
        "products": amount, "invoice": amount, "icms_base": total("icms", "base"),
        "icms": total("icms", "amount"), "pis": total("pis", "amount"), "cofins": total("cofins", "amount"),
    }  # fmt: skip
    result["payments"] = [{"method": "17", "amount": amount}]
    return result


def _base() -> dict[str, Any]:
    return {
        "series": 1,
        "operation": "Venda de mercadoria",
        "issuer": {
            "cnpj": "59.594.315/0001-57", "ie": "111111111111", "name": "EMPRESA TESTE LTDA",
            "crt": 3, "address": dict(EXAMPLE_ADDRESS),
        },
        "recipient": {
            "cpf": "123.456.789-09", "name": "Fulano de Tal", "ie_indicator": 9,
            "address": dict(EXAMPLE_ADDRESS),
        },
        "items": [],
        "totals": {},
        "payments": [],
    }  # fmt: skip
