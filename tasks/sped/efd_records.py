"""Formatting and counting EFD ICMS/IPI lines: the byte-level half of :mod:`.efd_writer`.

:class:`EfdSink` turns a record name and its values (by field name) into one line in the layout's
field order (from :class:`~.layouts.Layout`), formatted as the Guia Prático says (decimal comma
with the layout's decimals, ``ddmmaaaa`` dates, empty optional fields), encodes it ISO-8859-1
with CR LF, writes it to the output, feeds a SHA-256 and counts it per record and per block.
Nothing but the counters is kept: memory is flat whatever the file's size.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from .layout_specs import FieldSpec
from .layouts import Layout

#: A field value before formatting: ``None`` is an absent (empty) field.
Value = str | int | Decimal | date | None


@dataclass(frozen=True)
class EfdSummary:
    """What :func:`~.efd_writer.write_efd` wrote.

    Attributes:
        lines: Lines of the file (the 9999 total).
        record_counts: Lines per record type, in first-written order.
        sha256: Hex SHA-256 of the file's bytes.
        bytes: Size of the file.
        cod_ver: The layout's version (0000 COD_VER).
    """

    lines: int
    record_counts: Mapping[str, int]
    sha256: str
    bytes: int
    cod_ver: str


class ByteStream(Protocol):
    """Where a file's bytes go: an open binary file or an object-store upload."""

    def write(self, data: bytes, /) -> int:
        """Append ``data``."""


def latin1_text(text: str) -> str:
    """``text`` made safe for a field: accents kept in Latin-1, others stripped or ``?``.

    Pipes and control characters become spaces; leading and trailing spaces are removed.
    """
    if (
        "|" not in text and text.isprintable() and (text.isascii() or max(text) <= "\xff")
        and "  " not in text and text.strip() == text
    ):  # fmt: skip
        return text  # already safe: the loop below would give it back unchanged
    out: list[str] = []
    for char in text:
        if char == "|" or ord(char) < 32:
            out.append(" ")
        elif ord(char) < 256:
            out.append(char)
        else:
            base = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode("latin-1")
            out.append(base or "?")
    return " ".join("".join(out).split())


def format_value(value: Value, spec: FieldSpec) -> str:
    """One field as the layout wants it.

    Args:
        value: The value; ``Decimal`` is quantised exactly to the field's decimals.
        spec: The field's spec (type ``N``/``C``/``date``/``period``, decimals).
    """
    return formatter(spec)(value)


#: Turns one value into its field's text.
Formatter = Callable[[Value], str]


def formatter(spec: FieldSpec) -> Formatter:
    """The function writing values of the field ``spec`` (its quantum and date format computed once)."""
    number_format = f".{spec.decimals}f"  # rounds half to even, like Decimal.quantize
    date_format = "%m%Y" if spec.type == "period" else "%d%m%Y"

    def write(value: Value) -> str:
        if value is None:
            return ""
        if isinstance(value, Decimal):
            return format(value, number_format).replace(".", ",")
        if isinstance(value, date):
            return value.strftime(date_format)
        if isinstance(value, int):
            return str(value)
        return latin1_text(value)

    return write


class EfdSink:
    """Writes records to a binary stream, counting lines per record and per block.

    Args:
        layout: The layout giving each record's field order and formats.
        out: The binary stream the file goes to.
    """

    def __init__(self, layout: Layout, out: ByteStream) -> None:
        self._layout = layout
        self._out = out
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.counts: dict[str, int] = {}
        self.block_lines = 0
        self.lines = 0
        self._plans: dict[str, tuple[frozenset[str], tuple[tuple[str, Formatter], ...]]] = {}

    def write(self, record: str, values: Mapping[str, Value] | None = None) -> None:
        """Write one record; fields missing from ``values`` are empty, ``REG`` is ``record``.

        Raises:
            KeyError: ``record`` is not in the layout, or ``values`` names a field it lacks.
        """
        names, fields = self._plans.get(record) or self._plan(record)
        given = values or {}
        if not names.issuperset(given):
            raise KeyError(f"{record} has no field {sorted(set(given) - names)}")
        text = "|".join([record] + [write(given.get(name)) for name, write in fields])
        data = f"|{text}|\r\n".encode("latin-1", "replace")
        self._out.write(data)
        self._hash.update(data)
        self.bytes += len(data)
        self.counts[record] = self.counts.get(record, 0) + 1
        self.block_lines += 1
        self.lines += 1

    def _plan(self, record: str) -> tuple[frozenset[str], tuple[tuple[str, Formatter], ...]]:
        spec = self._layout.records[record]
        plan = frozenset(spec.names), tuple((f.name, formatter(f)) for f in spec.fields[1:])
        self._plans[record] = plan
        return plan

    def absorb(self, chunks: Iterable[bytes], counts: Mapping[str, int], *, lines: int) -> tuple[int, str]:
        """Copy records written elsewhere with the same layout (a part of a split file).

        Args:
            chunks: Their bytes, whole lines.
            counts: Lines per record type among them, in first-written order.
            lines: How many lines they are.

        Returns:
            The size and hex SHA-256 of the bytes copied (to check them against the part's).
        """
        size, digest = 0, hashlib.sha256()
        for chunk in chunks:
            self._out.write(chunk)
            self._hash.update(chunk)
            digest.update(chunk)
            size += len(chunk)
        self.bytes += size
        for record, count in counts.items():
            self.counts[record] = self.counts.get(record, 0) + count
        self.block_lines += lines
        self.lines += lines
        return size, digest.hexdigest()

    def open_block(self, block: str, has_data: bool) -> None:
        """Start a block: reset its line count and write ``x001``."""
        self.block_lines = 0
        field = "IND_DAD" if block == "B" else "IND_MOV"
        self.write(f"{block}001", {field: 0 if has_data else 1})

    def empty_block(self, block: str) -> None:
        """Write a block without data: ``x001`` with indicator 1, then ``x990``."""
        self.open_block(block, False)
        self.close_block(block)

    def close_block(self, block: str, extra: int = 0) -> None:
        """Write ``x990`` with the block's lines (itself and ``extra`` more included)."""
        self.write(f"{block}990", {f"QTD_LIN_{block}": self.block_lines + 1 + extra})

    def summary(self) -> EfdSummary:
        """The totals of what was written."""
        return EfdSummary(
            lines=self.lines,
            record_counts=dict(self.counts),
            sha256=self._hash.hexdigest(),
            bytes=self.bytes,
            cod_ver=self._layout.cod_ver,
        )


def write_block_9(sink: EfdSink) -> None:
    """Write block 9: ``9001``, one ``9900`` per record type, ``9990`` and ``9999``."""
    sink.open_block("9", True)
    types = [*sink.counts, "9900", "9990", "9999"]
    types = list(dict.fromkeys(types))
    counts = dict(sink.counts)
    counts["9900"] = len(types)
    counts["9990"] = 1
    counts["9999"] = 1
    for record in types:
        sink.write("9900", {"REG_BLC": record, "QTD_REG_BLC": counts[record]})
    sink.write("9990", {"QTD_LIN_9": sink.block_lines + 2})
    sink.write("9999", {"QTD_LIN": sink.lines + 1})
