"""Field checks of one record against its layout: count, formats, sizes, required, values, check digits.

Formats (Guia Prático, Cap. II, Seção 3):

* ``C``: any Latin-1 text without ``|``, no leading or trailing space, at most ``size``
  characters (exactly, for the Guia's ``*`` sizes).
* ``N``: digits with a **comma** before the decimals, no thousands separator, at most
  ``decimals`` decimals; ``0`` is a valid zero. ``size`` counts the digits.
* ``date``: ``ddmmaaaa``, a real calendar date. ``period``: ``mmaaaa``.
* An empty field means "no information": it is an error only where the field is required.

CNPJ, CPF and NF-e keys are checked with :mod:`tornado_tasks.nfe.documents` and
:mod:`tornado_tasks.nfe.access_key`; other 44-digit keys (CT-e) with their modulo-11 digit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from types import MappingProxyType

from ..nfe.access_key import access_key_problems
from ..nfe.documents import cnpj_problem, cpf_problem, mod11_digit
from .layout_specs import FieldSpec, RecordSpec, Relaxation

_NUMBER = re.compile(r"([0-9]+)(?:,([0-9]+))?")
_DOTTED = re.compile(r"[0-9.]*\.[0-9.]*(?:,[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
_SHOWN_VALUES = 12
_MAX_DECIMALS = 9
#: Valid numbers with at most N decimals, N = 0.._MAX_DECIMALS (a tuple: nothing to mutate).
_NUMBER_BY_DECIMALS = tuple(
    re.compile(rf"[0-9]+(?:,[0-9]{{1,{places}}})?" if places else "[0-9]+")
    for places in range(_MAX_DECIMALS + 1)
)

#: A field's problem with one value, or ``None``.
FieldIssue = tuple[str | None, str]


def amount(text: str) -> Decimal | None:
    """A number field as a :class:`Decimal`: empty is zero, an unreadable value is ``None``."""
    if not text:
        return Decimal(0)
    if _NUMBER.fullmatch(text) is None:
        return None
    return Decimal(text.replace(",", "."))


class Amounts:
    """:func:`amount` with a bounded memo: a few values (``0,00``, ``18,00``) fill most number fields.

    The memo is emptied whenever it reaches ``limit`` entries, so memory stays flat.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._memo: dict[str, Decimal | None] = {}
        self._limit = limit

    def __call__(self, text: str) -> Decimal | None:
        """The value of ``text`` (see :func:`amount`)."""
        if text in self._memo:
            return self._memo[text]
        if len(self._memo) >= self._limit:
            self._memo.clear()
        value = self._memo[text] = amount(text)
        return value


def parse_date(text: str) -> date | None:
    """A ``ddmmaaaa`` field as a date, or ``None`` if it is empty or not a date."""
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[4:]), int(text[2:4]), int(text[:2]))
    except ValueError:
        return None


def show_amount(value: Decimal) -> str:
    """``Decimal("180.00")`` written as the file writes it: ``180,00``."""
    return format(value, "f").replace(".", ",")


def field_problems(
    spec: RecordSpec, values: Sequence[str], mapping: Mapping[str, str] | None = None
) -> Iterator[FieldIssue]:
    """Every field problem of one record, as ``(field name or None, message)``.

    A wrong field count is the only problem reported for that record: the fields cannot be
    matched to their names.

    Args:
        spec: The record's layout.
        values: The fields, decoded, ``REG`` first.
        mapping: The same by name, if the caller has it already.
    """
    if len(values) != len(spec.fields):
        yield None, f"has {len(values)} fields, the layout has {len(spec.fields)} (REG included)"
        return
    by_name = dict(zip(spec.names, values, strict=True)) if mapping is None else mapping
    relaxed = spec.relaxation(by_name) if spec.relaxations else None
    for field, value in zip(spec.fields, values, strict=True):
        if not value:
            if _required(field, by_name, relaxed):
                yield field.name, "is required"
            continue
        message = value_problem(field, value)
        if message is not None:
            yield field.name, message
    yield from group_problems(spec, by_name)


def _required(field: FieldSpec, values: Mapping[str, str], relaxed: Relaxation | None) -> bool:
    if relaxed is not None:
        return field.name in relaxed.required_only
    return field.required or (field.required_when is not None and field.required_when.holds(values))


