"""Shared parts of the SPED end-to-end modules: seeded companies, payloads, the expected bytes."""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg2
from tornado_tasks.sped.efd_writer import write_efd
from tornado_tasks.sped.seed import seed_erp

from tornado_core.services import Services

TASK = "sped.efd_icms_ipi"
PART_TASK = "sped.efd_part"
START, END = date(2025, 3, 1), date(2025, 3, 31)


@dataclass(frozen=True)
class Companies:
    """CNPJs of a seeded company with ``documents`` documents in March 2025, and of one without any."""

    busy: str
    empty: str


def seed_companies(erp_database_url: str, documents: int) -> Companies:
    """Seed two companies into the ERP database under a random seed (so their CNPJs are new)."""
    with psycopg2.connect(erp_database_url) as conn:
        report = seed_erp(
            conn, companies=2, documents=documents, items_per_document=range(1, 9), period=(2025, 3),
            seed=random.randrange(10**9),
        )  # fmt: skip
        with conn.cursor() as cur:
            cur.execute(
                "SELECT company_id, cnpj FROM erp_company WHERE company_id IN %s", (report.company_ids,)
            )
            cnpj = dict(cur.fetchall())
    assert report.empty_company_id is not None
    busy = next(c for c in report.company_ids if c != report.empty_company_id)
    return Companies(busy=cnpj[busy], empty=cnpj[report.empty_company_id])


def payload(cnpj: str, start: date = START, end: date = END) -> dict[str, Any]:
    return {"cnpj": cnpj, "start": start.isoformat(), "end": end.isoformat()}


def expected_file(erp_database_url: str, cnpj: str) -> bytes:
    """The file the generator writes for the company, straight from the database."""
    out = io.BytesIO()
    with psycopg2.connect(erp_database_url) as conn:
        write_efd(conn, cnpj=cnpj, start=START, end=END, cod_fin=0, out=out)
    return out.getvalue()


def unfinished_uploads(services: Services, prefix: str) -> list[str]:
    """Keys under ``prefix`` with a multipart upload begun and neither completed nor aborted."""
    client = services.objects._client  # type: ignore[attr-defined]
    listing = client.list_multipart_uploads(Bucket=services.objects.bucket, Prefix=prefix)
    return [u["Key"] for u in listing.get("Uploads", [])]
