"""The EFD ICMS/IPI generator on a real PostgreSQL: valid, deterministic, minimal when empty, stored in S3."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from tornado_tasks.sped.efd_parts import PartFile, PartMismatch, block_c_from, document_ranges, write_part
from tornado_tasks.sped.efd_records import EfdSummary, format_value, latin1_text
from tornado_tasks.sped.efd_writer import write_efd
from tornado_tasks.sped.files import find_file
from tornado_tasks.sped.handlers import EfdPayload, efd_icms_ipi
from tornado_tasks.sped.layouts import LayoutRegistry
from tornado_tasks.sped.seed import SeedReport, seed_erp
from tornado_tasks.sped.validator import validate

from tornado_core import NonRetryable, TaskContext
from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.adapters.postgres import PostgresPool
from tornado_core.devstack import BUCKET, REGION, StackInfo
from tornado_core.task_context import job_logger

pytestmark = pytest.mark.integration

START, END = date(2025, 1, 1), date(2025, 1, 31)
BLOCKS = "0BCDEGHK19"


@dataclass
class Seeded:
    pool: PostgresPool
    report: SeedReport | None
    cnpjs: list[str]

    def efd(self, cnpj: str) -> tuple[bytes, EfdSummary]:
        out = io.BytesIO()
        with self.pool.connection() as conn:
            summary = write_efd(conn, cnpj=cnpj, start=START, end=END, cod_fin=0, out=out)
        return out.getvalue(), summary


@pytest.fixture(name="seeded", scope="module")
def seeded_fixture(dev_stack: Any) -> Iterator[Seeded]:
    """3 companies x 50 documents of January 2025 (the second without movement), committed."""
    dsn = dev_stack.create_database()
    pool = PostgresPool(dsn, min_size=0, max_size=4)
    with pool.connection() as conn:
        report = seed_erp(
            conn, companies=3, documents=50, items_per_document=range(1, 6), period=(2025, 1), seed=1
        )
    with pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT cnpj FROM erp_company ORDER BY company_id")
        cnpjs = [row[0] for row in cur.fetchall()]
    yield Seeded(pool, report, cnpjs)
    pool.close()
    dev_stack.drop_database(dsn)


def records(data: bytes) -> list[list[str]]:
    """The file's records as field lists (without the outer pipes)."""
    return [line[1:-1].split("|") for line in data.decode("latin-1").split("\r\n") if line]


def amount(text: str) -> Decimal:
    return Decimal(text.replace(",", ".")) if text else Decimal(0)


def problems(data: bytes) -> list[str]:
    return [str(p) for p in validate(io.BytesIO(data), LayoutRegistry.bundled())]


def test_every_company_file_is_valid_and_deterministic(seeded: Seeded) -> None:
    for cnpj in seeded.cnpjs:
        data, summary = seeded.efd(cnpj)
        assert problems(data) == []
        again, _ = seeded.efd(cnpj)
        assert again == data
        rows = records(data)
        assert summary.lines == len(rows) == int(rows[-1][1])
        assert rows[-1][0] == "9999" and data.endswith(b"\r\n")
        blocks = "".join(dict.fromkeys(row[0][0] for row in rows))
        assert blocks == BLOCKS
        declared = {row[1]: int(row[2]) for row in rows if row[0] == "9900"}
        assert declared == dict(Counter(row[0] for row in rows)) == dict(summary.record_counts)


def test_empty_company_file_is_minimal(seeded: Seeded) -> None:
    data, _ = seeded.efd(seeded.cnpjs[1])
    assert problems(data) == []
    body = [row[0] for row in records(data) if row[0][0] != "9"]
    assert body == [
        "0000", "0001", "0005", "0100", "0990", "B001", "B990", "C001", "C990", "D001", "D990",
        "E001", "E100", "E110", "E990", "G001", "G990", "H001", "H990", "K001", "K990",
        "1001", "1010", "1990",
    ]  # fmt: skip
    assert [row for row in records(data) if row[0] in ("C001", "D001", "H001")] == [
        ["C001", "1"], ["D001", "1"], ["H001", "1"],
    ]  # fmt: skip


def test_block_0_lists_exactly_the_referenced_codes(seeded: Seeded) -> None:
    data, _ = seeded.efd(seeded.cnpjs[0])
    rows = records(data)
    listed_participants = {row[1] for row in rows if row[0] == "0150"}
    listed_items = {row[1] for row in rows if row[0] == "0200"}
    listed_units = {row[1] for row in rows if row[0] == "0190"}
    used_participants = {row[3] for row in rows if row[0] in ("C100", "D100") and row[3]}
    used_items = {row[2] for row in rows if row[0] == "C170"} | {row[1] for row in rows if row[0] == "H010"}
    used_units = {row[5] for row in rows if row[0] == "C170"} | {row[5] for row in rows if row[0] == "0200"}
    assert listed_participants == used_participants and used_participants
    assert listed_items == used_items and used_items
    assert listed_units == used_units


