"""The ERP fiscal schema and its seeder on a real PostgreSQL: idempotent DDL, valid and reproducible data."""

from __future__ import annotations

import hashlib
import json
import shlex
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from tornado_tasks.nfe.access_key import UF_CODES, parse_access_key
from tornado_tasks.nfe.documents import cnpj_problem, cpf_problem, mod11_digit
from tornado_tasks.sped.erp_schema import ERP_TABLES, SCHEMA_VERSION, ensure_erp_schema
from tornado_tasks.sped.seed import SeedReport, seed_erp
from tornado_tasks.sped.seed_catalog import ie_problem
from tornado_tasks.sped.seed_cli import seed_erp_command

from tornado_core.adapters.postgres import PostgresPool

pytestmark = pytest.mark.integration

PERIOD = (2025, 1)
CSOSN = {"101", "102", "103", "201", "202", "203", "300", "400", "500", "900"}
TABLE_B = {"00", "10", "20", "30", "40", "41", "50", "51", "60", "70", "90"}
CENT = Decimal("0.01")


@pytest.fixture(name="erp")
def erp_fixture(fresh_database_url: str) -> Iterator[PostgresPool]:
    """A fresh, empty ERP database."""
    pool = PostgresPool(fresh_database_url, min_size=0, max_size=4)
    yield pool
    pool.close()


def seed(pool: PostgresPool, seed: int = 1, companies: int = 3, documents: int = 200) -> SeedReport:
    """The standard small seed, committed."""
    with pool.connection() as conn:
        return seed_erp(
            conn,
            companies=companies,
            documents=documents,
            items_per_document=range(1, 9),
            period=PERIOD,
            seed=seed,
        )


def rows(pool: PostgresPool, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute(sql, params or None)
        return list(cur.fetchall())


def dump_hash(pool: PostgresPool) -> str:
    """SHA-256 of every ERP table dumped in a total order."""
    digest = hashlib.sha256()

    class Sink:
        def write(self, data: str | bytes) -> None:
            digest.update(data.encode() if isinstance(data, str) else data)

    with pool.connection() as conn, conn.cursor() as cur:
        for table in ERP_TABLES:
            digest.update(table.encode())
            cur.copy_expert(f"COPY (SELECT t.* FROM {table} t ORDER BY t) TO STDOUT", Sink())
    return digest.hexdigest()


def truncate(pool: PostgresPool) -> None:
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(ERP_TABLES)} RESTART IDENTITY")


def test_the_schema_is_created_once_even_twice_and_from_two_threads_at_once(erp: PostgresPool) -> None:
    barrier = threading.Barrier(2, timeout=30)

    def ensure() -> None:
        with erp.connection() as conn:
            barrier.wait()
            ensure_erp_schema(conn)

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(ensure) for _ in range(2)]:
            future.result()
    with erp.connection() as conn:
        ensure_erp_schema(conn)

    assert rows(erp, "SELECT version FROM sped_schema") == [(SCHEMA_VERSION,)]
    found = rows(erp, "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'erp_%'")
    assert {name for (name,) in found} == {*ERP_TABLES, "erp_fiscal_document_summary"}


def test_every_tax_id_city_and_access_key_is_valid(erp: PostgresPool) -> None:
    seed(erp)
    companies = rows(erp, "SELECT cnpj, uf, ie, city_code, accountant_cpf, accountant_cnpj FROM erp_company")
    parties = rows(erp, "SELECT cnpj, cpf, uf, ie, city_code FROM erp_participant")
    keys = rows(erp, "SELECT model, access_key FROM erp_fiscal_document")

    assert len(companies) == 3 and len(parties) >= 30 and len(keys) == 400
    for cnpj, uf, ie, city, accountant_cpf, office in companies:
        assert (cnpj_problem(cnpj), cnpj_problem(office), cpf_problem(accountant_cpf)) == (None, None, None)
        assert ie_problem(uf, ie) is None
        assert int(city[:2]) == UF_CODES[uf]
    for cnpj, cpf, uf, ie, city in parties:
        assert (cnpj is None) != (cpf is None)
        assert cpf_problem(cpf) is None if cpf else cnpj_problem(cnpj) is None and ie_problem(uf, ie) is None
        assert int(city[:2]) == UF_CODES[uf]
    for model, key in keys:
        assert key[20:22] == model
        if model == "57":
            assert int(key[43]) == mod11_digit(key[:43]) and cnpj_problem(key[6:20]) is None
        else:
            assert parse_access_key(key).model == int(model)


