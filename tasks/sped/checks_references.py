"""The block 0 lists (``0150`` participants, ``0190`` units, ``0200`` items) against their uses.

Every code a record refers to (a field with ``ref`` in the layout: ``C100.COD_PART``,
``C170.COD_ITEM``, ``H010.UNID``...) must be listed, once, in block 0; and a listed code must be
used somewhere (the Guia lists only participants, units and items with movement). Block 0
comes first, so a missing code is reported on the line that uses it; unused codes at the end.
Memory is the set of distinct codes, which the check cannot do without.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .layout_specs import RecordSpec
from .layouts import Layout
from .model import Problem


class References:
    """Listed codes (with the line that lists them) and referenced codes, per list record."""

    def __init__(self, layout: Layout) -> None:
        self._refs = {
            spec.name: tuple((field.name, field.ref) for field in spec.fields if field.ref is not None)
            for spec in layout.records.values()
        }
        self._code_fields = {spec.name: spec.lists for spec in layout.records.values() if spec.lists}
        self._listed: dict[str, dict[str, int]] = {name: {} for name in self._code_fields}
        self._used: dict[str, set[str]] = {name: set() for name in self._code_fields}
        #: The records that list or refer to codes.
        self.records = frozenset([*self._code_fields, *(name for name, refs in self._refs.items() if refs)])

    def record(self, spec: RecordSpec, line: int, values: Mapping[str, str]) -> Iterator[Problem]:
        """Register what ``spec`` lists and check what it refers to."""
        if spec.lists is not None:
            yield from self._list(spec, line, values[spec.lists])
        for field, target in self._refs[spec.name]:
            code = values[field]
            if not code:
                continue
            self._used[target].add(code)
            if code not in self._listed[target]:
                yield Problem(line, spec.name, field, f"{code!r} is not listed in a {target} record")

    def _list(self, spec: RecordSpec, line: int, code: str) -> Iterator[Problem]:
        if not code:
            return
        listed = self._listed[spec.name]
        if code in listed:
            yield Problem(line, spec.name, spec.lists, f"{code!r} is already listed on line {listed[code]}")
        else:
            listed[code] = line

    def finish(self) -> Iterator[Problem]:
        """Codes listed in block 0 that no record uses."""
        for record, listed in self._listed.items():
            used = self._used[record]
            for code, line in listed.items():
                if code not in used:
                    yield Problem(
                        line, record, self._code_fields[record], f"{code!r} is listed but never used"
                    )
