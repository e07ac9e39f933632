"""The invoice an ERP submits for emission (NF-e, model 55), validated strictly from JSON.

Two layers, run together by :func:`validate_invoice`:

* the model :class:`Invoice`: shapes, formats, lengths and CNPJ/CPF check digits (what the JSON
  Schema and the NF-e XSD carry), validated like the core validates payloads: from JSON text,
  strictly;
* :func:`invoice_problems`: the business rules the XSD does not carry (item total = quantity x
  unit price, invoice totals = sums of the items, payments = invoice total, CST against CRT).

Every problem is reported as ``{"field": "items[3].total", "message": "..."}`` (list indexes
0-based, as in the JSON sent).

Money, quantities, prices and rates are :class:`~decimal.Decimal` and travel as JSON
**strings** (``"10.10"``): a JSON number such as ``10.1`` is refused, since JSON parsers read it
as a binary float, which cannot hold most cent values exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from tornado_core import PayloadInvalid

from .access_key import UF_CODES
from .documents import cnpj_problem, cpf_problem, normalize_document

#: Most ``det`` (items) an NF-e may carry (leiauteNFe_v4.00.xsd, ``maxOccurs="990"``).
MAX_ITEMS = 990
#: Most ``detPag`` (payments) an NF-e may carry.
MAX_PAYMENTS = 100
CENT = Decimal("0.01")
#: tPag meaning "no payment" (a return, a gift...): its amount is zero and the payments need not
#: add up to the invoice total.
NO_PAYMENT = "90"
#: CRT values of the Simples Nacional (1) and the MEI (4): their items carry a 3-digit CSOSN.
SIMPLES_CRT = frozenset({1, 4})


@dataclass(frozen=True)
class DecimalText:
    """Pydantic metadata for a non-negative decimal sent as a JSON string, like ``"10.10"``.

    Attributes:
        integers: Most digits before the point (the XSD's ``TDec_1302`` has 13).
        places: Most digits after it.
        positive: Whether zero is refused too.
    """

    integers: int
    places: int
    positive: bool = False

    @property
    def pattern(self) -> str:
        """The regular expression a value must match."""
        return rf"^[0-9]{{1,{self.integers}}}(\.[0-9]{{1,{self.places}}})?$"

    def parse(self, value: Any) -> Decimal:
        """``value`` (as decoded from JSON) as a Decimal, or a field-level error saying why not."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise PydanticCustomError(
                "decimal_as_string",
                'send decimals as JSON strings, like "10.10", not as the JSON number {number}: JSON '
                "numbers are read as binary floats, which cannot hold most decimal values exactly",
                {"number": value},
            )
        if not isinstance(value, str) or not re.fullmatch(self.pattern, value):
            raise PydanticCustomError(
                "decimal_format",
                "must be a JSON string holding a decimal with at most {integers} digits before the point "
                'and {places} after it, like "10.10" (a dot, no sign, no thousands separator)',
                {"integers": self.integers, "places": self.places},
            )
        number = Decimal(value)
        if self.positive and not number:
            raise PydanticCustomError("decimal_positive", "must be greater than zero")
        return number

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            self.parse, serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json")
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "pattern": self.pattern}


#: Money (``TDec_1302``): up to 13 digits and 2 places.
Money = Annotated[Decimal, DecimalText(integers=13, places=2)]
#: Commercial quantity (``TDec_1104v``), above zero.
Quantity = Annotated[Decimal, DecimalText(integers=11, places=4, positive=True)]
#: Unit price (``TDec_1110v``): up to 10 places.
UnitPrice = Annotated[Decimal, DecimalText(integers=11, places=10)]
#: Tax rate in percent (``TDec_0302a04``): up to 4 places.
Rate = Annotated[Decimal, DecimalText(integers=3, places=4)]
ZERO = Decimal("0.00")


def _document_check(kind: str, problem: Callable[[str], str | None]) -> Callable[[str], str]:
    def check(value: str) -> str:
        reason = problem(value)
        if reason is not None:
            raise PydanticCustomError("document_invalid", "{kind} {reason}", {"kind": kind, "reason": reason})
        return normalize_document(value)

    return check


#: A CNPJ, numeric or alphanumeric, masked or not; kept without the mask.
Cnpj = Annotated[str, AfterValidator(_document_check("CNPJ", cnpj_problem))]
#: A CPF, masked or not; kept as 11 digits.
Cpf = Annotated[str, AfterValidator(_document_check("CPF", cpf_problem))]


@dataclass(frozen=True)
class OneOf:
    """Pydantic metadata: a string among ``values`` (an ``enum`` in the JSON Schema)."""

    values: tuple[str, ...]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.literal_schema(list(self.values))


