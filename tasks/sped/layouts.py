"""The EFD ICMS/IPI layouts, one JSON file per ``COD_VER`` in ``layouts/``, and their registry.

A layout is data: a new layout year is a new ``layouts/efd_icms_ipi_NNN.json`` (records, fields,
hierarchy, reconciliation rules and the periods it is valid for), never code. The files are read
through :mod:`importlib.resources`, so they are found in a source checkout and in a wheel alike.

    registry = LayoutRegistry.bundled()
    layout = registry.for_period(date(2025, 1, 31))     # COD_VER 019
    layout.records["C100"].names[:3]                    # ('REG', 'IND_OPER', 'IND_EMIT')
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from types import MappingProxyType
from typing import Any

from tornado_core import ConfigError

from .layout_specs import (
    ApuracaoRule,
    GroupRule,
    LayoutInvalid,
    RecordSpec,
    TotalRule,
    parse_apuracao,
    parse_groups,
    parse_record,
    parse_totals,
)

PACKAGE = "tornado_tasks.sped"
FOLDER = "layouts"

__all__ = ["Layout", "LayoutInvalid", "LayoutRegistry", "LayoutUnknown", "RecordSpec"]


class LayoutUnknown(ConfigError):
    """No bundled layout for this ``COD_VER`` or this period."""


def _month(text: Any, where: str) -> tuple[int, int]:
    """``"2025-01"`` as ``(2025, 1)``."""
    try:
        year, month = (int(part) for part in str(text).split("-"))
        date(year, month, 1)
    except ValueError:
        raise LayoutInvalid(f"{where}: {text!r} is not a month written YYYY-MM") from None
    return year, month


def _month_end(year: int, month: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


@dataclass(frozen=True)
class Layout:
    """One layout version: its records in order, their hierarchy and the reconciliation rules.

    Attributes:
        cod_ver: The ``COD_VER`` of record 0000 (``"019"``).
        valid_from: First day of the first period it applies to.
        valid_to: Last day of the last period, or ``None`` while it is the current layout.
        guide: The Guia Prático the fields come from.
        blocks: The mandatory block order (``0 B C D E G H K 1 9``).
        records: Record specs by name, in layout order.
        totals: Parent totals that equal the sum of their children.
        groups: Summary records that equal the sums of their detail records, by key.
        apuracao: The E110 rule, if any.
        notes: The file's ``_notes`` (what the layout is unsure of).
    """

    cod_ver: str
    valid_from: date
    valid_to: date | None
    guide: str
    blocks: tuple[str, ...]
    records: Mapping[str, RecordSpec]
    totals: tuple[TotalRule, ...]
    groups: tuple[GroupRule, ...]
    apuracao: ApuracaoRule | None
    notes: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "layout") -> Layout:
        """The layout described by a parsed JSON file.

        Raises:
            LayoutInvalid: The file breaks the schema or refers to records or fields it lacks.
        """
        try:
            return cls._build(data)
        except LayoutInvalid as exc:
            raise LayoutInvalid(f"{source}: {exc}") from None

    @classmethod
    def _build(cls, data: Mapping[str, Any]) -> Layout:
        records = [parse_record(item, order) for order, item in enumerate(data.get("records", []))]
        start = _month(data.get("valid_from"), "valid_from")
        end = data.get("valid_to")
        reconciliations = data.get("reconciliations", {})
        layout = cls(
            cod_ver=str(data.get("cod_ver", "")),
            valid_from=date(*start, 1),
            valid_to=None if end is None else _month_end(*_month(end, "valid_to")),
            guide=str(data.get("guide", "")),
            blocks=tuple(str(block) for block in data.get("blocks", [])),
            records=MappingProxyType({spec.name: spec for spec in records}),
            totals=parse_totals(reconciliations.get("totals", [])),
            groups=parse_groups(reconciliations.get("groups", [])),
            apuracao=parse_apuracao(reconciliations.get("apuracao")),
            notes=tuple(str(note) for note in data.get("_notes", [])),
        )
        layout._check_consistency()
        return layout

    def _check_consistency(self) -> None:
        if len(self.cod_ver) != 3 or not self.cod_ver.isdigit():
            raise LayoutInvalid(f"cod_ver must be 3 digits, found {self.cod_ver!r}")
        for spec in self.records.values():
            self._check_record(spec)
        for rule in self.totals:
            self._check_fields(rule.parent, [name for names in rule.fields.values() for name in names])
            self._check_fields(rule.child, list(rule.fields))
        for group in self.groups:
            self._check_fields(group.detail, [*group.key, *group.fields])
            self._check_fields(group.summary, [*group.key, *group.fields])
        if self.apuracao is not None:
            self._check_fields(self.apuracao.record, [self.apuracao.debits, self.apuracao.credits])
            for source in self.apuracao.sources:
                self._check_fields(source.record, [source.value, source.cfop])
                self._check_fields(source.document, list(source.date_fields))

    def _check_record(self, spec: RecordSpec) -> None:
        if spec.block not in self.blocks:
            raise LayoutInvalid(f"{spec.name}: block {spec.block!r} is not in {self.blocks}")
        if spec.parent is not None:
            parent = self.records.get(spec.parent)
            if parent is None or parent.order >= spec.order:
                raise LayoutInvalid(f"{spec.name}: parent {spec.parent} must be a record listed before it")
        for field in spec.fields:
            target = None if field.ref is None else self.records.get(field.ref)
            if field.ref is not None and (target is None or target.lists is None):
                raise LayoutInvalid(f"{spec.name}.{field.name}: ref {field.ref} is not a list record")
        if spec.lists is not None:
            self._check_fields(spec.name, [spec.lists])

    def _check_fields(self, record: str, names: list[str]) -> None:
        spec = self.records.get(record)
        if spec is None:
            raise LayoutInvalid(f"a rule names record {record}, which the layout lacks")
        missing = sorted(set(names) - set(spec.names))
        if missing:
            raise LayoutInvalid(f"a rule names {record} field(s) {missing}, which the record lacks")

    @property
    def period_label(self) -> str:
        """``"2024-01 to 2024-12"`` or ``"2025-01 on"``."""
        start = f"{self.valid_from:%Y-%m}"
        return f"{start} on" if self.valid_to is None else f"{start} to {self.valid_to:%Y-%m}"

    def covers(self, day: date) -> bool:
        """Whether a file whose DT_FIN is ``day`` uses this layout."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def children(self, name: str) -> tuple[RecordSpec, ...]:
        """The records whose parent is ``name``, in layout order."""
        return tuple(spec for spec in self.records.values() if spec.parent == name)

    def closing_record(self, block: str) -> str:
        """The record that closes ``block`` (``C990``)."""
        return f"{block}990"

    def opening_record(self, block: str) -> str:
        """The record that opens ``block`` (``C001``)."""
        return f"{block}001"


