"""The parts of a layout: field and record specs and the reconciliation rules, read from JSON.

Each class mirrors one object of a ``layouts/efd_icms_ipi_NNN.json`` file; the ``parse_*``
functions build them and refuse a malformed file with :class:`LayoutInvalid`, naming the record
and the field. Everything here is immutable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tornado_core import ConfigError

#: C text, N number (``decimals`` after a comma), date ``ddmmaaaa``, period ``mmaaaa``.
FIELD_TYPES = frozenset({"C", "N", "date", "period"})
#: Check-digit checks a field may ask for.
CHECKS = frozenset({"cnpj", "cpf", "nfe_key", "key44"})
#: How many times a record appears under one occurrence of its parent.
OCCURRENCES = frozenset({"1", "0:1", "1:N", "0:N"})


class LayoutInvalid(ConfigError):
    """A layout file breaks the layout schema (a bundled file never should: a test loads them)."""


@dataclass(frozen=True)
class Condition:
    """``field`` holds one of ``values``."""

    field: str
    values: frozenset[str]

    def holds(self, values: Mapping[str, str]) -> bool:
        """Whether the record's ``values`` meet the condition."""
        return values.get(self.field) in self.values


@dataclass(frozen=True)
class FieldSpec:
    """One field of a record.

    Attributes:
        name: As in the Guia (``VL_ICMS``).
        type: ``C``, ``N``, ``date`` or ``period``.
        size: Maximum length (characters; digits for numbers), or ``None`` for no limit.
        exact: ``size`` is the exact length (the Guia's ``*``).
        decimals: Maximum digits after the comma (type ``N``).
        required: The Guia's ``O``: an empty value is an error.
        values: The only values allowed, if the Guia lists them.
        check: ``cnpj``, ``cpf``, ``nfe_key`` or ``key44`` (a 44-digit key with its modulo-11 digit).
        ref: The record (``0150``, ``0190``, ``0200``) that must list this field's code.
        required_when: Required only when this condition holds (the Guia's O for one side).
    """

    name: str
    type: str
    size: int | None = None
    exact: bool = False
    decimals: int = 0
    required: bool = False
    values: frozenset[str] | None = None
    check: str | None = None
    ref: str | None = None
    required_when: Condition | None = None


@dataclass(frozen=True)
class Relaxation:
    """When ``when`` holds, only ``required_only`` are required (and, with ``no_children``, no child)."""

    when: Condition
    required_only: frozenset[str]
    no_children: bool


@dataclass(frozen=True)
class RecordSpec:
    """One record type: where it sits and its fields in order.

    Attributes:
        name: ``C100``.
        block: ``C``.
        parent: The record it hangs from (``None`` for ``0000`` and ``9999``).
        level: The Guia's nível hierárquico.
        occurrence: Per occurrence of the parent: ``1``, ``0:1``, ``1:N`` or ``0:N``.
        order: Position in the layout; siblings appear in this order.
        fields: In file order, ``REG`` first.
        lists: The code field of a list record (``COD_PART`` for ``0150``).
        one_of: Groups of fields of which exactly one is filled.
        at_most_one: Groups of fields of which at most one is filled.
        relaxations: The Guia's exceptions (cancelled documents...).
        required_when_file: Each parent must have one when the file's first record (``0000``)
            meets this condition (E500 when ``IND_ATIV`` is 0), whatever ``occurrence`` says.
        names: The field names in order.
    """

    name: str
    block: str
    parent: str | None
    level: int
    occurrence: str
    order: int
    description: str
    fields: tuple[FieldSpec, ...]
    lists: str | None = None
    one_of: tuple[tuple[str, ...], ...] = ()
    at_most_one: tuple[tuple[str, ...], ...] = ()
    relaxations: tuple[Relaxation, ...] = ()
    required_when_file: Condition | None = None
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(spec.name for spec in self.fields))

    @property
    def at_least_one(self) -> bool:
        """Whether each parent must have one."""
        return self.occurrence in ("1", "1:N")

    @property
    def at_most_once(self) -> bool:
        """Whether a parent may have only one."""
        return self.occurrence in ("1", "0:1")

    def relaxation(self, values: Mapping[str, str]) -> Relaxation | None:
        """The exception that applies to a record with these ``values``, if any."""
        return next((r for r in self.relaxations if r.when.holds(values)), None)


@dataclass(frozen=True)
class TotalRule:
    """Each ``fields`` key of the children sums to the sum of the parent's listed fields."""

    parent: str
    child: str
    fields: Mapping[str, tuple[str, ...]]
    skip_without_children: bool


@dataclass(frozen=True)
class GroupRule:
    """In each ``scope``, a ``summary`` field is the sum of the ``detail`` fields with the same key."""

    scope: str
    detail: str
    summary: str
    key: tuple[str, ...]
    fields: tuple[str, ...]


@dataclass(frozen=True)
class ApuracaoSource:
    """An analytic record whose ICMS feeds the apuração, and where its document's date is."""

    record: str
    document: str
    value: str
    cfop: str
    date_fields: tuple[str, ...]


@dataclass(frozen=True)
class ApuracaoRule:
    """E110's debit and credit totals against the analytic records of its E100 period."""

    period: str
    record: str
    debits: str
    credits: str
    sources: tuple[ApuracaoSource, ...]