#: A federative unit's letters (``SP``).
Uf = Annotated[str, OneOf(tuple(sorted(UF_CODES)))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Strict):
    """A Brazilian address (``enderEmit`` / ``enderDest``)."""

    street: str = Field(min_length=2, max_length=60, description="xLgr.")
    number: str = Field(min_length=1, max_length=60, description="nro (may be 'S/N').")
    complement: str | None = Field(default=None, min_length=1, max_length=60, description="xCpl.")
    district: str = Field(min_length=2, max_length=60, description="xBairro.")
    city_code: str = Field(pattern=r"^[0-9]{7}$", description="cMun: the IBGE municipality code, 7 digits.")
    city: str = Field(min_length=2, max_length=60, description="xMun.")
    uf: Uf = Field(description="UF letters.")
    cep: str = Field(pattern=r"^[0-9]{8}$", description="CEP, 8 digits.")


class Issuer(_Strict):
    """The issuer (``emit``)."""

    cnpj: Cnpj = Field(description="CNPJ (numeric or alphanumeric), masked or not.")
    ie: str = Field(pattern=r"^([0-9]{2,14}|ISENTO)$", description="IE: digits only, or ISENTO.")
    name: str = Field(min_length=2, max_length=60, description="xNome (razão social).")
    trade_name: str | None = Field(default=None, min_length=1, max_length=60, description="xFant.")
    crt: Literal[1, 2, 3, 4] = Field(description="CRT: 1 Simples, 2 Simples over the limit, 3 normal, 4 MEI.")
    address: Address


class Recipient(_Strict):
    """The recipient (``dest``): a company (CNPJ) or a person (CPF)."""

    cnpj: Cnpj | None = Field(default=None, description="CNPJ; send it or cpf, not both.")
    cpf: Cpf | None = Field(default=None, description="CPF; send it or cnpj, not both.")
    name: str = Field(min_length=2, max_length=60, description="xNome.")
    ie_indicator: Literal[1, 2, 9] = Field(description="indIEDest: 1 IE holder, 2 exempt, 9 non-holder.")
    ie: str | None = Field(default=None, pattern=r"^[0-9]{2,14}$", description="Inscrição estadual.")
    email: str | None = Field(default=None, min_length=1, max_length=60)
    address: Address

    @model_validator(mode="after")
    def _one_document(self) -> Recipient:
        if (self.cnpj is None) == (self.cpf is None):
            raise PydanticCustomError("recipient_document", "send exactly one of cnpj and cpf")
        return self


class Icms(_Strict):
    """ICMS of an item, the basics (the group's variant follows from ``cst``)."""

    origin: int = Field(ge=0, le=8, description="orig: origin of the goods, 0-8.")
    cst: str = Field(
        pattern=r"^([0-9]{2}|[0-9]{3})$", description="CST (2 digits, CRT 2/3) or CSOSN (3, CRT 1/4)."
    )
    base: Money = Field(default=ZERO, description="vBC.")
    rate: Rate = Field(default=ZERO, description="pICMS, percent.")
    amount: Money = Field(default=ZERO, description="vICMS.")


class Contribution(_Strict):
    """PIS or COFINS of an item, the basics."""

    cst: str = Field(pattern=r"^[0-9]{2}$", description="CST, 2 digits.")
    base: Money = Field(default=ZERO, description="vBC.")
    rate: Rate = Field(default=ZERO, description="Rate in percent.")
    amount: Money = Field(default=ZERO, description="Value.")


class Item(_Strict):
    """One item (``det``)."""

    code: str = Field(min_length=1, max_length=60, description="cProd.")
    description: str = Field(min_length=1, max_length=120, description="xProd.")
    ncm: str = Field(pattern=r"^[0-9]{8}$", description="NCM, 8 digits.")
    cfop: str = Field(pattern=r"^[1235-7][0-9]{3}$", description="CFOP, 4 digits.")
    unit: str = Field(min_length=1, max_length=6, description="uCom.")
    quantity: Quantity = Field(description="qCom, up to 4 places.")
    unit_price: UnitPrice = Field(description="vUnCom, up to 10 places.")
    total: Money = Field(description="vProd: quantity x unit_price, rounded half-even to cents.")
    icms: Icms
    pis: Contribution
    cofins: Contribution


class Totals(_Strict):
    """The invoice totals (``ICMSTot``), each the sum over the items."""

    products: Money = Field(description="vProd: sum of items[].total.")
    icms_base: Money = Field(description="vBC: sum of items[].icms.base.")
    icms: Money = Field(description="vICMS: sum of items[].icms.amount.")
    pis: Money = Field(description="vPIS: sum of items[].pis.amount.")
    cofins: Money = Field(description="vCOFINS: sum of items[].cofins.amount.")
    invoice: Money = Field(description="vNF: equals products (no discount, freight or IPI yet).")


class Payment(_Strict):
    """One payment (``detPag``)."""

    method: str = Field(
        pattern=r"^[0-9]{2}$", description="tPag: 01 cash, 03 card, 15 boleto, 17 PIX, 90 none..."
    )
    amount: Money = Field(description="vPag.")