class LayoutRegistry:
    """The layouts known to the validator (and, later, the generator), by ``COD_VER``.

    Args:
        layouts: Any number of layouts with distinct ``COD_VER``.

    Raises:
        LayoutInvalid: Two layouts share a ``COD_VER``.
    """

    def __init__(self, layouts: Iterable[Layout]) -> None:
        by_version: dict[str, Layout] = {}
        for layout in layouts:
            if layout.cod_ver in by_version:
                raise LayoutInvalid(f"two layouts for COD_VER {layout.cod_ver}")
            by_version[layout.cod_ver] = layout
        self._layouts: Mapping[str, Layout] = MappingProxyType(dict(sorted(by_version.items())))

    @classmethod
    def bundled(cls) -> LayoutRegistry:
        """The layouts shipped in ``tornado_tasks/sped/layouts/*.json`` (read on each call)."""
        folder = resources.files(PACKAGE).joinpath(FOLDER)
        layouts = []
        for entry in sorted(folder.iterdir(), key=lambda item: item.name):
            if entry.name.endswith(".json"):
                data = json.loads(entry.read_text(encoding="utf-8"))
                layouts.append(Layout.from_json(data, source=entry.name))
        return cls(layouts)

    @property
    def versions(self) -> tuple[str, ...]:
        """The known ``COD_VER``, oldest first."""
        return tuple(self._layouts)

    def for_version(self, cod_ver: str) -> Layout:
        """The layout of this ``COD_VER``.

        Raises:
            LayoutUnknown: No layout has it (the message lists the known ones).
        """
        layout = self._layouts.get(cod_ver)
        if layout is None:
            raise LayoutUnknown(f"unknown EFD ICMS/IPI layout COD_VER {cod_ver!r}; known: {self._known()}")
        return layout

    def for_period(self, dt_fin: date) -> Layout:
        """The layout a file whose period ends on ``dt_fin`` (0000 DT_FIN) must use.

        Raises:
            LayoutUnknown: No layout covers that date (the message lists what each covers).
        """
        for layout in self._layouts.values():
            if layout.covers(dt_fin):
                return layout
        raise LayoutUnknown(
            f"no EFD ICMS/IPI layout for the period ending {dt_fin:%d/%m/%Y}; known: {self._known()}"
        )

    def _known(self) -> str:
        return ", ".join(f"{v} ({layout.period_label})" for v, layout in self._layouts.items()) or "none"
