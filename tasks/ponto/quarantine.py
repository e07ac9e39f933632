"""The quarantine: an append-only store of every punch refused for good, so nothing a worker did is lost.

A punch the API refuses permanently (too old, too far ahead, malformed, unknown REP) is
written here, raw, with its reason, in the request that answers the refusal; a punch the
``ponto.record`` worker cannot record (its REP vanished or changed hands) is written in the
batch's transaction, once per punch id and reason: a redelivered batch (or the punch sent
again) does not quarantine it twice (``ponto_quarantine_record_once``, ``schema_v3``). Rows are
never updated or deleted (a trigger refuses it); the employer lists them through
``GET /v1/punches/quarantine`` or ``tornado ponto quarantine list``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Appended to the ponto DDL (``tasks/ponto/schema.py``, version 2). Reuses ``ponto_append_only()``.
QUARANTINE_DDL = """
-- Punches refused for good, kept raw with their reason. Append-only.
CREATE TABLE IF NOT EXISTS ponto_quarantine (
    quarantine_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant         text NOT NULL,
    stage          text NOT NULL CHECK (stage IN ('intake', 'record')),
    reason         text NOT NULL,                  -- the error code (time_too_old, time_in_future, ...)
    message        text NOT NULL,
    punch_id       text,                           -- the client's id as sent, if any
    rep            text,                           -- the REP named by the punch, as sent
    collector      text,                           -- the collector kind (mobile, browser, ... other)
    user_agent     text NOT NULL DEFAULT '',       -- the sending device's User-Agent
    remote_addr    text NOT NULL DEFAULT '',
    payload        text NOT NULL,                  -- the punch exactly as received, as ASCII JSON (NUL and
                                                   -- unpaired surrogates escaped: nothing sent is lost)
    received_at    timestamptz NOT NULL,           -- the API's clock at receipt
    quarantined_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    job_id         text                            -- the ponto.record job, for stage 'record'
);
CREATE INDEX IF NOT EXISTS ponto_quarantine_tenant_idx ON ponto_quarantine (tenant, quarantine_id);
CREATE OR REPLACE TRIGGER ponto_quarantine_append_only
    BEFORE UPDATE OR DELETE ON ponto_quarantine FOR EACH ROW EXECUTE FUNCTION ponto_append_only();
CREATE OR REPLACE TRIGGER ponto_quarantine_no_truncate
    BEFORE TRUNCATE ON ponto_quarantine FOR EACH STATEMENT EXECUTE FUNCTION ponto_append_only();
"""

_INSERT = """
INSERT INTO ponto_quarantine (tenant, stage, reason, message, punch_id, rep, collector, user_agent,
    remote_addr, payload, received_at, job_id)
SELECT %(tenant)s, %(stage)s, u.reason, u.message, u.punch_id, u.rep, u.collector, %(agent)s, %(addr)s,
    u.payload, u.received_at, %(job_id)s
FROM unnest(%(reason)s::text[], %(message)s::text[], %(pid)s::text[], %(rep)s::text[],
    %(collector)s::text[], %(payload)s::text[], %(received)s::timestamptz[])
    AS u (reason, message, punch_id, rep, collector, payload, received_at)
WHERE %(stage)s <> 'record' OR NOT EXISTS (
    SELECT 1 FROM ponto_quarantine q
    WHERE q.tenant = %(tenant)s AND q.stage = 'record' AND q.punch_id = u.punch_id AND q.reason = u.reason
)
ON CONFLICT DO NOTHING
"""

_LIST = """
SELECT quarantine_id, stage, reason, message, punch_id, rep, collector, user_agent, remote_addr, payload,
    received_at, quarantined_at, job_id
