"""Realistic, valid and reproducible ERP fiscal data for the EFD generator, loaded fast with COPY.

:func:`seed_erp` fills the tables of :mod:`.erp_schema` for one month: companies with their
participants, units, items and inventory of 31 December (:mod:`.seed_registers`), and each
company's NF-e, NFC-e and CT-e of the period with their lines (:mod:`.seed_documents`), all drawn
from :mod:`.seed_catalog`. Everything derives from ``seed``: the same seed writes the same rows.
The data is valid where the EFD checks it:

* CNPJ, CPF, state registration (IE) and GTIN check digits, real IBGE city codes of the right
  UF, NF-e/NFC-e/CT-e access keys with their check digit;
* CFOP agreeing with the direction and the destination: 5xxx/6xxx exits, 1xxx/2xxx entries,
  the 6/2 ones exactly when the participant's UF differs from the company's;
* CST agreeing with the company's regime: origin + Tabela B under the normal regime, a CSOSN
  under the Simples Nacional; interstate ICMS at 4 %, 7 % or 12 %;
* money rounded half-even to the cent (line ICMS = base x rate), document totals the sums of
  their lines.

When ``companies >= 2`` the second company keeps registers but has no movement and no inventory
(the empty-file case). Amounts are computed in integer cents (exact, as :class:`~decimal.Decimal`
quantized with ``ROUND_HALF_EVEN`` would be, and faster) and written as ``numeric`` text. Rows go
to the database by ``COPY ... FROM STDIN`` in chunks of about ``chunk_rows`` lines, so memory
stays bounded; a thread draws the next chunk while the database loads the current one.
"""

from __future__ import annotations

import io
import queue
import threading
import time
from calendar import monthrange
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from .erp_schema import ERP_TABLES, ensure_erp_schema
from .seed_documents import DOCUMENT_COLUMNS, LINE_COLUMNS, Book, Chunk, document_chunks
from .seed_registers import (
    COMPANY_COLUMNS,
    INVENTORY_COLUMNS,
    ITEM_COLUMNS,
    PARTICIPANT_COLUMNS,
    UNIT_COLUMNS,
    company_registers,
)

#: Serialises seeders, which number companies and documents from the tables' maximum ids.
SEED_LOCK_KEY = 7_461_727_734
MAX_LINES_PER_DOCUMENT = 999
_EMPTY_INDEX = 1


@dataclass(frozen=True, kw_only=True)
class SeedReport:
    """What :func:`seed_erp` wrote.

    Attributes:
        seed: The seed the rows derive from.
        first_day: First day of the period.
        last_day: Last day of the period.
        company_ids: The companies created, in order.
        empty_company_id: The company without movement in the period, if any.
        participants: ``erp_participant`` rows.
        units: ``erp_unit`` rows.
        items: ``erp_item`` rows.
        inventory_rows: ``erp_inventory`` rows (dated 31 December of the year before).
        documents: ``erp_fiscal_document`` rows.
        item_lines: ``erp_fiscal_document_item`` rows.
        total_documents_value: Sum of ``total_document`` over the documents written.
        elapsed: Seconds spent, schema check included.
    """

    seed: int
    first_day: date
    last_day: date
    company_ids: tuple[int, ...]
    empty_company_id: int | None
    participants: int
    units: int
    items: int
    inventory_rows: int
    documents: int
    item_lines: int
    total_documents_value: Decimal
    elapsed: float

    @property
    def rows(self) -> int:
        """Rows written, all tables together."""
        registers = len(self.company_ids) + self.participants + self.units + self.items
        return registers + self.inventory_rows + self.documents + self.item_lines

    @property
    def lines_per_second(self) -> float:
        """Document lines written per second."""
        return self.item_lines / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class _Plan:
    seed: int
    documents: int
    lines: range
    first_day: date
    last_day: date
    chunk_rows: int


def seed_erp(
    conn: Any,
    *,
    companies: int,
    documents: int,
    items_per_document: int | range,
    period: tuple[int, int],
    seed: int,
    chunk_rows: int = 50_000,
) -> SeedReport:
    """Write ``companies`` companies and ``documents`` documents for each (but the empty one).

    Runs in the caller's transaction (commit it to keep the rows). Creates the tables if they
    are missing. Ids continue from the tables' maxima, so seeds can be added to a database that
    has rows already, but seeding the same ``seed`` twice breaks the companies' CNPJ uniqueness.

    Args:
        conn: A psycopg2 connection to the ERP database.
        companies: How many companies (at least 1).
        documents: Documents per company with movement, dated across the period.
        items_per_document: Lines of each document (1-999), or a range to draw each count from.
        period: ``(year, month)``.
        seed: Every row derives from it.
        chunk_rows: About how many lines are sent per ``COPY``.

    Raises:
        ValueError: An argument is out of range.
    """
    started = time.perf_counter()
    plan = _plan(companies, documents, items_per_document, period, seed, chunk_rows)
    ensure_erp_schema(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SEED_LOCK_KEY,))
        cur.execute("SET LOCAL synchronous_commit TO OFF")
        first_company, first_document = _next_ids(cur)
        books, counts = _write_registers(cur, plan, companies, first_company)
        written, lines, cents = _write_movement(cur, plan, books, first_document)
        _sync_identities(cur)
        for table in ERP_TABLES:  # fresh statistics: the generator's plans depend on them
            cur.execute(f"ANALYZE {table}")
    company_ids = tuple(range(first_company, first_company + companies))
    return SeedReport(
        seed=seed, first_day=plan.first_day, last_day=plan.last_day, company_ids=company_ids,
        empty_company_id=company_ids[_EMPTY_INDEX] if companies > _EMPTY_INDEX else None,
        participants=counts[0], units=counts[1], items=counts[2], inventory_rows=counts[3],
        documents=written, item_lines=lines, total_documents_value=Decimal(cents).scaleb(-2),
        elapsed=time.perf_counter() - started,
    )  # fmt: skip


