"""Pieces of the NF-e builder: decimal formatting for the XSD's number types, and the tax groups of an item.

Decimals are formatted from :class:`~decimal.Decimal` only, and never rounded: a value that does
not fit its format exactly raises (the :class:`~.invoice.Invoice` model already limits the places,
so it cannot happen with a validated invoice).

The tax groups supported are those the invoice's fields (base, rate, amount) fill completely:

* ICMS, regime normal (CRT 2/3): CST 00 (ICMS00), 40/41/50 (ICMS40), 60 (ICMS60), 90 (ICMS90);
* ICMS, Simples Nacional (CRT 1/4): CSOSN 102/103/300/400 (ICMSSN102), 500 (ICMSSN500),
  900 (ICMSSN900);
* PIS and COFINS: CST 01/02 (Aliq), 04-09 (NT), 49-99 (Outr, by value).

Any other code (ICMS20 needs pRedBC, ICMS10 the ST fields, CSOSN 101 the credit, PIS 03 a
quantity...) is refused with :class:`Unmappable` rather than guessed. CSTs without tax (40, 102,
PIS 04...) require base, rate and amount to be zero.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact
from typing import Any

from nfelib.nfe.bindings.v4_0 import leiaute_nfe_v4_00 as layout
from nfelib.nfe.bindings.v4_0.nfe_v4_00 import Nfe

from .invoice import SIMPLES_CRT, Contribution, Icms

_TAXES: Any = Nfe.InfNfe.Det.Imposto
#: modBC of the ICMS groups: 3, "valor da operação" (the base is the item's value).
BASE_BY_OPERATION_VALUE = "3"


def _codes(enum: Any) -> frozenset[str]:
    return frozenset(member.value for member in enum)


ICMS_NO_TAX = _codes(layout.Icms40Cst)  # 40, 41, 50
SIMPLES_NO_TAX = _codes(layout.Icmssn102Csosn)  # 102, 103, 300, 400
CONTRIBUTION_RATE = _codes(layout.PisaliqCst)  # 01, 02
CONTRIBUTION_NO_TAX = _codes(layout.PisntCst)  # 04-09
CONTRIBUTION_OTHER = _codes(layout.PisoutrCst)  # 49-99 (some)


class Unmappable(Exception):
    """An invoice value the builder cannot turn into the XML it needs.

    Attributes:
        field: The field of the tax (``"cst"``, ``"amount"``...), relative to the tax object.
        message: Why.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --- decimals -------------------------------------------------------------------------------------------


def fixed(value: Decimal, low: int, high: int) -> str:
    """``value`` with between ``low`` and ``high`` decimal places, never rounded, never in E notation.

    Raises:
        ValueError: ``value`` needs more than ``high`` places, or is not finite.
    """
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite decimal")
    exponent = value.normalize(Context(prec=64)).as_tuple().exponent
    places = min(max(-int(exponent), low), high)
    try:
        exact = value.quantize(Decimal(1).scaleb(-places), context=Context(prec=64, traps=[Inexact]))
    except Inexact:
        raise ValueError(f"{value} does not fit {high} decimal places") from None
    return f"{exact:f}"


def money(value: Decimal) -> str:
    """A ``TDec_1302`` value: two places (``"100.00"``)."""
    return fixed(value, 2, 2)


def quantity(value: Decimal) -> str:
    """A ``TDec_1104v`` quantity: four places (``"1.5000"``)."""
    return fixed(value, 4, 4)


def unit_price(value: Decimal) -> str:
    """A ``TDec_1110v`` unit price: two to ten places, as many as the value needs (``"0.0012345"``)."""
    return fixed(value, 2, 10)


def rate(value: Decimal) -> str:
    """A ``TDec_0302a04`` rate in percent: two to four places (``"18.00"``, ``"1.6500"`` stays ``"1.65"``)."""
    return fixed(value, 2, 4)


# --- tax groups -----------------------------------------------------------------------------------------