def _require(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise LayoutInvalid(f"{where}: {key!r} must be a {kind.__name__}, found {value!r}")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise LayoutInvalid(f"{where}: expected a list of strings, found {value!r}")
    return tuple(value)


def _condition(data: Any, where: str) -> Condition:
    if not isinstance(data, dict):
        raise LayoutInvalid(f"{where}: a condition is {{'field': ..., 'in': [...]}}, found {data!r}")
    return Condition(_require(data, "field", str, where), frozenset(_strings(data.get("in"), where)))


def parse_field(data: Any, where: str) -> FieldSpec:
    """A :class:`FieldSpec` from its JSON object."""
    if not isinstance(data, dict):
        raise LayoutInvalid(f"{where}: a field is an object, found {data!r}")
    name = _require(data, "name", str, where)
    where = f"{where}.{name}"
    kind = _require(data, "type", str, where)
    if kind not in FIELD_TYPES:
        raise LayoutInvalid(f"{where}: type {kind!r} is not one of {sorted(FIELD_TYPES)}")
    check = data.get("check")
    if check is not None and check not in CHECKS:
        raise LayoutInvalid(f"{where}: check {check!r} is not one of {sorted(CHECKS)}")
    values = data.get("values")
    when = data.get("required_when")
    return FieldSpec(
        name=name,
        type=kind,
        size=data.get("size"),
        exact=bool(data.get("exact", False)),
        decimals=int(data.get("decimals", 0)),
        required=bool(data.get("required", False)),
        values=None if values is None else frozenset(_strings(values, where)),
        check=check,
        ref=data.get("ref"),
        required_when=None if when is None else _condition(when, where),
    )


def _relaxation(data: Any, where: str) -> Relaxation:
    if not isinstance(data, dict):
        raise LayoutInvalid(f"{where}: an exception is an object, found {data!r}")
    return Relaxation(
        when=_condition(data.get("when"), where),
        required_only=frozenset(_strings(data.get("required_only"), where)),
        no_children=bool(data.get("no_children", False)),
    )


def _groups(value: Any, where: str) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise LayoutInvalid(f"{where}: expected a list of field lists, found {value!r}")
    return tuple(_strings(group, where) for group in value)


def parse_record(data: Any, order: int) -> RecordSpec:
    """A :class:`RecordSpec` from its JSON object; ``order`` is its position in the file."""
    if not isinstance(data, dict):
        raise LayoutInvalid(f"record #{order}: a record is an object, found {data!r}")
    name = _require(data, "name", str, f"record #{order}")
    occurrence = _require(data, "occurrence", str, name)
    if occurrence not in OCCURRENCES:
        raise LayoutInvalid(f"{name}: occurrence {occurrence!r} is not one of {sorted(OCCURRENCES)}")
    fields = tuple(parse_field(item, name) for item in _require(data, "fields", list, name))
    if not fields or fields[0].name != "REG":
        raise LayoutInvalid(f"{name}: the first field must be REG")
    if len({spec.name for spec in fields}) != len(fields):
        raise LayoutInvalid(f"{name}: two fields have the same name")
    parent = data.get("parent")
    when_file = data.get("required_when_file")
    return RecordSpec(
        name=name,
        block=_require(data, "block", str, name),
        parent=parent if isinstance(parent, str) else None,
        level=_require(data, "level", int, name),
        occurrence=occurrence,
        order=order,
        description=str(data.get("description", "")),
        fields=fields,
        lists=data.get("lists"),
        one_of=_groups(data.get("one_of", []), name),
        at_most_one=_groups(data.get("at_most_one", []), name),
        relaxations=tuple(_relaxation(item, name) for item in data.get("exceptions", [])),
        required_when_file=None if when_file is None else _condition(when_file, name),
    )


def parse_totals(items: Sequence[Any]) -> tuple[TotalRule, ...]:
    """The ``reconciliations.totals`` rules."""
    rules = []
    for item in items:
        fields = _require(item, "fields", dict, "totals")
        rules.append(
            TotalRule(
                parent=_require(item, "parent", str, "totals"),
                child=_require(item, "child", str, "totals"),
                fields=MappingProxyType({k: _strings(v, "totals") for k, v in fields.items()}),
                skip_without_children=bool(item.get("skip_without_children", True)),
            )
        )
    return tuple(rules)


def parse_groups(items: Sequence[Any]) -> tuple[GroupRule, ...]:
    """The ``reconciliations.groups`` rules."""
    return tuple(
        GroupRule(
            scope=_require(item, "scope", str, "groups"),
            detail=_require(item, "detail", str, "groups"),
            summary=_require(item, "summary", str, "groups"),
            key=_strings(item.get("key"), "groups"),
            fields=_strings(item.get("fields"), "groups"),
        )
        for item in items
    )


def parse_apuracao(data: Any) -> ApuracaoRule | None:
    """The ``reconciliations.apuracao`` rule, if the layout has one."""
    if data is None:
        return None
    sources = tuple(
        ApuracaoSource(
            record=_require(item, "record", str, "apuracao"),
            document=_require(item, "document", str, "apuracao"),
            value=_require(item, "value", str, "apuracao"),
            cfop=_require(item, "cfop", str, "apuracao"),
            date_fields=_strings(item.get("date_fields"), "apuracao"),
        )
        for item in _require(data, "sources", list, "apuracao")
    )
    return ApuracaoRule(
        period=_require(data, "period", str, "apuracao"),
        record=_require(data, "record", str, "apuracao"),
        debits=_require(data, "debits", str, "apuracao"),
        credits=_require(data, "credits", str, "apuracao"),
        sources=sources,
    )