def test_document_totals_are_the_sums_of_their_lines(erp: PostgresPool) -> None:
    seed(erp)
    mismatched = rows(
        erp,
        """
        SELECT d.document_id FROM erp_fiscal_document d JOIN erp_fiscal_document_item i USING (document_id)
         GROUP BY d.document_id
        HAVING (d.total_goods, d.discount, d.freight, d.icms_base, d.icms, d.icms_st_base, d.icms_st, d.ipi,
                d.pis, d.cofins, d.total_document)
               IS DISTINCT FROM
               (sum(i.value), sum(i.discount), sum(i.freight), sum(i.icms_base), sum(i.icms),
                sum(i.icms_st_base), sum(i.icms_st), sum(i.ipi), sum(i.pis), sum(i.cofins),
                sum(i.value - i.discount + i.freight + i.insurance + i.other_expenses + i.icms_st + i.ipi))
        """,
    )
    summary = rows(
        erp,
        """
        SELECT count(*) FROM erp_fiscal_document d
          JOIN (SELECT document_id, sum(operation_value) AS value, sum(icms) AS icms
                  FROM erp_fiscal_document_summary GROUP BY document_id) s USING (document_id)
         WHERE (s.value, s.icms) IS DISTINCT FROM (d.total_document, d.icms)
        """,
    )
    positive = rows(erp, "SELECT count(*) FROM erp_fiscal_document WHERE total_document > 0 AND icms > 0")

    assert mismatched == [] and summary == [(0,)]
    lineless = (
        "SELECT count(*) FROM erp_fiscal_document d WHERE NOT EXISTS (SELECT FROM erp_fiscal_document_item i"
    )
    assert rows(erp, f"{lineless} WHERE i.document_id = d.document_id)") == [(0,)]
    assert positive[0][0] > 100


def test_line_taxes_are_base_times_rate_rounded_half_even(erp: PostgresPool) -> None:
    seed(erp)
    lines = rows(erp, "SELECT icms_base, icms_rate, icms, ipi_base, ipi_rate, ipi, pis_base, pis_rate, pis"
                      " FROM erp_fiscal_document_item")  # fmt: skip

    def times(base: Decimal, rate: Decimal) -> Decimal:
        return (base * rate / 100).quantize(CENT, rounding=ROUND_HALF_EVEN)

    assert len(lines) > 1_000
    for icms_base, icms_rate, icms, ipi_base, ipi_rate, ipi, pis_base, pis_rate, pis in lines:
        assert (icms, ipi, pis) == (
            times(icms_base, icms_rate),
            times(ipi_base, ipi_rate),
            times(pis_base, pis_rate),
        )
    assert {rate for (rate,) in rows(erp, "SELECT DISTINCT icms_rate FROM erp_fiscal_document_item")} >= {
        Decimal("0"), Decimal("12"), Decimal("18"),
    }  # fmt: skip


def test_cfop_agrees_with_direction_and_destination_and_cst_with_the_regime(erp: PostgresPool) -> None:
    seed(erp)
    lines = rows(
        erp,
        """
        SELECT d.direction, c.uf, p.uf, i.cfop, c.tax_regime, i.cst_icms, d.model
          FROM erp_fiscal_document d JOIN erp_company c USING (company_id)
          JOIN erp_fiscal_document_item i USING (document_id)
          LEFT JOIN erp_participant p ON (p.company_id, p.code) = (d.company_id, d.participant_code)
        """,
    )
    seen = set()
    for direction, company_uf, party_uf, cfop, regime, cst, model in lines:
        interstate = party_uf is not None and party_uf != company_uf
        assert (
            cfop[0]
            == {(1, False): "5", (1, True): "6", (0, False): "1", (0, True): "2"}[direction, interstate]
        )
        if regime == 1:
            assert cst in CSOSN
        else:
            assert len(cst) == 3 and cst[0] in "012345678" and cst[1:] in TABLE_B
        assert (model == "65") == (party_uf is None)
        seen.add((cfop[0], regime, model))
    assert {(digit, regime) for digit, regime, _ in seen} == {
        (digit, regime) for digit in "1256" for regime in (1, 3)
    }
    assert {model for *_, model in seen} == {"55", "57", "65"}


def test_the_second_company_has_registers_but_no_movement(erp: PostgresPool) -> None:
    report = seed(erp)
    documents = dict(rows(erp, "SELECT company_id, count(*) FROM erp_fiscal_document GROUP BY company_id"))
    registers = rows(
        erp,
        "SELECT (SELECT count(*) FROM erp_participant WHERE company_id = %s),"
        " (SELECT count(*) FROM erp_item WHERE company_id = %s),"
        " (SELECT count(*) FROM erp_inventory WHERE company_id = %s)",
        report.empty_company_id, report.empty_company_id, report.empty_company_id,
    )  # fmt: skip

    assert report.company_ids == (1, 2, 3) and report.empty_company_id == 2
    assert documents == {1: 200, 3: 200}
    participants, items, inventory = registers[0]
    assert participants > 0 and items > 0 and inventory == 0
    assert (report.documents, report.item_lines) == (
        400,
        rows(erp, "SELECT count(*) FROM erp_fiscal_document_item")[0][0],
    )