FROM ponto_quarantine
WHERE tenant = %s AND quarantine_id < %s
ORDER BY quarantine_id DESC
LIMIT %s
"""

_COLUMNS = (
    "quarantine_id",
    "stage",
    "reason",
    "message",
    "punch_id",
    "rep",
    "collector",
    "user_agent",
    "remote_addr",
    "payload",
    "received_at",
    "quarantined_at",
    "job_id",
)


@dataclass(frozen=True)
class Refusal:
    """One punch refused for good, as it will be kept."""

    reason: str
    message: str
    payload: Any
    received_at: datetime
    punch_id: str | None = None

    @property
    def rep(self) -> str | None:
        """The REP the punch names, if it names one."""
        return _text(self.payload, "rep")

    @property
    def collector(self) -> str | None:
        """The collector kind (or AFD code) the punch names, if any."""
        return _text(self.payload, "collector")


@dataclass(frozen=True)
class Sender:
    """Who sent the refused punches: the device as the API saw it."""

    user_agent: str = ""
    remote_addr: str = ""


def _text(payload: Any, key: str) -> str | None:
    value = payload.get(key) if isinstance(payload, dict) else None
    return None if value is None else str(value)[:200]


def quarantine(
    conn: Any,
    *,
    tenant: str,
    refusals: Sequence[Refusal],
    stage: str = "intake",
    sender: Sender | None = None,
    job_id: str | None = None,
) -> int:
    """Append refused punches to the quarantine, in the caller's transaction.

    Args:
        conn: DB-API connection to the ERP database.
        tenant: Whose punches they are.
        refusals: The refused punches.
        stage: ``intake`` (refused by the API) or ``record`` (refused by ``ponto.record``).
        sender: The sending device, for intake refusals.
        job_id: The recording job, for record refusals.

    Returns:
        How many rows were written (a worker refusal already kept is not written again).
    """
    if not refusals:
        return 0
    sender = sender or Sender()
    params: dict[str, Any] = {
        "tenant": tenant,
        "stage": stage,
        "agent": storable(sender.user_agent[:500]),
        "addr": storable(sender.remote_addr[:100]),
        "job_id": job_id,
        "reason": [r.reason for r in refusals],
        "message": [storable(r.message) for r in refusals],
        "pid": [storable(r.punch_id) for r in refusals],
        "rep": [storable(r.rep) for r in refusals],
        "collector": [storable(r.collector) for r in refusals],
        "payload": [json.dumps(r.payload, ensure_ascii=True) for r in refusals],
        "received": [r.received_at for r in refusals],
    }
    with conn.cursor() as cur:
        cur.execute(_INSERT, params)
        return int(cur.rowcount)


def list_quarantined(
    conn: Any, tenant: str, *, limit: int = 50, before: int | None = None
) -> list[dict[str, Any]]:
    """The tenant's quarantined punches, newest first (empty if the table does not exist yet).

    Args:
        conn: DB-API connection to the ERP database.
        tenant: Whose punches.
        limit: Rows at most.
        before: Only rows with a smaller ``quarantine_id`` (the next page).
    """
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('ponto_quarantine') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return []
        cur.execute(_LIST, (tenant, before if before is not None else 2**63 - 1, limit))
        rows = cur.fetchall()
    return [_entry(row) for row in rows]


def storable(value: str | None) -> str | None:
    """Text PostgreSQL can keep and JSON can carry: NUL and unpaired surrogates written as escapes."""
    if value is None:
        return None
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _readable(value: Any) -> Any:
    """A stored payload with every string made :func:`storable`, so the listing can be sent as JSON."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, list):
        return [_readable(item) for item in value]
    if isinstance(value, dict):
        return {storable(str(key)): _readable(item) for key, item in value.items()}
    return value


def _entry(row: Sequence[Any]) -> dict[str, Any]:
    entry = dict(zip(_COLUMNS, row, strict=True))
    entry["payload"] = _readable(json.loads(entry["payload"]))
    for key in ("received_at", "quarantined_at"):
        entry[key] = entry[key].isoformat()
    entry["quarantine_id"] = int(entry["quarantine_id"])
    return entry