def group_problems(spec: RecordSpec, values: Mapping[str, str]) -> Iterator[FieldIssue]:
    """The ``one_of`` and ``at_most_one`` groups of a record."""
    for group in spec.one_of:
        filled = [name for name in group if values[name]]
        if len(filled) != 1:
            yield group[0], f"exactly one of {', '.join(group)} is filled, found {len(filled)}"
    for group in spec.at_most_one:
        filled = [name for name in group if values[name]]
        if len(filled) > 1:
            yield group[0], f"at most one of {', '.join(group)} is filled, found {', '.join(filled)}"


def value_problem(field: FieldSpec, value: str, *, required: bool = False) -> str | None:
    """What is wrong with ``value`` in ``field``, or ``None`` (``required`` matters when it is empty)."""
    if not value:
        return "is required" if required else None
    if field.type == "C" and value != value.strip():
        return f"{value!r} has leading or trailing spaces"
    problem = _FORMATS[field.type](field, value)
    if problem is None and field.values is not None and value not in field.values:
        problem = f"{value!r} is not one of {_shown(field.values)}"
    if problem is None and field.check is not None:
        problem = _CHECKS[field.check](value)
    return problem


def _shown(values: frozenset[str]) -> str:
    ordered = sorted(values)
    more = f", ... ({len(ordered)} values)" if len(ordered) > _SHOWN_VALUES else ""
    return ", ".join(ordered[:_SHOWN_VALUES]) + more


def _size_problem(field: FieldSpec, length: int, unit: str) -> str | None:
    if field.size is None:
        return None
    if field.exact and length != field.size:
        return f"has {length} {unit}, must have exactly {field.size}"
    if length > field.size:
        return f"has {length} {unit}, at most {field.size}"
    return None


def _text(field: FieldSpec, value: str) -> str | None:
    return _size_problem(field, len(value), "characters")


def _number(field: FieldSpec, value: str) -> str | None:
    if _NUMBER_BY_DECIMALS[min(field.decimals, _MAX_DECIMALS)].fullmatch(value) is not None:
        # The usual case, valid: only the size is left to check.
        return None if field.size is None else _size_problem(field, len(value) - value.count(","), "digits")
    match = _NUMBER.fullmatch(value)
    if match is None:
        if _DOTTED.fullmatch(value):
            fixed = value.replace(".", ",") if value.count(".") == 1 and "," not in value else "digits only"
            return (
                f"{value} uses a dot: the decimal separator is a comma, with no thousands separator ({fixed})"
            )
        return f"{value!r} is not a number (digits, a comma before the decimals)"
    whole, decimals = match.group(1), match.group(2) or ""
    if len(decimals) > field.decimals:
        allowed = f"at most {field.decimals}" if field.decimals else "none (an integer)"
        return f"{value} has {len(decimals)} decimals, {allowed}"
    return _size_problem(field, len(whole) + len(decimals), "digits")


def _date(field: FieldSpec, value: str) -> str | None:
    if parse_date(value) is None:
        return f"{value} is not a date written ddmmaaaa"
    return None


def _period(field: FieldSpec, value: str) -> str | None:
    if len(value) != 6 or not value.isdigit() or not 1 <= int(value[:2]) <= 12 or value[2:] < "1900":
        return f"{value} is not a period written mmaaaa"
    return None


def _cnpj(value: str) -> str | None:
    problem = cnpj_problem(value)
    return None if problem is None else f"CNPJ {value}: {problem}"


def _cpf(value: str) -> str | None:
    problem = cpf_problem(value)
    return None if problem is None else f"CPF {value}: {problem}"


def _nfe_key(value: str) -> str | None:
    problems = access_key_problems(value)
    if not problems:
        return None
    return f"NF-e key {value}: " + "; ".join(problem["message"] for problem in problems)


def _key44(value: str) -> str | None:
    if len(value) != 44 or _DIGITS.fullmatch(value) is None:
        return f"{value} is not a 44-digit key"
    expected = mod11_digit(value[:43])
    if int(value[43]) != expected:
        return f"key {value}: check digit (position 44) should be {expected}, found {value[43]}"
    return None


_FORMATS: Mapping[str, Callable[[FieldSpec, str], str | None]] = MappingProxyType(
    {"C": _text, "N": _number, "date": _date, "period": _period}
)
_CHECKS: Mapping[str, Callable[[str], str | None]] = MappingProxyType(
    {"cnpj": _cnpj, "cpf": _cpf, "nfe_key": _nfe_key, "key44": _key44}
)
