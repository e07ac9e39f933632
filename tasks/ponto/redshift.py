"""Amazon Redshift: every Redshift SQL statement Tornado runs, and its local emulation.

One dialect seam with two variants, picked from the server's ``version()``:

* :class:`RedshiftDialect` -- real Redshift: ``DISTKEY``/``SORTKEY`` DDL and
  ``COPY ... FROM 's3://.../manifest' IAM_ROLE ... MANIFEST FORMAT AS CSV GZIP``;
* :class:`PostgresEmulation` -- the local stack's PostgreSQL: plain DDL, and COPY
  from a manifest emulated by streaming each S3 part (gunzipped) into
  ``COPY ... FROM STDIN`` (Redshift itself refuses ``FROM STDIN``).

:func:`load_manifest` is the staged load, in the caller's transaction: temp stage,
COPY, dedupe (Redshift does not enforce keys), ``MERGE``, audit row. A batch
whose audit row exists is skipped, so a retried load is a no-op.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from tornado_core.errors import ObjectStoreError, TornadoError
from tornado_core.ports.objects import ObjectStorePort

STAGE = "tornado_stage"
DEDUPED = "tornado_stage_dedup"
AUDIT = "tornado_load_audit"


class LoadFailed(TornadoError):
    """COPY could not load the batch (missing or malformed part); nothing was loaded."""


@dataclass(frozen=True)
class Column:
    """A warehouse column: its name and its type (spelled the same in Redshift and PostgreSQL)."""

    name: str
    type: str


@dataclass(frozen=True, kw_only=True)
class WarehouseTable:
    """A target table: columns, the key rows are deduplicated on, distribution and sort keys."""

    schema: str
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    dist_key: str | None = None
    sort_key: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        """``schema.name``."""
        return f"{self.schema}.{self.name}"

    @property
    def names(self) -> list[str]:
        """Column names in order."""
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class LoadResult:
    """What one load did."""

    batch_id: str
    skipped: bool
    staged: int = 0
    unique: int = 0
    inserted: int = 0


class Dialect(Protocol):
    """What differs between Redshift and the local emulation."""

    name: str

    def table_ddl(self, table: WarehouseTable) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for ``table``."""

    def copy(
        self, cur: Any, table: WarehouseTable, manifest_key: str, objects: ObjectStorePort, **aws: Any
    ) -> None:
        """COPY every part named by the manifest into :data:`STAGE`."""


def _columns_ddl(table: WarehouseTable) -> str:
    return ", ".join(f"{c.name} {c.type}" for c in table.columns)


class RedshiftDialect:
    """Real Amazon Redshift."""

    name = "redshift"

    def table_ddl(self, table: WarehouseTable) -> str:
        """DDL with ``DISTKEY``/``SORTKEY`` (no PRIMARY KEY: Redshift would not enforce it anyway)."""
        dist = f" DISTSTYLE KEY DISTKEY ({table.dist_key})" if table.dist_key else " DISTSTYLE AUTO"
        sort = f" COMPOUND SORTKEY ({', '.join(table.sort_key)})" if table.sort_key else ""
        return f"CREATE TABLE IF NOT EXISTS {table.qualified} ({_columns_ddl(table)}){dist}{sort}"

    def copy(
        self, cur: Any, table: WarehouseTable, manifest_key: str, objects: ObjectStorePort, **aws: Any
    ) -> None:
        """``COPY ... MANIFEST`` straight from S3 (``aws``: ``iam_role``, ``region``)."""
        if not aws.get("iam_role"):
            raise LoadFailed("COPY into Redshift needs an IAM role ARN (iam_role)")
        region = " REGION %(region)s" if aws.get("region") else ""
        cur.execute(
            f"COPY {STAGE} ({', '.join(table.names)}) FROM %(url)s IAM_ROLE %(role)s MANIFEST"
            f" FORMAT AS CSV GZIP TIMEFORMAT 'auto' EMPTYASNULL{region} MAXERROR 0",
            {
                "url": f"s3://{objects.bucket}/{manifest_key}",
                "role": aws["iam_role"],
                "region": aws.get("region"),
            },
        )


class PostgresEmulation:
    """The local stack's stand-in: PostgreSQL, COPY-from-manifest emulated from the object store."""

    name = "postgres"

    def table_ddl(self, table: WarehouseTable) -> str:
        """Plain DDL, also without a key, so deduplication is ours as on Redshift."""
        return f"CREATE TABLE IF NOT EXISTS {table.qualified} ({_columns_ddl(table)})"

    def copy(
        self, cur: Any, table: WarehouseTable, manifest_key: str, objects: ObjectStorePort, **aws: Any
    ) -> None:
        """Stream each manifest entry's gzip CSV into ``COPY ... FROM STDIN``.

        Raises:
            LoadFailed: The manifest or a mandatory part is missing or unreadable.
        """
        statement = f"COPY {STAGE} ({', '.join(table.names)}) FROM STDIN WITH (FORMAT csv)"
        for key, mandatory in _manifest_entries(objects, manifest_key):
            try:
                data = objects.get(key)
            except ObjectStoreError as exc:
                if mandatory:
                    raise LoadFailed(f"COPY: mandatory part {key} is unavailable: {exc}") from exc
                continue
            try:
                cur.copy_expert(statement, gzip.GzipFile(fileobj=io.BytesIO(data)))
            except (OSError, EOFError) as exc:
                raise LoadFailed(f"COPY: part {key} is not gzip CSV: {exc}") from exc


