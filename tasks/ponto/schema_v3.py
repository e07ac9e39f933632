"""Version 3 of the ponto tables: REPs registered at INPI, punches' DH as rendered, worker refusals kept once.

Appended to the ponto DDL (``schema.py``); idempotent, like the rest of it. Adding columns
does not touch existing rows (a nullable column, or a constant default, is a catalogue
change in PostgreSQL 11+), so the append-only triggers are not involved.
"""

from __future__ import annotations

#: The DDL of version 3 (runs after ``QUARANTINE_DDL``: it indexes ``ponto_quarantine``).
V3_DDL = """
-- Production mode: the REP-P is registered at INPI (set only with a valid INPI number).
ALTER TABLE ponto_rep ADD COLUMN IF NOT EXISTS registered boolean NOT NULL DEFAULT false;

-- The marcação and gravação DH exactly as rendered (and hashed) at insertion, offset included,
-- so a later time-zone database cannot change the AFD line or break the chain. NULL on older rows.
ALTER TABLE ponto_punch ADD COLUMN IF NOT EXISTS marked_dh varchar(24);
ALTER TABLE ponto_punch ADD COLUMN IF NOT EXISTS recorded_dh varchar(24);

-- A punch the worker refuses is kept once per reason, however often its message is redelivered.
-- (A database already holding such duplicates keeps them -- the table is append-only -- and goes
-- without the index; the insert's NOT EXISTS still keeps new ones out.)
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM ponto_quarantine WHERE stage = 'record'
        GROUP BY tenant, punch_id, reason HAVING count(*) > 1
    ) THEN
        CREATE UNIQUE INDEX IF NOT EXISTS ponto_quarantine_record_once
            ON ponto_quarantine (tenant, punch_id, reason) WHERE stage = 'record';
    END IF;
END $$;
"""
