"""One company's fiscal documents as ``COPY`` rows: NF-e and NFC-e exits, NF-e and CT-e entries.

Used by :mod:`.seed`, which loads the chunks of :func:`document_chunks`; a company's registers
(:class:`Book`) come from :mod:`.seed_registers`. Each call of :func:`document_rows` draws one
document from the caller's random generator: its kind (55 % NF-e exits, 10 % NFC-e for a
retailer, 30 % NF-e entries, 5 % CT-e entries), participant, lines and taxes, and returns the
header row, the line rows and the document's total. Own series are numbered in date order; 2 %
of exits are cancelled (COD_SIT 02, amounts kept as the ERP keeps them).

Taxes per line, in integer cents and basis points, rounded half-even:

* ICMS: base = value - discount + freight (60 % of it for a reduced base, CST x20), rate = the
  item's internal rate, or the interstate one (4/7/12 %); entries without credit (consumables,
  goods already under tax substitution) and every line of a Simples Nacional company book none.
  A finished product under tax substitution leaves with CST x10 and ICMS ST on a 40 % margin.
* IPI (industrial companies only): CST 50 on finished products leaving, 00 (credit) on raw
  materials coming in, 53/49 otherwise.
* PIS/COFINS (normal regime): 1.65 % and 7.6 % of the net value, CST 01 on exits and 50 on
  entries with credit, 70 without; Simples Nacional: 49 on exits, 98 on entries, no amounts.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType

from ..nfe.access_key import UF_CODES, build_access_key, random_code_for
from ..nfe.documents import mod11_digit
from .seed_catalog import interstate_rate

#: A chunk to copy: document rows, their line rows, the documents' total in cents.
Chunk = tuple[list[str], list[str], int]
EXIT_NFE, EXIT_NFCE, ENTRY_NFE, ENTRY_CTE = range(4)
_MODELS = ("55", "65", "55", "57")
_NONE, _FULL, _REDUCED, _SUBSTITUTE = range(4)  # how a line's ICMS is booked
_TABLE_B = MappingProxyType({"T": ("00", _FULL), "R": ("20", _REDUCED), "I": ("40", _NONE)})
#: CFOP of each purpose: (within the UF, interstate).
_CFOPS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "sale_own": ("5101", "6101"), "sale": ("5102", "6102"), "sale_own_st": ("5401", "6401"),
    "sale_st": ("5405", "6404"), "raw": ("1101", "2101"), "resale": ("1102", "2102"),
    "resale_st": ("1403", "2403"), "consumption": ("1556", "2556"),
    "freight_own": ("1352", "2352"), "freight": ("1353", "2353"),
})  # fmt: skip
_PIS, _COFINS = 165, 760  # non-cumulative rates, basis points
_CREDITED = frozenset({"01", "50"})
_DISCOUNTS = (100, 200, 500)
NULL = "\\N"
DOCUMENT_COLUMNS = (
    "document_id", "company_id", "model", "direction", "issuer", "participant_code", "status", "series",
    "number", "access_key", "issue_date", "entry_exit_date", "payment_type", "freight_type", "cte_type",
    "origin_city_code", "destination_city_code", "total_document", "total_goods", "discount", "freight",
    "icms_base", "icms", "icms_st_base", "icms_st", "ipi", "pis", "cofins",
)  # fmt: skip
LINE_COLUMNS = (
    "document_id", "line_number", "item_code", "quantity", "unit_code", "unit_price", "value", "discount",
    "freight", "physical_movement", "cst_icms", "cfop", "icms_base", "icms_rate", "icms", "icms_st_base",
    "icms_st_rate", "icms_st", "ipi_cst", "ipi_base", "ipi_rate", "ipi", "pis_cst", "pis_base", "pis_rate",
    "pis", "cofins_cst", "cofins_base", "cofins_rate", "cofins",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Company:
    """What the documents need of a company."""

    company_id: int
    cnpj: str
    uf: str
    city_code: str
    industrial: bool
    simples: bool
    retail: bool


@dataclass(frozen=True, slots=True)
class Party:
    """A participant: ``cnpj`` is ``None`` for an individual (CPF, always in the company's UF)."""

    code: str
    uf: str
    city_code: str
    cnpj: str | None


@dataclass(frozen=True, slots=True)
class Item:
    """An item: ``icms`` is its catalogue class, ``rate`` its internal ICMS rate (bp), ``price``
    its unit price in 1/10,000 of a real."""

    code: str
    unit: str
    item_type: int
    origin: int
    icms: str
    rate: int
    ipi: int
    price: int
    fractional: bool


@dataclass(slots=True)
class Book:
    """One company's registers, and the last numbers of its series, while documents are drawn.

    Attributes:
        purchases: The item pools an entry draws its lines from (one pool per entry).
        numbers: Last number per (issuer participant, or ``""`` for the company, model, series).
    """

    company: Company
    seed: int
    parties: list[Party]
    suppliers: list[Party]
    sellable: list[Item]
    purchases: list[list[Item]]
    freight: Item
    numbers: dict[tuple[str, str, str], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Doc:
    doc_id: int
    day: date
    kind: int
    party: Party | None
    origin_uf: str
    destination_uf: str
    freight_type: int | None

    @property
    def interstate(self) -> bool:
        return self.origin_uf != self.destination_uf

    @property
    def has_freight(self) -> bool:
        return self.freight_type == 0


def half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half to even (both non-negative)."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2):
        quotient += 1
    return quotient


def money(cents: int) -> str:
    """Cents (non-negative) as ``numeric`` text.

    Below 10**13 cents the float ``cents / 100`` is within 0.001 of the exact value, so ``.2f``
    prints it exactly, and twice as fast as integer arithmetic.
    """
    return f"{cents / 100:.2f}" if cents < 10**13 else f"{cents // 100}.{cents % 100:02d}"


def document_chunks(
    books: list[Book],
    *,
    seed: int,
    days: tuple[date, date],
    documents: int,
    lines: range,
    first_id: int,
    chunk_rows: int,
) -> Iterator[Chunk]:
    """Every book's ``documents`` documents, spread over ``days`` in date order, in chunks.

    Each book draws from a generator of its own, so the rows do not depend on ``chunk_rows``.

    Args:
        books: The companies with movement, in order.
        seed: What the generators derive from.
        days: First and last day of the period.
        documents: Documents per book.
        lines: The line counts to draw each document's from.
        first_id: The first document's id (the others follow).
        chunk_rows: A chunk is yielded once it has at least this many lines.
    """
    headers: list[str] = []
    rows: list[str] = []
    doc_id, cents = first_id, 0
    first, span = days[0], (days[1] - days[0]).days + 1
    for position, book in enumerate(books):
        rng = random.Random(f"{seed}:documents:{position}")
        for number in range(documents):
            day = first + timedelta(days=number * span // documents)
            header, document_lines, total = document_rows(book, rng, doc_id, day, rng.choice(lines))
            headers.append(header)
            rows.extend(document_lines)
            doc_id, cents = doc_id + 1, cents + total
            if len(rows) >= chunk_rows:
                yield headers, rows, cents
                headers, rows, cents = [], [], 0
    if headers:
        yield headers, rows, cents


def document_rows(
    book: Book, rng: random.Random, doc_id: int, day: date, lines: int
) -> tuple[str, list[str], int]:
    """One document dated ``day``: its header row, its line rows and its total in cents.

    Args:
        book: The company's registers.
        rng: The generator every choice is drawn from, in a fixed order.
        doc_id: The document's id.
        day: Its entry or exit date (an entry may have been issued up to 4 days before).
        lines: How many lines (a CT-e has one).
    """
    company, kind = book.company, _kind(book, rng)
    entry = kind >= ENTRY_NFE
    party = None if kind == EXIT_NFCE else rng.choice(book.suppliers if entry else book.parties)
    other_uf = party.uf if party else company.uf
    origin, destination = (other_uf, company.uf) if entry else (company.uf, other_uf)
    doc = _Doc(doc_id, day, kind, party, origin, destination, _freight_type(kind, rng))
    pool = [book.freight] if kind == ENTRY_CTE else rng.choice(book.purchases) if entry else book.sellable
    totals = [0] * 10
    count = 1 if kind == ENTRY_CTE else lines
    rows = [_line(book, doc, rng, number, rng.choice(pool), totals) for number in range(1, count + 1)]
    header, total = _header(book, doc, rng, totals)
    return header, rows, total


def _kind(book: Book, rng: random.Random) -> int:
    draw = rng.random()
    if draw < 0.55:
        return EXIT_NFE
    if draw < 0.65:
        return EXIT_NFCE if book.company.retail else EXIT_NFE
    return ENTRY_CTE if draw >= 0.95 else ENTRY_NFE


def _freight_type(kind: int, rng: random.Random) -> int | None:
    if kind == ENTRY_CTE:
        return None
    if kind == EXIT_NFCE:
        return 9
    return 0 if rng.random() < 0.25 else rng.choice((1, 9))


def _header(book: Book, doc: _Doc, rng: random.Random, totals: list[int]) -> tuple[str, int]:
    company, entry, model = book.company, doc.kind >= ENTRY_NFE, _MODELS[doc.kind]
    party_code = doc.party.code if doc.party else NULL
    issued = doc.day - timedelta(days=rng.randint(0, 4)) if entry else doc.day
    series = str(rng.randint(1, 3)) if doc.kind == ENTRY_NFE else "1"
    number = _next_number(book, rng, (doc.party.code if entry and doc.party else "", model, series))
    third_party = doc.party.cnpj if entry and doc.party else None  # suppliers always have a CNPJ
    key = _access_key(
        book.seed, third_party or company.cnpj, doc.origin_uf, issued, (model, int(series), number)
    )
    status = "02" if not entry and rng.random() < 0.02 else "00"
    payment = NULL if doc.kind == ENTRY_CTE else "0" if doc.kind == EXIT_NFCE or rng.random() < 0.3 else "1"
    cte = (
        ("0", doc.party.city_code, company.city_code) if doc.kind == ENTRY_CTE and doc.party else (NULL,) * 3
    )
    value, discount, freight, base, icms, st_base, st, ipi, pis, cofins = totals
    total = value - discount + freight + st + ipi
    fields = (
        str(doc.doc_id), str(company.company_id), model, "0" if entry else "1", "1" if entry else "0",
        party_code, status, series, str(number), key, issued.isoformat(), doc.day.isoformat(), payment,
        NULL if doc.freight_type is None else str(doc.freight_type), *cte,
        *(money(amount) for amount in (total, value, discount, freight, base, icms, st_base, st, ipi)),
        money(pis), money(cofins),
    )  # fmt: skip
    return "\t".join(fields) + "\n", total


def _next_number(book: Book, rng: random.Random, series: tuple[str, str, str]) -> int:
    last = book.numbers.get(series)
    if last is None:
        last = rng.randint(0, 50_000) if series[0] == "" else rng.randint(0, 900_000)
    book.numbers[series] = last + 1
    return last + 1


def _access_key(seed: int, cnpj: str, uf: str, issued: date, numbering: tuple[str, int, int]) -> str:
    model, series, number = numbering
    code = random_code_for(f"{seed}:{cnpj}:{model}:{series}:{number}", number=number)
    if model == "57":  # the CT-e key has the NF-e's layout, with its own model
        base = f"{UF_CODES[uf]:02d}{issued:%y%m}{cnpj}57{series:03d}{number:09d}1{code:08d}"
        return base + str(mod11_digit(base))
    return build_access_key(
        uf_code=UF_CODES[uf], year=issued.year, month=issued.month, issuer=cnpj, model=int(model),
        series=series, number=number, emission_type=1, random_code=code,
    ).text  # fmt: skip


def _line(book: Book, doc: _Doc, rng: random.Random, number: int, item: Item, totals: list[int]) -> str:
    if item.item_type == 9:
        quantity, price = 1000, rng.randint(5_000, 500_000) * 100
    else:
        quantity = rng.randint(500, 250_000) if item.fractional else rng.randint(1, 60) * 1000
        price = item.price
    value = half_even(quantity * price, 100_000)
    discounted = rng.random() < 0.2 and item.item_type != 9  # a freight service has no discount
    discount = half_even(value * rng.choice(_DISCOUNTS), 10_000) if discounted else 0
    net = value - discount
    freight = half_even(net * 300, 10_000) if doc.has_freight else 0
    gross = net + freight
    cst, cfop, mode, pis_cst = _treatment(book.company, doc, item)
    ipi_cst, ipi_rate = _ipi(book.company, doc, item)
    ipi_base = gross if ipi_cst in ("50", "00") else 0
    ipi = half_even(ipi_base * ipi_rate, 10_000)
    rate = 0 if mode == _NONE else item.rate
    if rate and doc.interstate:
        rate = interstate_rate(doc.origin_uf, doc.destination_uf, item.origin)
    base = 0 if mode == _NONE else half_even(gross * 6_000, 10_000) if mode == _REDUCED else gross
    icms = half_even(base * rate, 10_000)
    st_base = st_rate = st = 0
    if mode == _SUBSTITUTE:
        st_base, st_rate = half_even((gross + ipi) * 14_000, 10_000), item.rate
        st = max(0, half_even(st_base * st_rate, 10_000) - icms)
    pis_base = net if pis_cst in _CREDITED else 0
    pis, cofins = half_even(pis_base * _PIS, 10_000), half_even(pis_base * _COFINS, 10_000)
    for index, amount in enumerate((value, discount, freight, base, icms, st_base, st, ipi, pis, cofins)):
        totals[index] += amount
    pis_rate, cofins_rate = ("1.6500", "7.6000") if pis_base else ("0", "0")
    # Amounts of a line stay far below 10**13 cents, where float formatting is exact (see money).
    return (
        f"{doc.doc_id}\t{number}\t{item.code}\t{quantity / 1000:.3f}\t{item.unit}\t{price / 10_000:.4f}\t"
        f"{value / 100:.2f}\t{discount / 100:.2f}\t{freight / 100:.2f}\t{1 if item.item_type == 9 else 0}\t"
        f"{cst}\t{cfop}\t{base / 100:.2f}\t{rate / 100:.2f}\t{icms / 100:.2f}\t{st_base / 100:.2f}\t"
        f"{st_rate / 100:.2f}\t{st / 100:.2f}\t{ipi_cst}\t{ipi_base / 100:.2f}\t{ipi_rate / 100:.2f}\t"
        f"{ipi / 100:.2f}\t{pis_cst}\t{pis_base / 100:.2f}\t{pis_rate}\t{pis / 100:.2f}\t{pis_cst}\t"
        f"{pis_base / 100:.2f}\t{cofins_rate}\t{cofins / 100:.2f}\n"
    )


def _treatment(company: Company, doc: _Doc, item: Item) -> tuple[str, str, int, str]:
    """CST (origin + Tabela B) or CSOSN, CFOP, how ICMS is booked, and the PIS/COFINS CST."""
    purpose, cst, mode, pis = (_exit if doc.kind < ENTRY_NFE else _entry)(company, doc, item)
    cfop = _CFOPS[purpose][doc.interstate]
    return (cst if company.simples else f"{item.origin}{cst}"), cfop, mode, pis


def _exit(company: Company, doc: _Doc, item: Item) -> tuple[str, str, int, str]:
    own = item.item_type == 4
    if item.icms == "S":
        purpose, cst, mode = ("sale_own_st", "10", _SUBSTITUTE) if own else ("sale_st", "60", _NONE)
    else:
        purpose = "sale_own" if own else "sale"
        cst, mode = _TABLE_B[item.icms]
    if company.simples:
        contributor = doc.party is not None and doc.party.cnpj is not None
        return purpose, "500" if item.icms == "S" else "101" if contributor else "102", _NONE, "49"
    return purpose, cst, mode, "01"


def _entry(company: Company, doc: _Doc, item: Item) -> tuple[str, str, int, str]:
    if item.item_type == 9:
        purpose, cst, mode, pis = ("freight_own" if company.industrial else "freight"), "00", _FULL, "50"
    elif item.item_type == 7:
        purpose, cst, mode, pis = "consumption", "90", _NONE, "70"
    elif item.icms == "S":
        purpose, cst, mode, pis = "resale_st", "60", _NONE, "50"
    else:
        purpose, pis = ("raw" if item.item_type == 1 else "resale"), "50"
        cst, mode = _TABLE_B[item.icms]
    if company.simples:
        return purpose, "500" if cst == "60" else "900", _NONE, "98"
    return purpose, cst, mode, pis


def _ipi(company: Company, doc: _Doc, item: Item) -> tuple[str, int]:
    """IPI CST and rate (bp); outside IPI (not industrial, or a service) no CST at all."""
    if not company.industrial or item.item_type == 9:
        return NULL, 0
    if doc.kind < ENTRY_NFE:
        return ("50", item.ipi) if item.item_type == 4 else ("53", 0)
    return ("00", item.ipi) if item.item_type == 1 else ("49", 0)