def icms_group(tax: Icms, crt: int) -> Any:
    """The ``ICMS`` element of an item for an issuer with regime ``crt``.

    Raises:
        Unmappable: The CST/CSOSN is not supported, or a no-tax code carries values.
    """
    if crt in SIMPLES_CRT:
        return _simples_icms(tax)
    code, orig = tax.cst, str(tax.origin)
    groups = _TAXES.Icms
    if code == "00":
        return groups(ICMS00=groups.Icms00(orig=orig, CST=code, **_icms_values(tax)))
    if code == "90":
        return groups(ICMS90=groups.Icms90(orig=orig, CST=code, **_optional_icms_values(tax)))
    if code in ICMS_NO_TAX:
        _require_zero(tax, f"CST {code}")
        return groups(ICMS40=groups.Icms40(orig=orig, CST=code))
    if code == "60":
        _require_zero(tax, f"CST {code}")
        return groups(ICMS60=groups.Icms60(orig=orig, CST=code))
    raise Unmappable("cst", _unsupported(f"ICMS CST {code!r}", "00, 40, 41, 50, 60, 90", crt))


def _simples_icms(tax: Icms) -> Any:
    code, orig, groups = tax.cst, str(tax.origin), _TAXES.Icms
    if code == "900":
        return groups(ICMSSN900=groups.Icmssn900(orig=orig, CSOSN=code, **_optional_icms_values(tax)))
    if code in SIMPLES_NO_TAX:
        _require_zero(tax, f"CSOSN {code}")
        return groups(ICMSSN102=groups.Icmssn102(orig=orig, CSOSN=code))
    if code == "500":
        _require_zero(tax, f"CSOSN {code}")
        return groups(ICMSSN500=groups.Icmssn500(orig=orig, CSOSN=code))
    raise Unmappable("cst", _unsupported(f"CSOSN {code!r}", "102, 103, 300, 400, 500, 900", None))


def contribution_group(tax: Contribution, kind: str) -> Any:
    """The ``PIS`` or ``COFINS`` element of an item.

    Args:
        tax: The item's PIS or COFINS.
        kind: ``"PIS"`` or ``"COFINS"``.

    Raises:
        Unmappable: The CST is not supported, or a no-tax CST carries values.
    """
    holder = getattr(_TAXES, kind.capitalize())
    prefix = kind.capitalize()
    values = {"vBC": money(tax.base), f"p{kind}": rate(tax.rate), f"v{kind}": money(tax.amount)}
    if tax.cst in CONTRIBUTION_RATE:
        return holder(**{f"{kind}Aliq": getattr(holder, f"{prefix}aliq")(CST=tax.cst, **values)})
    if tax.cst in CONTRIBUTION_OTHER:
        return holder(**{f"{kind}Outr": getattr(holder, f"{prefix}outr")(CST=tax.cst, **values)})
    if tax.cst in CONTRIBUTION_NO_TAX:
        _require_zero(tax, f"{kind} CST {tax.cst}")
        return holder(**{f"{kind}NT": getattr(holder, f"{prefix}nt")(CST=tax.cst)})
    supported = "01, 02, 04-09, 49-56, 60-67, 70-75, 98, 99"
    raise Unmappable("cst", _unsupported(f"{kind} CST {tax.cst!r}", supported, None))


def _icms_values(tax: Icms) -> dict[str, str]:
    return {
        "modBC": BASE_BY_OPERATION_VALUE,
        "vBC": money(tax.base),
        "pICMS": rate(tax.rate),
        "vICMS": money(tax.amount),
    }


def _optional_icms_values(tax: Icms) -> dict[str, str]:
    """The base/rate/amount of ICMS90 and ICMSSN900: present only when one is not zero."""
    return _icms_values(tax) if tax.base or tax.rate or tax.amount else {}


def _require_zero(tax: Icms | Contribution, code: str) -> None:
    for name in ("base", "rate", "amount"):
        value = getattr(tax, name)
        if value:
            raise Unmappable(name, f"must be zero with {code}, which carries no tax, got {value}")


def _unsupported(what: str, supported: str, crt: int | None) -> str:
    regime = f" for CRT {crt}" if crt is not None else ""
    return f"{what} is not supported by the NF-e builder{regime} (supported: {supported})"
