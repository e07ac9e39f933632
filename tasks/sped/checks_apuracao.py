"""E110 (apuração do ICMS, operações próprias) against the analytic records and its own arithmetic.

The rule applied (Guia Prático, E110 fields 02, 06, 11, 13 and 14, restricted to the records
this layout file knows, C190 and D190):

* **Debits** (``VL_TOT_DEBITOS``) = the ``VL_ICMS`` of the analytic records whose CFOP starts
  with 5, 6 or 7 (exits), plus CFOP 1605, minus CFOP 5605, of documents dated in the E100
  period, leaving out extemporaneous documents (``COD_SIT`` 01 and 07: they go to ``DEB_ESP``).
* **Credits** (``VL_TOT_CREDITOS``) = the ``VL_ICMS`` of the analytic records whose CFOP starts
  with 1, 2 or 3 (entries), minus CFOP 1605, plus CFOP 5605, of documents dated in the period;
  extemporaneous entries count in the first E100 period.
* A document's date is the first filled date field of the layout's list (``DT_E_S`` then
  ``DT_DOC`` for C100, ``DT_A_P`` then ``DT_DOC`` for D100). An analytic record whose document
  is missing or undated (already reported) counts in the first period, so one error is not
  reported twice.
* ``VL_SLD_APURADO`` = max(debits + adjustments + credit reversals - credits - adjustments -
  debit reversals - previous credit balance, 0); ``VL_ICMS_RECOLHER`` = max(``VL_SLD_APURADO`` -
  ``VL_TOT_DED``, 0); ``VL_SLD_CREDOR_TRANSPORTAR`` = max(``VL_TOT_DED`` - that balance, 0).

Memory: one running sum per distinct document date.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal

from .checks_fields import amount, parse_date, show_amount
from .layout_specs import ApuracaoRule, ApuracaoSource, RecordSpec
from .model import Frame, Problem

EXTEMPORANEOUS = frozenset({"01", "07"})
STATUS = "COD_SIT"
PERIOD_FIELDS = ("DT_INI", "DT_FIN")
_DEBIT_PLUS = ("VL_TOT_DEBITOS", "VL_AJ_DEBITOS", "VL_TOT_AJ_DEBITOS", "VL_ESTORNOS_CRED")
_CREDIT_PLUS = (
    "VL_TOT_CREDITOS",
    "VL_AJ_CREDITOS",
    "VL_TOT_AJ_CREDITOS",
    "VL_ESTORNOS_DEB",
    "VL_SLD_CREDOR_ANT",
)
_RESULTS = ("VL_SLD_APURADO", "VL_TOT_DED", "VL_ICMS_RECOLHER", "VL_SLD_CREDOR_TRANSPORTAR")


def icms_side(cfop: str) -> str | None:
    """``"debit"`` or ``"credit"`` for the apuração, or ``None`` for a CFOP that is neither."""
    if cfop == "5605":
        return "credit"
    if cfop == "1605":
        return "debit"
    first = cfop[:1]
    if first in ("5", "6", "7"):
        return "debit"
    return "credit" if first in ("1", "2", "3") else None


def _document_day(values: Mapping[str, str] | None, fields: Sequence[str]) -> date | None:
    if values is None:
        return None
    for name in fields:
        if values.get(name):
            return parse_date(values[name])
    return None


class Apuracao:
    """Running ICMS sums by document date, compared with each E110 of the file."""

    def __init__(self, rule: ApuracaoRule, amounts: Callable[[str], Decimal | None] = amount) -> None:
        self._rule = rule
        self._amount = amounts
        self._sources = {source.record: source for source in rule.sources}
        self._debits: dict[date | None, Decimal] = {}
        self._credits: dict[date | None, Decimal] = {}
        self._late_credits = Decimal(0)
        self._periods = 0
        self._unreadable = False

    def record(
        self, parent: Frame | None, spec: RecordSpec, line: int, values: Mapping[str, str] | None
    ) -> Iterator[Problem]:
        """Add an analytic record to the sums, or check an E110 (``parent``: its parent's frame)."""
        if spec.name == self._rule.period:
            self._periods += 1
        source = self._sources.get(spec.name)
        if source is not None:
            self._add(source, parent, values)
        elif spec.name == self._rule.record and values is not None:
            yield from self._compare(parent, line, values)
            yield from balance_problems(line, spec.name, values)

    def _add(self, source: ApuracaoSource, parent: Frame | None, values: Mapping[str, str] | None) -> None:
        value = None if values is None else self._amount(values[source.value])
        if values is None or value is None:
            self._unreadable = True
            return
        side = icms_side(values[source.cfop])
        if side is None:
            return
        document = parent.values if parent is not None and parent.spec.name == source.document else None
        late = document is not None and document.get(STATUS) in EXTEMPORANEOUS
        day = _document_day(document, source.date_fields)
        if side == "credit" and late:
            self._late_credits += value
        elif not late:
            sums = self._debits if side == "debit" else self._credits
            sums[day] = sums.get(day, Decimal(0)) + value

    def _compare(self, period: Frame | None, line: int, values: Mapping[str, str]) -> Iterator[Problem]:
        if (
            self._unreadable
            or period is None
            or period.values is None
            or period.spec.name != self._rule.period
        ):
            return
        start, end = (parse_date(period.values[name]) for name in PERIOD_FIELDS)
        if start is None or end is None:
            return
        first = self._periods == 1
        debits = self._within(self._debits, start, end, first)
        credits = self._within(self._credits, start, end, first) + (self._late_credits if first else 0)
        sources = "/".join(self._sources)
        for field, expected, side in (
            (self._rule.debits, debits, "exits"),
            (self._rule.credits, credits, "entries"),
        ):
            actual = amount(values[field])
            if actual is not None and actual != expected:
                message = (
                    f"is {values[field]}, the {sources} ICMS of the {side} dated"
                    f" {start:%d/%m/%Y} to {end:%d/%m/%Y} adds up to {show_amount(expected)}"
                )
                yield Problem(line, self._rule.record, field, message)

    @staticmethod
    def _within(sums: Mapping[date | None, Decimal], start: date, end: date, first: bool) -> Decimal:
        total = Decimal(0)
        for day, value in sums.items():
            if (day is None and first) or (day is not None and start <= day <= end):
                total += value
        return total


def balance_problems(line: int, record: str, values: Mapping[str, str]) -> Iterator[Problem]:
    """E110's saldo apurado, ICMS a recolher and saldo credor a transportar against its other fields."""
    names = (*_DEBIT_PLUS, *_CREDIT_PLUS, *_RESULTS)
    numbers = {name: amount(values.get(name, "x")) for name in names}
    known = {name: number for name, number in numbers.items() if number is not None}
    if len(known) != len(names):
        return
    debits = sum((known[name] for name in _DEBIT_PLUS), Decimal(0))
    balance = debits - sum((known[name] for name in _CREDIT_PLUS), Decimal(0))
    deductions = known["VL_TOT_DED"]
    expected = {
        "VL_SLD_APURADO": max(balance, Decimal(0)),
        "VL_ICMS_RECOLHER": max(known["VL_SLD_APURADO"] - deductions, Decimal(0)),
        "VL_SLD_CREDOR_TRANSPORTAR": max(deductions - balance, Decimal(0)),
    }
    for name, value in expected.items():
        if known[name] != value:
            yield Problem(
                line, record, name, f"is {values[name]}, the E110 arithmetic gives {show_amount(value)}"
            )
