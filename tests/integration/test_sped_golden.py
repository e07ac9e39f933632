"""The generator reproduces the reviewed golden file byte for byte.

``tests/data/sped/efd-golden-202501.txt`` is the EFD ICMS/IPI of January 2025 of the one company
the seeder writes into an empty ERP database with seed 31 (10 documents of 1 to 3 lines): an
industrial filer in São Paulo with entries and exits, an interstate sale, ICMS ST, a cancelled
NF-e, a CT-e, ICMS due (E116) and the IPI apuração (E500-E520). docs/sped-golden-review.md
reviews it record by record against the Guia Prático. A deliberate change to the generator or to
the seeder changes the bytes: regenerate the file with the snippet in that document, review the
difference, and commit both.
"""

from __future__ import annotations

import difflib
import io
from datetime import date
from pathlib import Path

import pytest
from tornado_tasks.sped.efd_writer import write_efd
from tornado_tasks.sped.seed import seed_erp

from tornado_core.adapters.postgres import PostgresPool

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "sped" / "efd-golden-202501.txt"


def generate(pool: PostgresPool, cnpj: str) -> bytes:
    out = io.BytesIO()
    with pool.connection() as conn:
        write_efd(conn, cnpj=cnpj, start=date(2025, 1, 1), end=date(2025, 1, 31), cod_fin=0, out=out)
    return out.getvalue()


def test_the_generator_writes_the_reviewed_golden_file_byte_for_byte(fresh_database_url: str) -> None:
    pool = PostgresPool(fresh_database_url, min_size=0, max_size=2)
    try:
        with pool.connection() as conn:
            seed_erp(
                conn, companies=1, documents=10, items_per_document=range(1, 4), period=(2025, 1), seed=31
            )
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT cnpj FROM erp_company")
            (cnpj,) = cur.fetchone()
        first, again = generate(pool, cnpj), generate(pool, cnpj)
    finally:
        pool.close()
    golden = GOLDEN.read_bytes()
    if first != golden:
        expected, got = golden.decode("latin-1").splitlines(), first.decode("latin-1").splitlines()
        diff = difflib.unified_diff(expected, got, "golden", "generated", lineterm="", n=1)
        pytest.fail("the generated file differs from the golden file:\n" + "\n".join(list(diff)[:40]))
    assert again == first
