"""The ponto tables in the ERP's database (``ctx.rds``): created by the task package itself.

They are the ERP's data (the ARP of Portaria 671), not Tornado's, so they live in
the ERP database and not in the job store's migrations. :func:`ensure_schema` is
idempotent and safe to run from several processes at once.
"""

from __future__ import annotations

from typing import Any

from tornado_core import TaskSchema

from .events import EVENTS_DDL
from .quarantine import QUARANTINE_DDL
from .receipt_access import RECEIPT_ACCESS_DDL
from .schema_v3 import V3_DDL
from .work_schedule import WORK_SCHEDULE_DDL

#: Advisory lock serialising schema changes (arbitrary, fixed forever).
SCHEMA_LOCK_KEY = 7_461_727_671
SCHEMA_VERSION = 3

_DDL = """
CREATE TABLE IF NOT EXISTS ponto_schema (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS ponto_establishment (
    establishment_id text PRIMARY KEY,
    tenant           text NOT NULL,
    employer_type    smallint NOT NULL CHECK (employer_type IN (1, 2)),  -- 1 CNPJ, 2 CPF
    employer_id      varchar(14) NOT NULL,
    cno_caepf        varchar(14) NOT NULL DEFAULT '',
    company_name     varchar(150) NOT NULL,
    work_site        varchar(100) NOT NULL,
    time_zone        text NOT NULL,                                     -- IANA, never a fixed offset
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS ponto_rep (
    rep_id           text PRIMARY KEY,
    tenant           text NOT NULL,
    establishment_id text NOT NULL REFERENCES ponto_establishment,
    inpi_number      varchar(17) NOT NULL,                              -- REP-P registration at INPI
    developer_type   smallint NOT NULL CHECK (developer_type IN (1, 2)),
    developer_id     varchar(14) NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS ponto_rep_tenant_idx ON ponto_rep (tenant);

-- The serialisation point of a REP: its last NSR and last type-7 hash, locked per batch.
CREATE TABLE IF NOT EXISTS ponto_rep_counter (
    rep_id     text PRIMARY KEY REFERENCES ponto_rep,
    last_nsr   bigint NOT NULL DEFAULT 0 CHECK (last_nsr >= 0),
    last_hash  text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Type-7 records (punches). Append-only.
CREATE TABLE IF NOT EXISTS ponto_punch (
    rep_id         text NOT NULL REFERENCES ponto_rep,
    nsr            bigint NOT NULL,
    tenant         text NOT NULL,
    punch_id       uuid NOT NULL,                  -- the client's UUID: one punch per UUID
    cpf            char(11) NOT NULL,
    marked_at      timestamptz NOT NULL,           -- marcação
    device_time    timestamptz NOT NULL,           -- what the collector sent
    device_offset  smallint NOT NULL,              -- its UTC offset, minutes
    received_at    timestamptz NOT NULL,           -- the API's clock at receipt
    recorded_at    timestamptz NOT NULL,           -- gravação
    time_zone      text NOT NULL,                  -- the establishment's zone at gravação
    collector      smallint NOT NULL,
    offline        boolean NOT NULL,
    latitude       double precision,
    longitude      double precision,
    accuracy_m     real,
    hash           char(64) NOT NULL,
    prev_hash      text NOT NULL,
    job_id         text NOT NULL,
    PRIMARY KEY (rep_id, nsr),
    UNIQUE (tenant, punch_id)
);

-- Other ARP records sharing the REP's NSR sequence (type 2 employer, 5 employee). Append-only.
CREATE TABLE IF NOT EXISTS ponto_event (
    rep_id      text NOT NULL REFERENCES ponto_rep,
    nsr         bigint NOT NULL,
    record_type smallint NOT NULL CHECK (record_type IN (2, 4, 5, 6)),
    recorded_at timestamptz NOT NULL,
    time_zone   text NOT NULL,
    fields      jsonb NOT NULL,
    PRIMARY KEY (rep_id, nsr)
);

-- Redshift feed: last NSR loaded per REP, and the batches (their NSR bounds) in flight.
CREATE TABLE IF NOT EXISTS ponto_export_watermark (
    rep_id     text PRIMARY KEY,
    last_nsr   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS ponto_export_batch (
    batch_id   text PRIMARY KEY,
    bounds     jsonb NOT NULL,                     -- {rep_id: [after_nsr, up_to_nsr]}
    rows       integer NOT NULL,
    state      text NOT NULL CHECK (state IN ('pending', 'loaded')),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    loaded_at  timestamptz
);

CREATE OR REPLACE FUNCTION ponto_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%% is append-only: corrections are new records', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER ponto_punch_append_only
    BEFORE UPDATE OR DELETE ON ponto_punch FOR EACH ROW EXECUTE FUNCTION ponto_append_only();
CREATE OR REPLACE TRIGGER ponto_punch_no_truncate
    BEFORE TRUNCATE ON ponto_punch FOR EACH STATEMENT EXECUTE FUNCTION ponto_append_only();
CREATE OR REPLACE TRIGGER ponto_event_append_only
    BEFORE UPDATE OR DELETE ON ponto_event FOR EACH ROW EXECUTE FUNCTION ponto_append_only();
CREATE OR REPLACE TRIGGER ponto_event_no_truncate
    BEFORE TRUNCATE ON ponto_event FOR EACH STATEMENT EXECUTE FUNCTION ponto_append_only();

INSERT INTO ponto_schema (version) VALUES (%(version)s) ON CONFLICT DO NOTHING;
"""


SCHEMA = TaskSchema(
    version_table="ponto_schema",
    version=SCHEMA_VERSION,
    lock_key=SCHEMA_LOCK_KEY,
    ddl=_DDL + QUARANTINE_DDL + EVENTS_DDL + V3_DDL + WORK_SCHEDULE_DDL + RECEIPT_ACCESS_DDL,
)


def ensure_schema(conn: Any) -> None:
    """Create the ponto tables if missing (inside the caller's transaction).

    Args:
        conn: A DB-API connection to the ERP database, e.g. from ``ctx.rds.connection()``.
    """
    SCHEMA.ensure(conn)