class Invoice(_Strict):
    """An NF-e (model 55) as the ERP submits it; the number comes from the allocator, not from here."""

    model: Literal[55] = Field(default=55, description="mod: 55 (NF-e).")
    series: int = Field(ge=0, le=999, description="serie.")
    operation: str = Field(min_length=1, max_length=60, description="natOp, e.g. 'Venda de mercadoria'.")
    issuer: Issuer
    recipient: Recipient
    items: list[Item] = Field(min_length=1, max_length=MAX_ITEMS)
    totals: Totals
    payments: list[Payment] = Field(min_length=1, max_length=MAX_PAYMENTS)
    change: Money = Field(default=ZERO, description="vTroco.")


def validate_invoice(data: Any) -> Invoice:
    """Validate a decoded JSON payload as an :class:`Invoice`, business rules included.

    The payload is validated as the core validates payloads (from JSON text, strictly); the
    business rules run only on a payload whose shape is valid.

    Raises:
        PayloadInvalid: With one ``{"field", "message"}`` entry per problem.
    """
    try:
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PayloadInvalid([{"field": "(payload)", "message": f"not JSON data: {exc}"}]) from None
    try:
        invoice = Invoice.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise PayloadInvalid([_problem(error["loc"], error["msg"]) for error in exc.errors()]) from None
    problems = invoice_problems(invoice)
    if problems:
        raise PayloadInvalid(problems)
    return invoice


def invoice_problems(invoice: Invoice) -> list[dict[str, str]]:
    """The business rules the XSD does not carry, one entry per broken rule (empty when all hold)."""
    problems: list[dict[str, str]] = []
    simples = invoice.issuer.crt in SIMPLES_CRT
    exact = _exact()
    for index, item in enumerate(invoice.items):
        product = exact.multiply(item.quantity, item.unit_price)
        expected = product.quantize(CENT, rounding=ROUND_HALF_EVEN, context=exact)
        if item.total != expected:
            message = (
                f"must equal quantity x unit_price rounded half-even to cents: "
                f"{item.quantity} x {item.unit_price} = {expected}, got {item.total}"
            )
            problems.append({"field": f"items[{index}].total", "message": message})
        if simples != (len(item.icms.cst) == 3):
            wanted = "a 3-digit CSOSN" if simples else "a 2-digit CST"
            message = f"must be {wanted} for an issuer with CRT {invoice.issuer.crt}, got {item.icms.cst!r}"
            problems.append({"field": f"items[{index}].icms.cst", "message": message})
    problems += _totals_problems(invoice)
    problems += _payment_problems(invoice)
    return problems


def _totals_problems(invoice: Invoice) -> list[dict[str, str]]:
    items = invoice.items
    totals = invoice.totals
    sums = {
        "products": ("items[].total", _sum(item.total for item in items)),
        "icms_base": ("items[].icms.base", _sum(item.icms.base for item in items)),
        "icms": ("items[].icms.amount", _sum(item.icms.amount for item in items)),
        "pis": ("items[].pis.amount", _sum(item.pis.amount for item in items)),
        "cofins": ("items[].cofins.amount", _sum(item.cofins.amount for item in items)),
    }
    problems = [
        _mismatch(f"totals.{name}", f"the sum of {source}", expected, getattr(totals, name))
        for name, (source, expected) in sums.items()
        if getattr(totals, name) != expected
    ]
    if totals.invoice != totals.products:
        problems.append(_mismatch("totals.invoice", "totals.products", totals.products, totals.invoice))
    return problems


def _payment_problems(invoice: Invoice) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    for index, payment in enumerate(invoice.payments):
        if payment.method == NO_PAYMENT and payment.amount:
            message = f"must be 0.00 with method {NO_PAYMENT} (no payment), got {payment.amount}"
            problems.append({"field": f"payments[{index}].amount", "message": message})
    if all(payment.method == NO_PAYMENT for payment in invoice.payments):
        return problems
    paid = _exact().subtract(_sum(payment.amount for payment in invoice.payments), invoice.change)
    if paid != invoice.totals.invoice:
        message = (
            f"the payments minus the change must equal totals.invoice ({invoice.totals.invoice}), got {paid}"
        )
        problems.append({"field": "payments", "message": message})
    return problems


def _exact() -> Context:
    """A decimal context wide enough that no product or sum of this model's values is rounded.

    The caller's (thread-local) context is never used, so its precision cannot change a verdict.
    """
    return Context(prec=64)


def _sum(values: Iterable[Decimal]) -> Decimal:
    exact = _exact()
    total = ZERO
    for value in values:
        total = exact.add(total, value)
    return total


def _mismatch(field: str, wanted: str, expected: Decimal, found: Decimal) -> dict[str, str]:
    return {"field": field, "message": f"must equal {wanted} ({expected}), got {found}"}


def _problem(location: tuple[int | str, ...], message: str) -> dict[str, str]:
    """A pydantic error as ``{"field": "items[3].total", "message": ...}``."""
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    return {"field": path or "(payload)", "message": message.removeprefix("Value error, ")}
