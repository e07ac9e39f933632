"""Block 9 counts: one ``9900`` per record type with its exact count, and ``9999`` = the file's lines.

``9900|REG_BLC|QTD_REG_BLC|`` must exist for every record type in the file, ``0000``, ``9900``
itself, ``9990`` and ``9999`` included. The declarations are compared at the end of the file,
when every count is known; memory is one counter per record type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

from .layout_specs import RecordSpec
from .model import Problem

REGISTER = "9900"
FILE_END = "9999"


class RecordCounts:
    """Counts each record type and checks the ``9900`` declarations and ``9999``."""

    #: The records :meth:`record` reads.
    records = frozenset({REGISTER, FILE_END})

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._declared: dict[str, tuple[int, int]] = {}
        self._last_register = 0

    def add(self, record: str) -> None:
        """Count one line of ``record`` (known to the layout or not)."""
        self._counts[record] += 1

    def record(self, spec: RecordSpec, line: int, values: Mapping[str, str]) -> Iterator[Problem]:
        """Remember a ``9900`` declaration; check ``9999`` against its own line number."""
        if spec.name == REGISTER:
            yield from self._register(line, values["REG_BLC"], values["QTD_REG_BLC"])
        elif spec.name == FILE_END:
            total = values["QTD_LIN"]
            if total.isdigit() and int(total) != line:
                yield Problem(line, FILE_END, "QTD_LIN", f"is {total}, the file has {line} lines")

    def _register(self, line: int, record: str, quantity: str) -> Iterator[Problem]:
        self._last_register = line
        if record in self._declared:
            first = self._declared[record][1]
            yield Problem(
                line, REGISTER, "REG_BLC", f"a second 9900 for {record} (the first is on line {first})"
            )
        elif quantity.isdigit():
            self._declared[record] = (int(quantity), line)

    def finish(self, last_line: int) -> Iterator[Problem]:
        """Compare every declaration with the real count; report record types without one."""
        for record, (declared, line) in self._declared.items():
            actual = self._counts[record]
            if declared != actual:
                message = f"says {declared} {record} line(s), the file has {actual}"
                yield Problem(line, REGISTER, "QTD_REG_BLC", message)
        anchor = self._last_register or last_line
        for record, actual in self._counts.items():
            if record not in self._declared:
                message = f"no 9900 line for {record} ({actual} line(s) in the file)"
                yield Problem(anchor, REGISTER, "REG_BLC", message)