def test_the_same_seed_writes_the_same_rows_and_another_seed_others(erp: PostgresPool) -> None:
    first = seed(erp, seed=7)
    first_hash = dump_hash(erp)
    truncate(erp)
    again = seed(erp, seed=7)
    again_hash = dump_hash(erp)
    truncate(erp)
    other = seed(erp, seed=8)

    assert again_hash == first_hash
    assert (again.item_lines, again.total_documents_value) == (first.item_lines, first.total_documents_value)
    assert dump_hash(erp) != first_hash and other.total_documents_value != first.total_documents_value


def test_seeding_adds_to_existing_rows_with_new_ids(erp: PostgresPool) -> None:
    seed(erp, seed=1, companies=1, documents=20)
    second = seed(erp, seed=2, companies=2, documents=20)

    assert second.company_ids == (2, 3)
    assert rows(erp, "SELECT count(*), min(document_id), max(document_id) FROM erp_fiscal_document") == [
        (40, 1, 40)
    ]
    with erp.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO erp_company (cnpj, name, uf, ie, city_code, profile, activity, tax_regime, zip_code,"
            " address, accountant_name, accountant_cpf, accountant_crc) VALUES ('11222333000181', 'X', 'SP',"
            " '110042490114', '3550308', 'A', 0, 3, '01000000', 'R', 'C', '52998224725', 'SP-1')"
            " RETURNING company_id"
        )
        assert cur.fetchone() == (4,)


@pytest.mark.parametrize(
    "arguments",
    [
        {"companies": 0},
        {"documents": -1},
        {"items_per_document": 0},
        {"items_per_document": range(1, 1001)},
        {"period": (2025, 13)},
    ],
)
def test_arguments_out_of_range_are_refused(arguments: dict[str, Any]) -> None:
    given: dict[str, Any] = {
        "companies": 1, "documents": 1, "items_per_document": 1, "period": PERIOD, "seed": 1, **arguments,
    }  # fmt: skip
    with pytest.raises(ValueError):
        seed_erp(None, **given)


def test_a_hundred_thousand_lines_seed_in_bounded_chunks(erp: PostgresPool) -> None:
    with erp.connection() as conn:
        report = seed_erp(
            conn, companies=2, documents=10_600, items_per_document=10, period=(2025, 2), seed=3
        )
    print(f"\n{report.item_lines} lines in {report.elapsed:.1f} s: {report.lines_per_second:,.0f} lines/s")

    assert report.item_lines >= 100_000
    counted = rows(erp, "SELECT count(*), count(DISTINCT document_id) FROM erp_fiscal_document_item")
    assert counted == [(report.item_lines, report.documents)]
    assert rows(erp, "SELECT min(entry_exit_date), max(entry_exit_date) FROM erp_fiscal_document") == [
        (report.first_day, report.last_day)
    ]


def test_the_seed_erp_command_writes_commits_and_says_what(
    fresh_database_url: str, stack_env: dict[str, str]
) -> None:
    env = {**stack_env, "TORNADO_ERP_DATABASE_URL": fresh_database_url}
    arguments = shlex.split("--companies 2 --documents 30 --items-per-document 1-3 --period 2024-12 --seed 5")
    result = CliRunner().invoke(seed_erp_command, arguments, env=env)
    refused = CliRunner().invoke(seed_erp_command, ["--period", "2025-13"], env=env)

    assert result.exit_code == 0, result.output
    assert "seeded 2024-12 with seed 5" in result.output and "company 2 has no movement" in result.output
    assert refused.exit_code == 2 and "YYYY-MM" in refused.output
    more = CliRunner().invoke(seed_erp_command, [*arguments[:-1], "6", "--json"], env=env)
    assert more.exit_code == 0, more.output
    seeded = json.loads(more.output)
    pool = PostgresPool(fresh_database_url, min_size=0, max_size=1)
    try:
        december = "count(*) FILTER (WHERE entry_exit_date BETWEEN '2024-12-01' AND '2024-12-31')"
        assert rows(pool, f"SELECT count(*), {december} FROM erp_fiscal_document") == [(60, 60)]
        listed = rows(pool, "SELECT company_id, cnpj FROM erp_company WHERE company_id > 2 ORDER BY 1")
    finally:
        pool.close()
    assert (seeded["period"], seeded["seed"], seeded["documents"]) == ("2024-12", 6, 30)
    assert [(c["id"], c["cnpj"], c["movement"]) for c in seeded["companies"]] == [
        (listed[0][0], listed[0][1], True),
        (listed[1][0], listed[1][1], False),
    ]
