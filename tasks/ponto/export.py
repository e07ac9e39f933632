"""The Redshift feed of punches: watermark -> gzip CSV parts + manifest in S3 -> staged load.

1. Plan (ERP database): the batch's NSR bounds per REP, from the watermark up to
   what is committed (``max_rows`` at most), stored under the batch id so that a
   retried job reloads exactly the same rows.
2. Extract those rows with a server-side cursor into gzip CSV parts, then the manifest.
3. Load (warehouse, one transaction): stage, COPY, dedupe, MERGE, audit row
   (:func:`tornado_tasks.ponto.redshift.load_manifest`).
4. Only after that commit: advance the watermark and mark the batch loaded.

A crash between 3 and 4 re-runs 3 as a no-op (audited batch); a new batch over the
same rows inserts nothing (MERGE on the key). A failed COPY rolls 3 back and
leaves the watermark where it was.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tornado_core.ports.database import DatabasePort
from tornado_core.ports.objects import ObjectStorePort

from .afd import local_dh
from .models import ExportPayload
from .redshift import Column, LoadResult, WarehouseTable, load_manifest, manifest

PUNCHES = WarehouseTable(
    schema="ponto",
    name="punches",
    columns=(
        Column("tenant", "VARCHAR(64)"),
        Column("rep_id", "VARCHAR(64)"),
        Column("nsr", "BIGINT"),
        Column("punch_id", "CHAR(36)"),
        Column("cpf", "CHAR(11)"),
        Column("marked_at", "TIMESTAMPTZ"),
        Column("marked_local", "VARCHAR(24)"),
        Column("recorded_at", "TIMESTAMPTZ"),
        Column("recorded_local", "VARCHAR(24)"),
        Column("time_zone", "VARCHAR(64)"),
        Column("offline", "BOOLEAN"),
        Column("collector", "SMALLINT"),
        Column("latitude", "DOUBLE PRECISION"),
        Column("longitude", "DOUBLE PRECISION"),
        Column("hash", "CHAR(64)"),
        Column("batch_id", "VARCHAR(64)"),
    ),
    key=("rep_id", "nsr"),
    dist_key="rep_id",
    sort_key=("recorded_at",),
)

_PLAN = """
WITH todo AS (
    SELECT p.rep_id, p.nsr, COALESCE(w.last_nsr, 0) AS after
    FROM ponto_rep_counter c
    JOIN ponto_punch p ON p.rep_id = c.rep_id AND p.nsr <= c.last_nsr
    LEFT JOIN ponto_export_watermark w ON w.rep_id = c.rep_id
    WHERE p.nsr > COALESCE(w.last_nsr, 0)
    ORDER BY p.recorded_at, p.rep_id, p.nsr
    LIMIT %s
)
SELECT rep_id, min(after), max(nsr), count(*) FROM todo GROUP BY rep_id
"""

_EXTRACT = """
SELECT p.tenant, p.rep_id, p.nsr, p.punch_id::text, p.cpf, p.marked_at, p.recorded_at, p.time_zone,
       p.offline, p.collector, p.latitude, p.longitude, p.hash
FROM ponto_punch p
JOIN unnest(%s::text[], %s::bigint[], %s::bigint[]) AS b (rep_id, after, upto)
  ON p.rep_id = b.rep_id AND p.nsr > b.after AND p.nsr <= b.upto
ORDER BY p.rep_id, p.nsr
"""

_ADVANCE = """
INSERT INTO ponto_export_watermark AS w (rep_id, last_nsr)
SELECT * FROM unnest(%s::text[], %s::bigint[])
ON CONFLICT (rep_id) DO UPDATE
SET last_nsr = GREATEST(w.last_nsr, EXCLUDED.last_nsr), updated_at = clock_timestamp()
"""


@dataclass(frozen=True)
class Batch:
    """A planned batch: NSR bounds ``(after, up_to]`` per REP and its row count."""

    batch_id: str
    bounds: dict[str, tuple[int, int]]
    rows: int


def plan_batch(conn: Any, batch_id: str, max_rows: int) -> Batch:
    """The batch's bounds: the stored ones if this batch was planned before, else new ones."""
    with conn.cursor() as cur:
        cur.execute("SELECT bounds, rows FROM ponto_export_batch WHERE batch_id = %s", (batch_id,))
        found = cur.fetchone()
        if found is not None:
            return Batch(batch_id, {k: (int(v[0]), int(v[1])) for k, v in found[0].items()}, int(found[1]))
        cur.execute(_PLAN, (max_rows,))
        rows = cur.fetchall()
        bounds = {str(r[0]): (int(r[1]), int(r[2])) for r in rows}
        total = sum(int(r[3]) for r in rows)
        cur.execute(
            "INSERT INTO ponto_export_batch (batch_id, bounds, rows, state) VALUES (%s, %s, %s, 'pending')",
            (batch_id, json.dumps(bounds), total),
        )
    return Batch(batch_id, bounds, total)


