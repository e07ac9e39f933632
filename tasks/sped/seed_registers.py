"""One company's registers as ``COPY`` rows: the company, participants, units, items, inventory.

Used by :mod:`.seed`. :func:`company_registers` draws everything about company number ``index``
of a seed from a generator of its own, and returns the rows with the :class:`~.seed_documents.Book`
its documents are then drawn from.

Companies cycle through three profiles: index 0, 3, 6 ... industrial (activity 0, profile A,
normal regime, IPI), 1, 4, 7 ... commerce and retail (activity 1, profile B, NFC-e), 2, 5, 8 ...
Simples Nacional retail (profile C). The first company is in SP.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date

from . import seed_catalog as catalog
from .seed_documents import NULL, Book, Company, Item, Party, half_even, money

COMPANY_COLUMNS = (
    "company_id", "cnpj", "name", "trade_name", "uf", "ie", "city_code", "im", "profile", "activity",
    "tax_regime", "zip_code", "address", "address_number", "district", "phone", "email",
    "accountant_name", "accountant_cpf", "accountant_crc", "accountant_cnpj", "accountant_zip_code",
    "accountant_address", "accountant_number", "accountant_district", "accountant_phone", "accountant_email",
    "accountant_city_code", "icms_receipt_code", "icms_due_day", "icms_st_receipt_code",
)  # fmt: skip
PARTICIPANT_COLUMNS = ("company_id", "code", "name", "cnpj", "cpf", "ie", "uf", "city_code", "address",
                       "address_number", "district")  # fmt: skip
UNIT_COLUMNS = ("company_id", "code", "description")
ITEM_COLUMNS = ("company_id", "code", "description", "barcode", "unit_code", "item_type", "ncm",
                "genre_code", "cest", "origin", "icms_rate", "ipi_rate")  # fmt: skip
INVENTORY_COLUMNS = ("company_id", "inventory_date", "item_code", "unit_code", "quantity", "unit_value",
                     "value")  # fmt: skip
#: Items by position (number % 10): item type, code prefix, products.
_INDUSTRIAL_MIX = (
    ((4, "PA", catalog.FINISHED),) * 4
    + ((1, "MP", catalog.RAW_MATERIALS),) * 3
    + ((0, "MR", catalog.RESALE),) * 2
    + ((7, "UC", catalog.CONSUMABLES),)
)
_COMMERCIAL_MIX = ((0, "MR", catalog.RESALE),) * 8 + ((7, "UC", catalog.CONSUMABLES),) * 2
_FREIGHT = Item("SV-FRETE", "SV", 9, 0, catalog.FREIGHT.icms, catalog.FREIGHT.rate, 0, 0, False)


@dataclass(frozen=True)
class Registers:
    """One company's rows, per table, and its book (``None`` without movement)."""

    company: str
    participants: list[str]
    units: list[str]
    items: list[str]
    inventory: list[str]
    book: Book | None