def test_inventory_month_writes_h005_h010_and_lists_their_items(seeded: Seeded) -> None:
    out = io.BytesIO()
    with seeded.pool.connection() as conn:
        write_efd(
            conn, cnpj=seeded.cnpjs[0], start=date(2024, 12, 1), end=date(2024, 12, 31), cod_fin=1, out=out
        )
    data = out.getvalue()
    assert problems(data) == []
    rows = records(data)
    assert rows[0][1:3] == ["018", "1"]
    assert [row[1:] for row in rows if row[0] == "H001"] == [["0"]]
    assert [row[1] for row in rows if row[0] == "H005"] == ["31122024"]
    h010 = [row for row in rows if row[0] == "H010"]
    assert h010 and {row[1] for row in rows if row[0] == "0200"} == {row[1] for row in h010}
    assert sum(amount(row[5]) for row in h010) == amount(next(row[2] for row in rows if row[0] == "H005"))


def test_c190_sums_equal_c170_sums(seeded: Seeded) -> None:
    data, _ = seeded.efd(seeded.cnpjs[2])
    details: defaultdict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    summaries: defaultdict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    compared = 0
    for row in [*records(data), ["C100"]]:
        if row[0] == "C100":
            for key, value in details.items():
                assert summaries[key] == value, key
                compared += 1
            details.clear()
            summaries.clear()
        elif row[0] == "C170":
            for name, index in (("BC", 12), ("ICMS", 14), ("ST", 17), ("IPI", 23)):
                details[(row[9], row[10], row[13], name)] += amount(row[index])
        elif row[0] == "C190":
            for name, index in (("BC", 5), ("ICMS", 6), ("ST", 8), ("IPI", 10)):
                summaries[(row[1], row[2], row[3], name)] += amount(row[index])
    assert compared > 40


def test_an_industrial_filer_has_its_ipi_apuracao_agreeing_with_its_c190(seeded: Seeded) -> None:
    industrial, trading = seeded.efd(seeded.cnpjs[0])[0], seeded.efd(seeded.cnpjs[2])[0]
    rows = records(industrial)
    assert rows[0][14] == "0" and records(trading)[0][14] == "1"  # 0000 IND_ATIV
    assert not [row for row in records(trading) if row[0].startswith("E5")]
    assert [row[0] for row in rows if row[0].startswith("E5")][:2] == ["E500", "E510"]
    assert [row[1:] for row in rows if row[0] == "E500"] == [["0", "01012025", "31012025"]]
    by_cfop: defaultdict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row[0] == "C190":
            by_cfop[row[2]] += amount(row[10])  # CFOP -> VL_IPI
    e510: defaultdict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        if row[0] == "E510":
            e510[row[1]] += amount(row[5])
    assert e510 == {cfop: ipi for cfop, ipi in by_cfop.items() if ipi or cfop in e510} and len(e510) >= 2
    (e520,) = [row for row in rows if row[0] == "E520"]
    debits = sum((v for cfop, v in e510.items() if cfop[0] in "567"), Decimal(0))
    credits = sum((v for cfop, v in e510.items() if cfop[0] in "123"), Decimal(0))
    assert (amount(e520[2]), amount(e520[3])) == (debits, credits) and debits > 0
    assert amount(e520[7]) - amount(e520[6]) == debits - credits  # VL_SD_IPI - VL_SC_IPI
    assert problems(industrial) == []


def test_own_nfe_carry_no_c170_and_their_items_are_not_listed(seeded: Seeded) -> None:
    rows = records(seeded.efd(seeded.cnpjs[0])[0])
    children: defaultdict[str, Counter[str]] = defaultdict(Counter)
    kind = ""
    for row in rows:
        if row[0] == "C100":
            kind = "own" if row[2] == "0" and row[4] == "55" else "other"
        elif row[0] in ("C170", "C190"):
            children[kind][row[0]] += 1
    assert children["own"]["C190"] > 0 and children["own"]["C170"] == 0
    assert children["other"]["C170"] > 0
    listed = {row[1] for row in rows if row[0] == "0200"}
    used = {row[2] for row in rows if row[0] == "C170"} | {row[1] for row in rows if row[0] == "H010"}
    assert listed == used