def _csv_row(row: Any, batch_id: str) -> list[Any]:
    tenant, rep, nsr, pid, cpf, marked, recorded, zone, offline, collector, lat, lon, digest = row
    return [
        tenant,
        rep,
        nsr,
        pid,
        cpf,
        marked.astimezone(UTC).isoformat(sep=" "),
        local_dh(marked, zone),
        recorded.astimezone(UTC).isoformat(sep=" "),
        local_dh(recorded, zone),
        zone,
        "t" if offline else "f",
        collector,
        "" if lat is None else lat,
        "" if lon is None else lon,
        digest,
        batch_id,
    ]


def _parts(rows: Iterator[Any], batch_id: str, rows_per_part: int) -> Iterator[bytes]:
    buffer, count = io.StringIO(), 0
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(_csv_row(row, batch_id))
        count += 1
        if count == rows_per_part:
            yield gzip.compress(buffer.getvalue().encode(), mtime=0)
            buffer.seek(0)
            buffer.truncate()
            count = 0
    if count:
        yield gzip.compress(buffer.getvalue().encode(), mtime=0)


def write_parts(conn: Any, s3: ObjectStorePort, batch: Batch, rows_per_part: int) -> str:
    """Extract the batch into gzip CSV parts and a manifest; returns the manifest's key."""
    prefix = f"ponto/redshift/batch={batch.batch_id}"
    reps = sorted(batch.bounds)
    keys: list[str] = []
    with conn.cursor(name=f"ponto_export_{len(reps)}") as cur:
        cur.itersize = 10_000
        cur.execute(_EXTRACT, (reps, [batch.bounds[r][0] for r in reps], [batch.bounds[r][1] for r in reps]))
        for index, part in enumerate(_parts(iter(cur), batch.batch_id, rows_per_part)):
            key = f"{prefix}/part-{index:05d}.csv.gz"
            s3.put(key, part, content_type="application/gzip")
            keys.append(key)
    manifest_key = f"{prefix}/manifest.json"
    s3.put(manifest_key, manifest(s3.bucket, keys), content_type="application/json")
    return manifest_key


def finish_batch(conn: Any, batch: Batch) -> None:
    """After the warehouse committed: advance the watermark and mark the batch loaded."""
    reps = sorted(batch.bounds)
    with conn.cursor() as cur:
        cur.execute(_ADVANCE, (reps, [batch.bounds[r][1] for r in reps]))
        cur.execute(
            "UPDATE ponto_export_batch SET state = 'loaded', loaded_at = clock_timestamp()"
            " WHERE batch_id = %s",
            (batch.batch_id,),
        )


def export_punches(
    *, rds: DatabasePort, warehouse: DatabasePort, s3: ObjectStorePort, batch_id: str, options: ExportPayload
) -> dict[str, Any]:
    """Run one export batch end to end (see the module docstring); returns its summary."""
    with rds.connection() as conn:
        batch = plan_batch(conn, batch_id, options.max_rows)
    result = LoadResult(batch_id, skipped=False)
    if batch.rows:
        with rds.connection() as conn:
            manifest_key = write_parts(conn, s3, batch, options.rows_per_part)
        with warehouse.connection() as conn:
            result = load_manifest(
                conn,
                table=PUNCHES,
                batch_id=batch_id,
                manifest_key=manifest_key,
                objects=s3,
                loaded_at=datetime.now(UTC),
                iam_role=options.iam_role,
                region=options.region,
            )
    with rds.connection() as conn:
        finish_batch(conn, batch)
    return {
        "batch_id": batch_id,
        "rows": batch.rows,
        "reps": len(batch.bounds),
        "skipped": result.skipped,
        "staged": result.staged,
        "inserted": result.inserted,
    }