def company_registers(
    seed: int, company_id: int, index: int, *, documents: int, inventory_year: int, movement: bool
) -> Registers:
    """Company number ``index`` of ``seed``, with id ``company_id``.

    Args:
        seed: What its generator derives from (with ``index``).
        company_id: Its id.
        index: Its position among the companies seeded (decides its profile).
        documents: Documents it will have: sizes its registers (10-3,000 participants, 20-5,000 items).
        inventory_year: Its inventory is dated 31 December of that year.
        movement: Whether it has documents and inventory.
    """
    rng = random.Random(f"{seed}:company:{index}")
    company, company_row = _company(rng, company_id, index)
    parties, party_rows = _parties(rng, company, max(10, min(3_000, documents // 8)))
    items, item_rows = _items(rng, company, max(20, min(5_000, documents // 4)))
    units = [_row(company_id, code, text) for code, text in catalog.UNITS]
    inventory = _inventory(rng, company, items, inventory_year) if movement else []
    book = _book(seed, company, parties, items) if movement else None
    return Registers(company_row, party_rows, units, item_rows, inventory, book)


def _row(*values: object) -> str:
    return "\t".join(NULL if value is None else str(value) for value in values) + "\n"


def _company(rng: random.Random, company_id: int, index: int) -> tuple[Company, str]:
    uf = catalog.UFS["SP" if index == 0 else rng.choice(catalog.COMPANY_UFS)]
    industrial, simples = index % 3 == 0, index % 3 == 2
    cnpj = catalog.cnpj(rng)
    company = Company(company_id, cnpj, uf.code, rng.choice(uf.cities), industrial, simples, not industrial)
    name = f"{rng.choice(catalog.NAMES)} {rng.choice(catalog.TRADES)}"
    crc = f"{uf.code}-{rng.randint(100_000, 299_999)}/O-{rng.randint(1, 9)}"
    profile = "A" if industrial else "C" if simples else "B"
    row = _row(
        company_id, cnpj, f"{name} {rng.choice(catalog.SUFFIXES)}", name[:60], uf.code, catalog.ie(rng, uf),
        company.city_code, f"{rng.randint(1, 99_999_999):08d}", profile, 0 if industrial else 1,
        1 if simples else 3, *catalog.address(rng, uf), f"fiscal{company_id}@example.com.br",
        catalog.person(rng), catalog.cpf(rng), crc, catalog.cnpj(rng),  # the accountant, an office in the UF
        *catalog.address(rng, uf), f"contador{company_id}@example.com.br", rng.choice(uf.cities),
        *catalog.ICMS_OBLIGATIONS.get(uf.code, catalog.UNKNOWN_OBLIGATION),
    )  # fmt: skip
    return company, row


def _parties(rng: random.Random, company: Company, count: int) -> tuple[list[Party], list[str]]:
    """Participants: 80 % companies (60 % of them in the company's UF), 20 % local individuals."""
    parties, rows = [], []
    other_ufs = tuple(catalog.UFS)
    for number in range(1, count + 1):
        individual = rng.random() < 0.2
        uf = catalog.UFS[company.uf if individual or rng.random() < 0.6 else rng.choice(other_ufs)]
        cnpj = None if individual else catalog.cnpj(rng)
        party = Party(f"P{number:06d}", uf.code, rng.choice(uf.cities), cnpj)
        company_name = f"{rng.choice(catalog.NAMES)} {rng.choice(catalog.TRADES)} LTDA"
        _, street, street_number, district, _ = catalog.address(rng, uf)
        rows.append(_row(
            company.company_id, party.code, catalog.person(rng) if individual else company_name, cnpj,
            catalog.cpf(rng) if individual else None, None if individual else catalog.ie(rng, uf), uf.code,
            party.city_code, street, street_number, district,
        ))  # fmt: skip
        parties.append(party)
    return parties, rows


def _items(rng: random.Random, company: Company, count: int) -> tuple[list[Item], list[str]]:
    """Goods (industrial 40 % finished, 30 % raw, 20 % resale, 10 % consumables; else 80/20), and
    the freight service CT-e lines book."""
    groups = _INDUSTRIAL_MIX if company.industrial else _COMMERCIAL_MIX
    uf_rate = catalog.UFS[company.uf].rate
    items, rows = [], []
    for number in range(1, count + 1):
        item_type, prefix, products = groups[number % 10]
        product = rng.choice(products)
        origin = rng.choice((1, 2)) if rng.random() < 0.1 else 0
        price = rng.randint(product.low * 100, product.high * 100)
        item = Item(
            f"{prefix}{number:05d}", product.unit, item_type, origin, product.icms, product.rate or uf_rate,
            product.ipi, price, product.unit in catalog.FRACTIONAL_UNITS,
        )  # fmt: skip
        items.append(item)
        description = f"{product.stem} REF {rng.randint(100, 999)}-{number}"
        rows.append(_item_row(company, item, description, product, catalog.gtin(rng)))
    rows.append(_item_row(company, _FREIGHT, catalog.FREIGHT.stem, catalog.FREIGHT, None))
    return items, rows


def _item_row(
    company: Company, item: Item, description: str, product: catalog.Product, gtin: str | None
) -> str:
    return _row(
        company.company_id, item.code, description, gtin, item.unit, f"{item.item_type:02d}",
        product.ncm or None, product.ncm[:2] or None, product.cest, item.origin, money(item.rate),
        money(item.ipi),
    )  # fmt: skip


def _inventory(rng: random.Random, company: Company, items: list[Item], year: int) -> list[str]:
    """Stock of goods on 31 December, valued at 60 % of the price."""
    rows = []
    for item in items:
        if item.item_type in (0, 1, 4) and rng.random() < 0.7:
            quantity, unit_value = rng.randint(1_000, 5_000_000), item.price * 60
            rows.append(_row(
                company.company_id, date(year, 12, 31).isoformat(), item.code, item.unit,
                f"{quantity // 1000}.{quantity % 1000:03d}",
                f"{unit_value // 10**6}.{unit_value % 10**6:06d}",
                money(half_even(quantity * unit_value, 10**7)),
            ))  # fmt: skip
    return rows


def _book(seed: int, company: Company, parties: list[Party], items: list[Item]) -> Book:
    by_type: dict[int, list[Item]] = {}
    for item in items:
        by_type.setdefault(item.item_type, []).append(item)
    resale, consumables = by_type.get(0, []), by_type.get(7, [])
    if company.industrial:
        sellable, purchases = by_type[4] + resale, [by_type[1], by_type[1], resale, consumables]
    else:
        sellable, purchases = resale, [resale] * 4 + [consumables]
    suppliers = [party for party in parties if party.cnpj]
    return Book(company, seed, parties, suppliers, sellable, [pool for pool in purchases if pool], _FREIGHT)
