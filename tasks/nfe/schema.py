"""The NF-e tables in the ERP's database (``ctx.rds``): created by the task package itself.

Invoice numbers are the ERP's fiscal data, not Tornado's, so they live in the ERP database and
not in the job store's migrations. :func:`ensure_schema` is idempotent and safe to run from
several processes at once.

The numbering allocator's tables (:mod:`.numbering`):

* ``nfe_series``: one row per (issuer CNPJ, model, series), the last number handed out. It is the
  serialisation point of a series: locked ``FOR UPDATE`` by every allocation, moved in the same
  transaction as the allocation row, so a rollback undoes both (a ``SEQUENCE`` would not);
* ``nfe_number``: one row per allocated number (and per emission job), with its cNF and status.
  Rows are never deleted (a deleted number would be a hole nobody inutilizes) and only their
  status may change.

Where each document stands at SEFAZ (:mod:`.emissions`, :mod:`.events`, :mod:`.voiding`):

* ``nfe_emission``: one row per NF-e that got a number, keyed by its job: access key, the
  authority it went to, its state (``signed`` → ``sent`` → ``authorized`` / ``rejected`` /
  ``denied``, later ``cancelled``), the protocol and the object keys of its stored XML;
* ``nfe_event``: cancellation and correction letters, one row per (key, event type, sequence);
* ``nfe_voiding``: inutilização of number ranges;
* ``nfe_authority``: per (UF, environment), whether emission goes to the virtual contingency
  authority (SVC-AN / SVC-RS), since when and why, and the run of failures that may trigger it;
* ``nfe_send_window``: sends per (CNPJ, UF) in the current second (the rate limit against 656).
"""

from __future__ import annotations

from typing import Any

from tornado_core import TaskSchema

#: Advisory lock serialising schema changes (arbitrary, fixed forever).
SCHEMA_LOCK_KEY = 7_461_727_055
SCHEMA_VERSION = 2

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

-- Version 2: where each document stands at SEFAZ.
CREATE TABLE IF NOT EXISTS nfe_emission (
    job_id        text PRIMARY KEY,              -- the job of its nfe_number row
    tenant        text NOT NULL,
    access_key    varchar(44) NOT NULL UNIQUE,
    uf            char(2) NOT NULL,
    environment   smallint NOT NULL CHECK (environment IN (1, 2)),
    authority     text NOT NULL,
    state         text NOT NULL DEFAULT 'signed'
                  CHECK (state IN ('signed', 'sent', 'authorized', 'rejected', 'denied', 'cancelled')),
    receipt       varchar(15),
    protocol      varchar(17),
    status_code   smallint,
    reason        text,
    authorized_at timestamptz,
    sends         integer NOT NULL DEFAULT 0,
    artifacts     jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS nfe_emission_tenant_idx ON nfe_emission (tenant, access_key);

CREATE TABLE IF NOT EXISTS nfe_event (
    access_key    varchar(44) NOT NULL REFERENCES nfe_emission (access_key),
    event_type    integer NOT NULL CHECK (event_type IN (110110, 110111)),
    sequence      smallint NOT NULL CHECK (sequence BETWEEN 1 AND 20),
    job_id        text NOT NULL UNIQUE,
    tenant        text NOT NULL,
    state         text NOT NULL DEFAULT 'signed'
                  CHECK (state IN ('signed', 'sent', 'registered', 'rejected')),
    protocol      varchar(17),
    status_code   smallint,
    reason        text,
    registered_at timestamptz,
    artifacts     jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (access_key, event_type, sequence)
);

CREATE TABLE IF NOT EXISTS nfe_voiding (
    job_id        text PRIMARY KEY,
    tenant        text NOT NULL,
    cnpj          varchar(14) NOT NULL,
    model         smallint NOT NULL,
    series        smallint NOT NULL,
    first_number  integer NOT NULL,
    last_number   integer NOT NULL CHECK (last_number >= first_number),
    state         text NOT NULL DEFAULT 'signed' CHECK (state IN ('signed', 'sent', 'voided', 'rejected')),
    protocol      varchar(17),
    status_code   smallint,
    reason        text,
    artifacts     jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS nfe_authority (
    uf              char(2) NOT NULL,
    environment     smallint NOT NULL,
    contingency     text CHECK (contingency IN ('SVC-AN', 'SVC-RS')),
    since           timestamptz,
    reason          text,
    failures        integer NOT NULL DEFAULT 0,
    last_failure_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (uf, environment)
);

CREATE TABLE IF NOT EXISTS nfe_send_window (
    cnpj   varchar(14) NOT NULL,
    uf     char(2) NOT NULL,
    second timestamptz NOT NULL,
    sent   integer NOT NULL,
    PRIMARY KEY (cnpj, uf)
);

INSERT INTO nfe_schema (version) VALUES (%(version)s) ON CONFLICT DO NOTHING;
"""


SCHEMA = TaskSchema(version_table="nfe_schema", version=SCHEMA_VERSION, lock_key=SCHEMA_LOCK_KEY, ddl=_DDL)


def ensure_schema(conn: Any) -> None:
    """Create the nfe tables if missing (inside the caller's transaction).

    Args:
        conn: A DB-API connection to the ERP database, e.g. from ``ctx.rds.connection()``.
    """
    SCHEMA.ensure(conn)