#: IBGE state codes (the first two digits of a city code) of the UFs the seeder uses.
UF_OF_IBGE = {
    "35": "SP", "33": "RJ", "41": "PR", "42": "SC", "43": "RS", "32": "ES", "23": "CE", "26": "PE",
    "52": "GO", "50": "MS", "51": "MT", "53": "DF", "15": "PA", "31": "MG", "29": "BA", "13": "AM",
}  # fmt: skip


def test_the_icms_st_retained_is_declared_per_uf_in_e200_e210_e250(seeded: Seeded) -> None:
    rows = records(seeded.efd(seeded.cnpjs[0])[0])
    own_uf = rows[0][8]
    uf_of = {row[1]: UF_OF_IBGE[row[7][:2]] for row in rows if row[0] == "0150"}
    retained: defaultdict[str, Decimal] = defaultdict(Decimal)
    uf = own_uf
    for row in rows:
        if row[0] == "C100":
            uf = uf_of.get(row[3], own_uf)
        elif row[0] == "C190" and row[2][0] in "56":
            retained[uf] += amount(row[8])  # VL_ICMS_ST
    declared: dict[str, Decimal] = {}
    due: dict[str, tuple[str, Decimal, str]] = {}
    for index, row in enumerate(rows):
        if row[0] == "E200":
            e210, e250 = rows[index + 1], rows[index + 2]
            assert e210[0] == "E210" and e250[0] == "E250"
            declared[row[1]] = amount(e210[7])  # VL_RETENCAO_ST
            due[row[1]] = (e250[1], amount(e250[2]), e250[4])  # COD_OR, VL_OR, COD_REC
    assert declared == {uf: value for uf, value in retained.items() if value} and len(declared) >= 2
    assert due[own_uf] == ("002", declared[own_uf], "063-2")
    assert {(cod_or, rec) for uf, (cod_or, _, rec) in due.items() if uf != own_uf} == {("999", "100099")}


def test_cancelled_documents_carry_only_their_key_fields(fresh_database_url: str) -> None:
    pool = PostgresPool(fresh_database_url, min_size=0, max_size=2)
    try:
        with pool.connection() as conn:
            seed_erp(
                conn, companies=1, documents=30, items_per_document=range(1, 4), period=(2025, 1), seed=7
            )
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE erp_fiscal_document SET status = '02' WHERE document_id IN (SELECT document_id"
                " FROM erp_fiscal_document WHERE model = '55' AND direction = 1 ORDER BY document_id LIMIT 3)"
            )
            cur.execute("SELECT cnpj FROM erp_company")
            row = cur.fetchone()
            assert row is not None
            cnpj = row[0]
        data, _ = Seeded(pool, None, [cnpj]).efd(cnpj)
    finally:
        pool.close()
    assert problems(data) == []
    rows = records(data)
    cancelled = [i for i, row in enumerate(rows) if row[0] == "C100" and row[5] == "02"]
    assert len(cancelled) == 3
    for index in cancelled:
        assert len(rows[index][8]) == 44 and rows[index][6] == "1"  # the key and the series stay
        assert rows[index][3] == rows[index][10] == rows[index][11] == ""  # no participant, date, value
        assert rows[index + 1][0] not in ("C170", "C190")


def test_values_are_formatted_as_the_guia_says() -> None:
    spec = LayoutRegistry.bundled().for_period(END).records["C170"]
    fields = {f.name: f for f in spec.fields}
    assert format_value(Decimal("1234.5"), fields["VL_ITEM"]) == "1234,50"
    assert format_value(Decimal("0"), fields["VL_ITEM"]) == "0,00"
    assert format_value(Decimal("2.5"), fields["QTD"]) == "2,50000"
    assert format_value(None, fields["VL_DESC"]) == ""
    assert format_value(date(2025, 1, 9), fields["QTD"]) == "09012025"
    assert latin1_text(" Caf\u00e9 | \u0141\u00f3d\u017a \u2603 ") == "Caf\u00e9 ?\u00f3dz ?"


@pytest.fixture(name="s3")
def s3_fixture(stack_info: StackInfo) -> S3ObjectStore:
    client = make_client(
        "s3", region=REGION, endpoint_url=stack_info.aws_endpoint_url, credentials=("test", "test")
    )
    return S3ObjectStore(client, BUCKET)


def context(pool: PostgresPool, s3: S3ObjectStore, tenant: str, job_id: str | None = None) -> TaskContext:
    job_id = job_id or str(uuid.uuid4())
    return TaskContext(
        job_id=job_id, task="sped.efd_icms_ipi", version="1", tenant=tenant, attempt=1, s3=s3, rds=pool,
        redshift=None, logger=job_logger(logging.getLogger("tests.sped"), job=job_id, tenant=tenant),
        deadline=time.monotonic() + 600, _progress_sink=lambda fraction, note: None,
    )  # fmt: skip


