"""The Redshift feed on the local emulation: watermark, parts + manifest, COPY, dedupe, MERGE, audit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tornado_tasks.ponto.export import PUNCHES, export_punches
from tornado_tasks.ponto.ledger import record_punches
from tornado_tasks.ponto.models import ExportPayload, QueuedPunch
from tornado_tasks.ponto.redshift import LoadFailed, load_manifest, manifest

from tests.integration.ponto_fixtures import Erp, erp_fixture, erp_pool_fixture, s3_fixture  # noqa: F401
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.adapters.postgres import PostgresPool
from tornado_core.errors import ObjectStoreError


@pytest.fixture
def warehouse(dev_stack: object) -> Iterator[PostgresPool]:
    dsn = dev_stack.create_database()  # type: ignore[attr-defined]
    pool = PostgresPool(dsn, min_size=0, max_size=2)
    yield pool
    pool.close()
    dev_stack.drop_database(dsn)  # type: ignore[attr-defined]


def add_punches(erp: Erp, count: int) -> None:
    now = datetime.now(UTC)
    punches = [
        QueuedPunch(
            id=uuid.uuid4(),
            cpf="12345678909",
            rep=erp.reps[n % len(erp.reps)],
            time=now,
            offline=False,
            collector=1,
            received_at=now,
        )
        for n in range(count)
    ]
    with erp.pool.connection() as conn:
        record_punches(conn, tenant=erp.tenant, job_id="job", punches=punches)


def rows_in(warehouse: PostgresPool) -> int:
    with warehouse.connection() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*), count(DISTINCT (rep_id, nsr)) FROM {PUNCHES.qualified}")
        total, distinct = cur.fetchone()
    assert total == distinct
    return int(total)


def watermarks(erp: Erp) -> dict[str, int]:
    with erp.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT rep_id, last_nsr FROM ponto_export_watermark")
        return dict(cur.fetchall())


def export(erp: Erp, warehouse: PostgresPool, s3: object, batch: str | None = None, **options: int) -> dict:
    return export_punches(
        rds=erp.pool,
        warehouse=warehouse,
        s3=s3,
        batch_id=batch or uuid.uuid4().hex,  # type: ignore[arg-type]
        options=ExportPayload(**options),
    )


def test_export_loads_each_punch_once_and_a_rerun_loads_nothing(
    erp: Erp, warehouse: PostgresPool, s3: S3ObjectStore
) -> None:
    add_punches(erp, 230)
    first = export(erp, warehouse, s3, rows_per_part=100)
    assert (first["rows"], first["inserted"]) == (230, 230)
    assert len(s3.list(f"ponto/redshift/batch={first['batch_id']}/")) == 4  # three parts and the manifest
    assert export(erp, warehouse, s3)["rows"] == 0  # nothing new since the watermark
    add_punches(erp, 20)
    assert export(erp, warehouse, s3)["inserted"] == 20
    assert rows_in(warehouse) == 250
    assert watermarks(erp) == {
        rep: 2 + 250 // 4 + (1 if n < 250 % 4 else 0) for n, rep in enumerate(erp.reps)
    }


def test_a_retried_batch_is_a_no_op_and_rows_loaded_again_are_merged_not_doubled(
    erp: Erp, warehouse: PostgresPool, s3: S3ObjectStore
) -> None:
    add_punches(erp, 40)
    batch = uuid.uuid4().hex
    assert export(erp, warehouse, s3, batch=batch)["inserted"] == 40
    again = export(erp, warehouse, s3, batch=batch)  # the same job delivered twice
    assert again["skipped"] is True
    with erp.pool.connection() as conn, conn.cursor() as cur:  # as if the watermark never advanced
        cur.execute("DELETE FROM ponto_export_watermark")
    replay = export(erp, warehouse, s3)
    assert (replay["rows"], replay["staged"], replay["inserted"]) == (40, 40, 0)
    assert rows_in(warehouse) == 40


class FailingParts:
    """An object store whose part files cannot be read (COPY fails midway)."""

    def __init__(self, real: S3ObjectStore) -> None:
        self._real = real
        self.bucket = real.bucket

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        self._real.put(key, data, content_type=content_type)

    def get(self, key: str) -> bytes:
        if key.endswith(".csv.gz") and "part-00001" in key:
            raise ObjectStoreError(f"s3://{self.bucket}/{key} does not exist")
        return self._real.get(key)

    def read_chunks(self, key: str, *, chunk_bytes: int = 1 << 20) -> Any:
        return self._real.read_chunks(key, chunk_bytes=chunk_bytes)

    def exists(self, key: str) -> bool:
        return self._real.exists(key)

    def delete(self, key: str) -> None:
        self._real.delete(key)

    def list(self, prefix: str) -> list[str]:
        return self._real.list(prefix)

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        return self._real.download_url(key, expires_in=expires_in, filename=filename)

    def upload(self, key: str, *, content_type: str = "application/octet-stream") -> Any:
        return self._real.upload(key, content_type=content_type)


def test_a_failed_copy_loads_nothing_and_leaves_the_watermark_unchanged(
    erp: Erp, warehouse: PostgresPool, s3: S3ObjectStore
) -> None:
    add_punches(erp, 50)
    batch = uuid.uuid4().hex
    with pytest.raises(LoadFailed):
        export(erp, warehouse, FailingParts(s3), batch=batch, rows_per_part=20)
    assert watermarks(erp) == {}
    with warehouse.connection() as conn, conn.cursor() as cur:  # the stage and the first part rolled back
        cur.execute(f"SELECT to_regclass('{PUNCHES.qualified}') IS NOT NULL")
        assert cur.fetchone()[0] is False
    retried = export(erp, warehouse, s3, batch=batch, rows_per_part=20)  # the job's retry
    assert (retried["rows"], retried["inserted"]) == (50, 50)
    assert sum(watermarks(erp).values()) == 50 + 2 * len(erp.reps)


def test_duplicate_rows_in_the_stage_are_deduplicated_before_the_merge(
    erp: Erp, warehouse: PostgresPool, s3: S3ObjectStore
) -> None:
    add_punches(erp, 10)
    first = export(erp, warehouse, s3)
    prefix = f"ponto/redshift/batch={first['batch_id']}"
    part = f"{prefix}/part-00000.csv.gz"
    doubled = f"ponto/redshift/test-{uuid.uuid4().hex}/manifest.json"
    s3.put(doubled, manifest(s3.bucket, [part, part]))  # the same part listed twice
    with warehouse.connection() as conn, conn.cursor() as cur:
        cur.execute(f"DELETE FROM {PUNCHES.qualified}")  # the warehouse lost them: load again
    with warehouse.connection() as conn:
        result = load_manifest(
            conn,
            table=PUNCHES,
            batch_id="dup-test",
            manifest_key=doubled,
            objects=s3,
            loaded_at=datetime.now(UTC),
        )
    assert (result.staged, result.unique, result.inserted) == (20, 10, 10)
    assert rows_in(warehouse) == 10