def _plan(
    companies: int, documents: int, lines: int | range, period: tuple[int, int], seed: int, chunk_rows: int
) -> _Plan:
    year, month = period
    counts = lines if isinstance(lines, range) else range(lines, lines + 1)
    if companies < 1 or documents < 0 or chunk_rows < 1:
        raise ValueError("need companies >= 1, documents >= 0 and chunk_rows >= 1")
    if not counts or counts[0] < 1 or counts[-1] > MAX_LINES_PER_DOCUMENT:
        raise ValueError(f"items per document must be within 1..{MAX_LINES_PER_DOCUMENT}, got {lines!r}")
    if not (2001 <= year <= 2099 and 1 <= month <= 12):
        raise ValueError(f"period must be (year 2001-2099, month 1-12), got {period!r}")
    first = date(year, month, 1)
    return _Plan(seed, documents, counts, first, date(year, month, monthrange(year, month)[1]), chunk_rows)


def _next_ids(cur: Any) -> tuple[int, int]:
    cur.execute(
        "SELECT (SELECT coalesce(max(company_id), 0) + 1 FROM erp_company),"
        " (SELECT coalesce(max(document_id), 0) + 1 FROM erp_fiscal_document)"
    )
    first_company, first_document = cur.fetchone()
    return int(first_company), int(first_document)


def _sync_identities(cur: Any) -> None:
    for table, column in (("erp_company", "company_id"), ("erp_fiscal_document", "document_id")):
        cur.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), max({column})) FROM {table}"
            f" HAVING max({column}) IS NOT NULL"
        )


def _copy(cur: Any, table: str, columns: Sequence[str], rows: list[str]) -> None:
    """``COPY`` rows (tab-separated text lines) into ``table``."""
    if rows:
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        cur.copy_expert(sql, io.StringIO("".join(rows)), size=1 << 20)


def _write_registers(
    cur: Any, plan: _Plan, companies: int, first_id: int
) -> tuple[list[Book], tuple[int, int, int, int]]:
    """Each company's registers, copied company by company; the books of those with movement."""
    books: list[Book] = []
    counts = [0, 0, 0, 0]
    for index in range(companies):
        registers = company_registers(
            plan.seed, first_id + index, index, documents=plan.documents,
            inventory_year=plan.first_day.year - 1, movement=index != _EMPTY_INDEX,
        )  # fmt: skip
        _copy(cur, "erp_company", COMPANY_COLUMNS, [registers.company])
        _copy(cur, "erp_participant", PARTICIPANT_COLUMNS, registers.participants)
        _copy(cur, "erp_unit", UNIT_COLUMNS, registers.units)
        _copy(cur, "erp_item", ITEM_COLUMNS, registers.items)
        _copy(cur, "erp_inventory", INVENTORY_COLUMNS, registers.inventory)
        tables = (registers.participants, registers.units, registers.items, registers.inventory)
        for position, rows in enumerate(tables):
            counts[position] += len(rows)
        if registers.book:
            books.append(registers.book)
    return books, (counts[0], counts[1], counts[2], counts[3])


# --- movement -----------------------------------------------------------------------------------


def _write_movement(cur: Any, plan: _Plan, books: list[Book], first_id: int) -> tuple[int, int, int]:
    """Every book's documents, copied chunk by chunk; (documents, lines, total value in cents)."""
    documents = lines = cents = 0
    chunks = _prefetched(
        document_chunks(
            books, seed=plan.seed, days=(plan.first_day, plan.last_day), documents=plan.documents,
            lines=plan.lines, first_id=first_id, chunk_rows=plan.chunk_rows,
        )
    )  # fmt: skip
    try:
        for headers, rows, total in chunks:
            _copy(cur, "erp_fiscal_document", DOCUMENT_COLUMNS, headers)
            _copy(cur, "erp_fiscal_document_item", LINE_COLUMNS, rows)
            documents, lines, cents = documents + len(headers), lines + len(rows), cents + total
    finally:
        chunks.close()
    return documents, lines, cents


def _prefetched(chunks: Iterator[Chunk]) -> Generator[Chunk, None, None]:
    """``chunks``, the next one drawn by a thread while the caller copies the current one.

    The database parses and indexes a chunk on its own core meanwhile, so generating and
    loading overlap. At most one chunk waits; closing the generator stops the thread.
    """
    handoff: queue.Queue[Chunk | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                if not _offer(handoff, chunk, stop):
                    return
            _offer(handoff, None, stop)
        except BaseException as exc:  # raised again in the caller's thread
            _offer(handoff, exc, stop)

    worker = threading.Thread(target=produce, name="seed-erp-documents", daemon=True)
    worker.start()
    try:
        while (item := handoff.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _offer(
    handoff: queue.Queue[Chunk | BaseException | None],
    item: Chunk | BaseException | None,
    stop: threading.Event,
) -> bool:
    while not stop.is_set():
        try:
            handoff.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
