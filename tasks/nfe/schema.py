"""The NF-e tables in the ERP's database (``ctx.rds``): created by the task package itself.

Invoice numbers are the ERP's fiscal data, not Tornado's, so they live in the ERP database and
not in the job store's migrations. :func:`ensure_schema` is idempotent and safe to run from
several processes at once.

Tables of this step (the numbering allocator, :mod:`.numbering`):

* ``nfe_series``: one row per (issuer CNPJ, model, series), the last number handed out. It is the
  serialisation point of a series: locked ``FOR UPDATE`` by every allocation, moved in the same
  transaction as the allocation row, so a rollback undoes both (a ``SEQUENCE`` would not);
* ``nfe_number``: one row per allocated number (and per emission job), with its cNF and status.
  Rows are never deleted (a deleted number would be a hole nobody inutilizes) and only their
  status may change.
"""

from __future__ import annotations

from typing import Any

from tornado_core import TaskSchema

#: Advisory lock serialising schema changes (arbitrary, fixed forever).
SCHEMA_LOCK_KEY = 7_461_727_055
SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS nfe_schema (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The head of a series: the last number handed out (first_number - 1 before the first one).
CREATE TABLE IF NOT EXISTS nfe_series (
    cnpj         varchar(14) NOT NULL,                              -- normalised, may be alphanumeric
    model        smallint NOT NULL CHECK (model IN (55, 65)),
    series       smallint NOT NULL CHECK (series BETWEEN 0 AND 999),
    first_number integer NOT NULL CHECK (first_number BETWEEN 1 AND 999999999),
    last_number  integer NOT NULL CHECK (last_number BETWEEN 0 AND 999999999),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (cnpj, model, series),
    CHECK (last_number >= first_number - 1)
);

-- One allocated number per emission job. Never deleted; only status and updated_at change.
CREATE TABLE IF NOT EXISTS nfe_number (
    job_id       text PRIMARY KEY,
    cnpj         varchar(14) NOT NULL,
    model        smallint NOT NULL,
    series       smallint NOT NULL,
    number       integer NOT NULL CHECK (number BETWEEN 1 AND 999999999),
    random_code  integer NOT NULL CHECK (random_code BETWEEN 0 AND 99999999),  -- cNF of the key
    status       text NOT NULL DEFAULT 'allocated'
                 CHECK (status IN ('allocated', 'authorized', 'rejected_burned', 'voided')),
    allocated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (cnpj, model, series, number),
    FOREIGN KEY (cnpj, model, series) REFERENCES nfe_series,
    CHECK (random_code <> number)
);
CREATE INDEX IF NOT EXISTS nfe_number_burned_idx ON nfe_number (cnpj, model, series, number)
    WHERE status = 'rejected_burned';

CREATE OR REPLACE FUNCTION nfe_number_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (NEW.job_id, NEW.cnpj, NEW.model, NEW.series, NEW.number, NEW.random_code, NEW.allocated_at)
           IS NOT DISTINCT FROM
           (OLD.job_id, OLD.cnpj, OLD.model, OLD.series, OLD.number, OLD.random_code, OLD.allocated_at)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'nfe_number rows are never deleted and only their status changes (%%)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE OR REPLACE TRIGGER nfe_number_guard
    BEFORE UPDATE OR DELETE ON nfe_number FOR EACH ROW EXECUTE FUNCTION nfe_number_guard();
CREATE OR REPLACE TRIGGER nfe_number_no_truncate
    BEFORE TRUNCATE ON nfe_number FOR EACH STATEMENT EXECUTE FUNCTION nfe_number_guard();

INSERT INTO nfe_schema (version) VALUES (%(version)s) ON CONFLICT DO NOTHING;
"""


SCHEMA = TaskSchema(version_table="nfe_schema", version=SCHEMA_VERSION, lock_key=SCHEMA_LOCK_KEY, ddl=_DDL)


def ensure_schema(conn: Any) -> None:
    """Create the nfe tables if missing (inside the caller's transaction).

    Args:
        conn: A DB-API connection to the ERP database, e.g. from ``ctx.rds.connection()``.
    """
    SCHEMA.ensure(conn)
