"""A split file: block C in parts written by parallel jobs, concatenated in order by the file's job.

Block C (the documents and their lines) is nearly all of a large company's file. With
``parts = K`` the ``sped.efd_icms_ipi`` job cuts the period's block C documents, in file order
(entry date, then id), into K ranges of about the same number of documents
(:func:`document_ranges`) and queues one ``sped.efd_part`` child job per range. Each part job
writes its documents' C100/C170/C190 (:func:`write_part`) to an object of its own; their results
carry the lines and records they wrote and the ICMS of their C190. The file's job then writes
block 0 as usual, and for block C streams the parts in order into the file (:func:`block_c_from`),
adding their counts to the block and to block 9 and their ICMS to E110: the same bytes as a file
written in one piece.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from .efd_apuracao import IcmsApuracao
from .efd_queries import C_MODELS, MOVEMENT
from .efd_records import ByteStream, EfdSink
from .efd_writer import (
    BlockCWriter,
    Progress,
    count_rows,
    find_company,
    plan_for_every_row,
    write_c_documents,
)
from .layouts import LayoutRegistry

#: A document's place in file order: (entry/exit date, document id).
Position = tuple[date, int]
_RANGE = """
   AND (%(after_date)s::date IS NULL
        OR (d.entry_exit_date, d.document_id) > (%(after_date)s, %(after_id)s))
   AND (%(through_date)s::date IS NULL
        OR (d.entry_exit_date, d.document_id) <= (%(through_date)s, %(through_id)s))"""
_CUTS = f"""
SELECT DISTINCT ON (part) part, entry_exit_date, document_id
  FROM (SELECT d.entry_exit_date, d.document_id,
               ntile(%(parts)s) OVER (ORDER BY d.entry_exit_date, d.document_id) AS part
          {MOVEMENT} AND d.model IN {C_MODELS}) numbered
 ORDER BY part, entry_exit_date DESC, document_id DESC"""


@dataclass(frozen=True)
class DocumentRange:
    """The block C documents after ``after`` up to ``through`` (``None``: from the first, to the last)."""

    after: Position | None
    through: Position | None

    def params(self) -> dict[str, Any]:
        """The parameters of the range's SQL condition."""
        after, through = self.after or (None, None), self.through or (None, None)
        return {
            "after_date": after[0],
            "after_id": after[1],
            "through_date": through[0],
            "through_id": through[1],
        }


@dataclass(frozen=True)
class PartFile:
    """What a part job wrote (its job result, see :meth:`as_result`).

    Attributes:
        key: Its object.
        lines: Its lines.
        bytes: Its size.
        sha256: Hex SHA-256 of its bytes.
        record_counts: Lines per record type, in first-written order.
        icms_debits: ICMS of its exit C190.
        icms_credits: ICMS of its entry C190.
    """

    key: str
    lines: int
    bytes: int
    sha256: str
    record_counts: tuple[tuple[str, int], ...]
    icms_debits: Decimal
    icms_credits: Decimal

    def as_result(self) -> dict[str, Any]:
        """A JSON job result; counts as pairs, since a JSON object stored as jsonb loses its order."""
        return {
            "key": self.key, "lines": self.lines, "bytes": self.bytes, "sha256": self.sha256,
            "record_counts": [list(pair) for pair in self.record_counts],
            "icms_debits": str(self.icms_debits), "icms_credits": str(self.icms_credits),
        }  # fmt: skip

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> PartFile:
        """Read :meth:`as_result` back."""
        return cls(
            key=result["key"], lines=int(result["lines"]), bytes=int(result["bytes"]),
            sha256=result["sha256"],
            record_counts=tuple((str(name), int(count)) for name, count in result["record_counts"]),
            icms_debits=Decimal(result["icms_debits"]), icms_credits=Decimal(result["icms_credits"]),
        )  # fmt: skip


def document_ranges(conn: Any, *, cnpj: str, start: date, end: date, parts: int) -> list[DocumentRange]:
    """Cut the period's block C documents into at most ``parts`` ranges of about equal size.

    Raises:
        UnknownCompany: No company has that CNPJ.
    """
    company = find_company(conn, cnpj)
    with conn.cursor() as cur:
        cur.execute(_CUTS, {"company": company["company_id"], "start": start, "end": end, "parts": parts})
        cuts: list[Position] = [(row[1], int(row[2])) for row in cur.fetchall()]
    if not cuts:
        return [DocumentRange(None, None)]
    ends: list[Position | None] = [*cuts[:-1], None]
    return [DocumentRange(after, through) for after, through in zip([None, *cuts[:-1]], ends, strict=True)]


def write_part(
    conn: Any, *, cnpj: str, start: date, end: date, document_range: DocumentRange, out: ByteStream, key: str,
    progress: Progress,
) -> PartFile:  # fmt: skip
    """Write the C100/C170/C190 of the range's documents to ``out`` (no C001, no C990).

    Raises:
        UnknownCompany: No company has that CNPJ.
        LayoutUnknown: No layout covers the period.
    """
    layout = LayoutRegistry.bundled().for_period(end)
    company = find_company(conn, cnpj)
    params = {"company": company["company_id"], "start": start, "end": end, **document_range.params()}
    plan_for_every_row(conn)
    total = count_rows(conn, f"{MOVEMENT} AND d.model IN {C_MODELS}{_RANGE}", params)
    sink, apuracao = EfdSink(layout, out), IcmsApuracao()
    write_c_documents(conn, sink, params, apuracao, progress, total=total, part=_RANGE)
    summary = sink.summary()
    return PartFile(
        key=key, lines=summary.lines, bytes=summary.bytes, sha256=summary.sha256,
        record_counts=tuple(summary.record_counts.items()), icms_debits=apuracao.debits,
        icms_credits=apuracao.credits,
    )  # fmt: skip


def block_c_from(parts: list[PartFile], read: Callable[[str], Iterable[bytes]]) -> BlockCWriter:
    """A block C writer that concatenates ``parts`` in order, read with ``read(key)``.

    Each part is checked against its size and SHA-256 as it is copied; a part that differs (lost,
    truncated, rewritten) stops the file with :class:`PartMismatch`.
    """

    def write(sink: EfdSink, apuracao: IcmsApuracao, progress: Progress) -> None:
        sink.open_block("C", any(part.lines for part in parts))
        for index, part in enumerate(parts, 1):
            copied = sink.absorb(read(part.key), dict(part.record_counts), lines=part.lines)
            if copied != (part.bytes, part.sha256):
                raise PartMismatch(
                    f"part {part.key} is not what its job wrote ({copied} != {part.bytes, part.sha256})"
                )
            apuracao.debits += part.icms_debits
            apuracao.credits += part.icms_credits
            progress(index / len(parts))
        sink.close_block("C")

    return write


class PartMismatch(RuntimeError):
    """A part object differs from what its job reported."""
