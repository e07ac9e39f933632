"""The streaming structural validator of EFD ICMS/IPI files: our "mini-PVA" for CI.

:func:`validate` reads the lines once, in order, and yields every :class:`Problem` as soon as it
is known. It keeps counters, the open parent chain, the sums of the open document and of the
apuração, and the sets of codes block 0 lists and the other blocks use: memory stays flat
whatever the file's size (the code sets grow with the number of distinct codes, not of lines).

What is checked: the physical rules (ISO-8859-1, CR LF, ``|`` at both ends), known records and
their field count, field formats and sizes, required fields, CNPJ/CPF check digits and NF-e/CT-e
keys (:mod:`.checks_lines`, :mod:`.checks_fields`); block order, ``x001``/``x990`` and their
counts, the hierarchy, required records (:mod:`.checks_structure`); ``9900``/``9999``
(:mod:`.checks_counts`); the 0150/0190/0200 lists (:mod:`.checks_references`); C190 against its
C170, C100 against its C190, E116 and E110 against the documents (:mod:`.checks_totals`,
:mod:`.checks_apuracao`).

Problems come in the order they are found: most on their own line as it is read; what can only
be known at the end (9900 counts, unused codes, a document's missing C190) after the last line.

    report = validate_file("efd_012025.txt")
    for problem in report.problems:
        print(problem)          # line 12, C170.QTD: 10.50 uses a dot: ...
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date

from .checks_counts import RecordCounts
from .checks_fields import parse_date
from .checks_lines import byte_problems, split_line
from .checks_references import References
from .checks_shapes import FieldChecks
from .checks_structure import Blocks, Hierarchy
from .checks_totals import Totals
from .layout_specs import RecordSpec
from .layouts import Layout, LayoutRegistry, LayoutUnknown
from .model import Problem

__all__ = ["Problem", "Report", "validate", "validate_file"]

FILE_START = "0000"


@dataclass(frozen=True)
class Report:
    """What :func:`validate_file` found.

    Attributes:
        path: The file.
        problems: The problems, in the order found (the first ``keep`` only, if it was given).
        problem_count: How many problems there are in all.
        line_count: How many lines the file has.
    """

    path: str
    problems: tuple[Problem, ...]
    problem_count: int
    line_count: int

    @property
    def ok(self) -> bool:
        """Whether the file has no problem."""
        return self.problem_count == 0


def validate(lines: Iterable[bytes], layout_registry: LayoutRegistry) -> Iterator[Problem]:
    """Every problem of a file given as its lines, each with its ending (binary file iteration).

    Record 0000, which must be the first line, chooses the layout by ``COD_VER`` (and checks it
    against ``DT_FIN``). Without a readable 0000 nothing else can be checked.

    Args:
        lines: The file's lines as bytes, ``b"|0000|...|\\r\\n"``; any iterable, read once.
        layout_registry: The layouts to choose from (``LayoutRegistry.bundled()``).
    """
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        yield Problem(0, "", None, "the file is empty")
        return
    layout = yield from _choose_layout(first, layout_registry)
    if layout is None:
        return
    check = _FileCheck(layout)
    yield from check.line(1, first)
    for number, raw in enumerate(iterator, start=2):
        yield from check.line(number, raw)
    yield from check.finish()


def validate_file(
    path: str | os.PathLike[str], layout_registry: LayoutRegistry | None = None, *, keep: int | None = None
) -> Report:
    """Validate a file read in binary, line by line.

    Args:
        path: The EFD file.
        layout_registry: Defaults to the bundled layouts.
        keep: Keep only the first ``keep`` problems in the report (all are counted).

    Raises:
        OSError: The file cannot be opened or read.
    """
    registry = layout_registry or LayoutRegistry.bundled()
    kept: list[Problem] = []
    count = 0
    lines = _CountedLines()
    with open(path, "rb") as stream:
        for problem in validate(lines.through(stream), registry):
            count += 1
            if keep is None or len(kept) < keep:
                kept.append(problem)
    return Report(str(path), tuple(kept), count, lines.count)


class _CountedLines:
    def __init__(self) -> None:
        self.count = 0

    def through(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        for line in lines:
            self.count += 1
            yield line


def _choose_layout(raw: bytes, registry: LayoutRegistry) -> Generator[Problem, None, Layout | None]:
    """Yield the 0000 problems about the layout; return the layout (``None``: cannot go on)."""
    parsed = split_line(1, raw)
    if parsed.record != FILE_START:
        message = f"the file must start with {FILE_START} (it names the layout): nothing else is checked"
        yield Problem(1, parsed.record, None, message)
        return None
    texts = parsed.fields
    cod_ver = texts[1] if len(texts) > 1 else ""
    dt_fin_text = texts[4] if len(texts) > 4 else ""
    dt_fin = parse_date(dt_fin_text)
    try:
        layout = registry.for_version(cod_ver)
    except LayoutUnknown as exc:
        fallback = _for_period(registry, dt_fin)
        if fallback is None:
            yield Problem(1, FILE_START, "COD_VER", f"{exc}: nothing else is checked")
            return None
        yield Problem(
            1, FILE_START, "COD_VER", f"{exc}; checked with {fallback.cod_ver}, the layout of DT_FIN"
        )
        return fallback
    if dt_fin is not None and not layout.covers(dt_fin):
        expected = _for_period(registry, dt_fin)
        hint = f" (use {expected.cod_ver})" if expected is not None else ""
        message = f"layout {cod_ver} is for periods {layout.period_label}, not for DT_FIN {dt_fin_text}{hint}"
        yield Problem(1, FILE_START, "COD_VER", message)
    return layout


def _for_period(registry: LayoutRegistry, dt_fin: date | None) -> Layout | None:
    if dt_fin is None:
        return None
    try:
        return registry.for_period(dt_fin)
    except LayoutUnknown:
        return None


def _period_problems(line: int, values: Mapping[str, str]) -> Iterator[Problem]:
    start, end = parse_date(values["DT_INI"]), parse_date(values["DT_FIN"])
    if start is None or end is None:
        return
    if end < start or (start.year, start.month) != (end.year, end.month):
        message = f"{values['DT_FIN']} must be in the month of DT_INI {values['DT_INI']}, not before it"
        yield Problem(line, FILE_START, "DT_FIN", message)


class _FileCheck:
    """Every check of one file, fed line by line."""

    def __init__(self, layout: Layout) -> None:
        self._layout = layout
        self._fields = FieldChecks(layout)
        self._blocks = Blocks(layout)
        self._totals = Totals(layout)
        self._hierarchy = Hierarchy(layout, self._totals.close, self._blocks.missing)
        self._counts = RecordCounts()
        self._references = References(layout)
        self._last_line = 0
        self._last_record = ""

    def line(self, number: int, raw: bytes) -> Iterator[Problem]:
        """Check one line."""
        self._last_line = number
        parsed = split_line(number, raw)
        yield from parsed.problems
        self._blocks.count_line()
        if not parsed.record:
            return
        self._last_record = parsed.record
        self._counts.add(parsed.record)
        spec = self._layout.records.get(parsed.record)
        if spec is None:
            message = f"unknown record {parsed.record!r}: not in layout {self._layout.cod_ver}"
            yield Problem(number, parsed.record, None, message)
            return
        yield from byte_problems(parsed, spec.names)
        texts = parsed.fields
        values = dict(zip(spec.names, texts, strict=False)) if len(texts) == len(spec.fields) else None
        for field, message in self._fields.problems(spec, parsed.text, texts, values):
            yield Problem(number, spec.name, field, message)
        yield from self._place(spec, number, values)

    def _place(self, spec: RecordSpec, number: int, values: Mapping[str, str] | None) -> Iterator[Problem]:
        name = spec.name
        placed = yield from self._blocks.enter(spec, number, values)
        if placed:
            parent = yield from self._hierarchy.enter(spec, number, values)
            if name in self._totals.records:
                yield from self._totals.record(parent, spec, number, values)
        if values is None:
            return
        if name == FILE_START:
            yield from _period_problems(number, values)
        if name in self._references.records:
            yield from self._references.record(spec, number, values)
        if name in self._counts.records:
            yield from self._counts.record(spec, number, values)

    def finish(self) -> Iterator[Problem]:
        """What only the end of the file tells."""
        yield from self._blocks.finish(self._last_line, self._last_record)
        yield from self._hierarchy.finish()
        yield from self._counts.finish(self._last_line)
        yield from self._references.finish()