def test_task_stores_the_file_under_its_job_and_records_it(seeded: Seeded, s3: S3ObjectStore) -> None:
    tenant, job_id = f"t{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    cnpj = seeded.cnpjs[0]
    payload = EfdPayload(cnpj=cnpj, start=START, end=END)
    result = efd_icms_ipi.handler(context(seeded.pool, s3, tenant, job_id), payload)
    data, summary = seeded.efd(cnpj)
    assert result["key"] == f"sped/{tenant}/{cnpj}/202501/efd-{job_id}.txt"
    assert (result["sha256"], result["lines"], result["bytes"]) == (summary.sha256, summary.lines, len(data))
    assert s3.get(result["key"]) == data
    assert efd_icms_ipi.handler(context(seeded.pool, s3, tenant, job_id), payload) == result  # a rerun
    assert s3.list(f"sped/{tenant}/") == [result["key"]]
    with seeded.pool.connection() as conn:
        recorded = find_file(conn, tenant, job_id)
        assert find_file(conn, "another-tenant", job_id) is None
    assert recorded is not None
    assert (recorded.object_key, recorded.sha256, recorded.layout) == (result["key"], summary.sha256, "019")
    assert recorded.record_counts == result["records"]


def test_task_refuses_an_unknown_company_and_stores_nothing(seeded: Seeded, s3: S3ObjectStore) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    payload = EfdPayload(cnpj="11222333000181", start=START, end=END)
    with pytest.raises(NonRetryable, match="no company with CNPJ 11222333000181"):
        efd_icms_ipi.handler(context(seeded.pool, s3, tenant), payload)
    assert s3.list(f"sped/{tenant}/") == []


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [(date(2025, 1, 10), date(2025, 1, 9), "end"), (date(2025, 1, 1), date(2025, 2, 28), "month"),
     (date(2099, 1, 1), date(2099, 1, 31), "future"),
     (date(2019, 1, 1), date(2019, 1, 31), "no EFD ICMS/IPI layout for the period ending 31/01/2019")],
)  # fmt: skip
def test_payload_refuses_bad_periods(start: date, end: date, field: str) -> None:
    with pytest.raises(ValidationError, match=field) as caught:
        EfdPayload(cnpj="11222333000181", start=start, end=end)
    assert [error["loc"] for error in caught.value.errors()] == [("end",)]


@pytest.mark.parametrize("parts", [1, 3, 7])
def test_a_file_split_in_parts_is_the_same_bytes_as_in_one_piece(seeded: Seeded, parts: int) -> None:
    cnpj = seeded.cnpjs[0]
    whole, summary = seeded.efd(cnpj)
    stored: dict[str, bytes] = {}
    with seeded.pool.connection() as conn:
        ranges = document_ranges(conn, cnpj=cnpj, start=START, end=END, parts=parts)
    assert len(ranges) == parts and ranges[0].after is None and ranges[-1].through is None
    written = []
    for index, document_range in enumerate(ranges, 1):
        out = io.BytesIO()
        with seeded.pool.connection() as conn:
            part = write_part(
                conn, cnpj=cnpj, start=START, end=END, document_range=document_range, out=out,
                key=f"part-{index}", progress=lambda done: None,
            )  # fmt: skip
        stored[part.key] = out.getvalue()
        written.append(PartFile.from_result(json.loads(json.dumps(part.as_result()))))
    assert sum(p.record_counts[0][1] for p in written) == summary.record_counts["C100"]  # C100 first
    out = io.BytesIO()
    with seeded.pool.connection() as conn:
        split = write_efd(
            conn, cnpj=cnpj, start=START, end=END, cod_fin=0, out=out,
            block_c=block_c_from(written, lambda key: iter([stored[key][:100], stored[key][100:]])),
        )  # fmt: skip
    assert out.getvalue() == whole and split == summary


def test_a_part_that_changed_stops_the_file(seeded: Seeded) -> None:
    cnpj = seeded.cnpjs[0]
    with seeded.pool.connection() as conn:
        (document_range,) = document_ranges(conn, cnpj=cnpj, start=START, end=END, parts=1)
        out = io.BytesIO()
        part = write_part(conn, cnpj=cnpj, start=START, end=END, document_range=document_range, out=out,
                          key="part-1", progress=lambda done: None)  # fmt: skip
    truncated = out.getvalue()[:-10]
    with (
        seeded.pool.connection() as conn,
        pytest.raises(PartMismatch, match="part part-1 is not what its job wrote"),
    ):
        write_efd(conn, cnpj=cnpj, start=START, end=END, cod_fin=0, out=io.BytesIO(),
                  block_c=block_c_from([part], lambda key: iter([truncated])))  # fmt: skip