def _manifest_entries(objects: ObjectStorePort, manifest_key: str) -> list[tuple[str, bool]]:
    try:
        manifest = json.loads(objects.get(manifest_key))
    except (ObjectStoreError, ValueError) as exc:
        raise LoadFailed(f"COPY: manifest {manifest_key} is unavailable: {exc}") from exc
    prefix = f"s3://{objects.bucket}/"
    entries = []
    for entry in manifest.get("entries", []):
        url = str(entry.get("url", ""))
        if not url.startswith(prefix):
            raise LoadFailed(f"COPY: manifest entry {url!r} is not in bucket {objects.bucket}")
        entries.append((url[len(prefix) :], bool(entry.get("mandatory", False))))
    return entries


def manifest(bucket: str, keys: list[str]) -> bytes:
    """A COPY manifest naming every part as mandatory."""
    entries = [{"url": f"s3://{bucket}/{key}", "mandatory": True} for key in keys]
    return json.dumps({"entries": entries}, indent=1).encode()


def detect_dialect(cur: Any) -> Dialect:
    """:class:`RedshiftDialect` if the server says it is Redshift, else :class:`PostgresEmulation`."""
    cur.execute("SELECT version()")
    row = cur.fetchone()
    return RedshiftDialect() if row and "redshift" in str(row[0]).lower() else PostgresEmulation()


def _audit_ddl(schema: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {schema}.{AUDIT} (batch_id VARCHAR(64) NOT NULL,"
        " target VARCHAR(256) NOT NULL, rows_staged BIGINT NOT NULL, rows_unique BIGINT NOT NULL,"
        " rows_inserted BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL)"
    )


def _dedupe_sql(table: WarehouseTable) -> str:
    cols = ", ".join(table.names)
    key = ", ".join(table.key)
    return (
        f"CREATE TEMP TABLE {DEDUPED} AS SELECT {cols} FROM ("
        f"SELECT {cols}, ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {key}) AS tornado_rn"
        f" FROM {STAGE}) AS ranked WHERE tornado_rn = 1"
    )


def _new_rows_sql(table: WarehouseTable) -> str:
    match = " AND ".join(f"t.{k} = s.{k}" for k in table.key)
    return (
        f"SELECT count(*) FROM {DEDUPED} s WHERE NOT EXISTS (SELECT 1 FROM {table.qualified} t WHERE {match})"
    )


def _merge_sql(table: WarehouseTable) -> str:
    """Redshift's MERGE (no target alias; both clauses); PostgreSQL 15 runs it as is."""
    match = " AND ".join(f"{table.name}.{k} = s.{k}" for k in table.key)
    updates = ", ".join(f"{c} = s.{c}" for c in table.names if c not in table.key)
    values = ", ".join(f"s.{c}" for c in table.names)
    return (
        f"MERGE INTO {table.qualified} USING {DEDUPED} s ON {match}"
        f" WHEN MATCHED THEN UPDATE SET {updates}"
        f" WHEN NOT MATCHED THEN INSERT ({', '.join(table.names)}) VALUES ({values})"
    )


def _count(cur: Any, sql: str) -> int:
    cur.execute(sql)
    row = cur.fetchone()
    return int(row[0]) if row else 0


def load_manifest(
    conn: Any,
    *,
    table: WarehouseTable,
    batch_id: str,
    manifest_key: str,
    objects: ObjectStorePort,
    loaded_at: datetime,
    iam_role: str | None = None,
    region: str | None = None,
) -> LoadResult:
    """Load one batch: stage, COPY, dedupe, MERGE, audit -- in the caller's transaction.

    Args:
        conn: A DB-API connection to the warehouse, in one transaction (commit is the caller's).
        table: The target table.
        batch_id: Idempotency key of the batch; a batch already audited is skipped.
        manifest_key: Object key of the COPY manifest.
        objects: The object store holding the manifest and its parts.
        loaded_at: Time written in the audit row.
        iam_role: Role COPY assumes to read S3 (real Redshift only).
        region: The bucket's region (real Redshift only).

    Raises:
        LoadFailed: COPY failed; the caller's transaction must roll back.
    """
    with conn.cursor() as cur:
        dialect = detect_dialect(cur)
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {table.schema}")
        cur.execute(dialect.table_ddl(table))
        cur.execute(_audit_ddl(table.schema))
        cur.execute(f"LOCK {table.schema}.{AUDIT}")  # one loader at a time (Redshift serialises COPY anyway)
        cur.execute(
            f"SELECT 1 FROM {table.schema}.{AUDIT} WHERE batch_id = %s AND target = %s",
            (batch_id, table.qualified),
        )
        if cur.fetchone() is not None:
            return LoadResult(batch_id, skipped=True)
        for temp in (STAGE, DEDUPED):
            cur.execute(f"DROP TABLE IF EXISTS {temp}")
        cur.execute(f"CREATE TEMP TABLE {STAGE} (LIKE {table.qualified})")
        dialect.copy(cur, table, manifest_key, objects, iam_role=iam_role, region=region)
        cur.execute(_dedupe_sql(table))
        staged = _count(cur, f"SELECT count(*) FROM {STAGE}")
        unique = _count(cur, f"SELECT count(*) FROM {DEDUPED}")
        inserted = _count(cur, _new_rows_sql(table))
        cur.execute(_merge_sql(table))
        cur.execute(
            f"INSERT INTO {table.schema}.{AUDIT} (batch_id, target, rows_staged, rows_unique, rows_inserted,"
            " loaded_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                batch_id,
                table.qualified,
                staged,
                unique,
                inserted,
                loaded_at.astimezone(UTC).replace(tzinfo=None),
            ),
        )
        for temp in (STAGE, DEDUPED):
            cur.execute(f"DROP TABLE {temp}")
    return LoadResult(batch_id, skipped=False, staged=staged, unique=unique, inserted=inserted)
