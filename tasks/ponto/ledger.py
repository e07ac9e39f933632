"""The ARP ledger: appending records to REPs with gap-free NSRs and the type-7 hash chain.

Every append runs inside the caller's transaction and follows one protocol:

1. lock the counter rows of the REPs involved, in ``rep_id`` order (``SELECT ... FOR
   UPDATE``; the order rules out deadlocks between batches touching several REPs);
2. read the clock *after* the locks, so gravação times grow with the NSR;
3. drop punches already recorded (same tenant and client UUID) -- they keep their NSR;
4. number the new records from the counter, chain the type-7 hashes, insert;
5. ``UPDATE ... RETURNING`` the counters to the last NSR and hash.

A rollback undoes the counter with the rows, so NSRs never skip (a sequence would).
Each punch's marcação and gravação DH are rendered here, in Python, and stored as the text
that was hashed (``marked_dh``, ``recorded_dh``), in the same batched insert.
A punch's marcação is never after its gravação (:func:`marcacao`); a punch that cannot be
recorded goes to the quarantine in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from tornado_core.errors import Retry

from .afd import chain_hash, format_dh, punch_fields_text
from .models import QueuedPunch
from .quarantine import Refusal, quarantine

_LOCK = """
SELECT c.rep_id, c.last_nsr, c.last_hash, r.tenant, e.time_zone
FROM ponto_rep_counter c
JOIN ponto_rep r ON r.rep_id = c.rep_id
JOIN ponto_establishment e ON e.establishment_id = r.establishment_id
WHERE c.rep_id = ANY(%s)
ORDER BY c.rep_id
FOR UPDATE OF c
"""

#: One index probe per UUID of the batch, whatever the planner knows of the table: the ``LIMIT 1``
#: keeps the lateral lookup a per-UUID probe of ``(tenant, punch_id)``. Written as ``punch_id = ANY``,
#: a table without statistics yet (a new ERP database filling up) was read by tenant alone, every
#: punch of the tenant for each batch.
_EXISTING = """
SELECT c.now, p.punch_id::text, p.rep_id, p.nsr
FROM (SELECT clock_timestamp() AS now) AS c
LEFT JOIN (
    unnest(%(ids)s::uuid[]) AS i (punch_id)
    CROSS JOIN LATERAL (
        SELECT p.punch_id, p.rep_id, p.nsr FROM ponto_punch p
        WHERE p.tenant = %(tenant)s AND p.punch_id = i.punch_id
        LIMIT 1
    ) AS p
) ON true
"""

#: The batch travels as one JSON array of rows (``_ROW_FIELDS`` order): serialised by orjson, read
#: by ``json_to_recordset``, it costs a fraction of what adapting eighteen typed arrays did.
_INSERT_PUNCHES = """
WITH ins AS (
    INSERT INTO ponto_punch (rep_id, nsr, tenant, punch_id, cpf, marked_at, device_time, device_offset,
        received_at, recorded_at, time_zone, collector, offline, latitude, longitude, accuracy_m,
        hash, prev_hash, job_id, marked_dh, recorded_dh)
    SELECT u.rep, u.nsr, %(tenant)s, u.pid, u.cpf, u.marked, u.device, u."offset", u.received, %(now)s,
        u.tz, u.collector, u.offline, u.lat, u.lon, u.acc, u.hash, u.prev, %(job_id)s, u.marked_dh,
        u.recorded_dh
    FROM json_to_recordset(%(rows)s::json) AS u (rep text, nsr bigint, pid uuid, cpf text,
        marked timestamptz, device timestamptz, "offset" smallint, received timestamptz, tz text,
        collector smallint, offline boolean, lat float8, lon float8, acc real, hash text, prev text,
        marked_dh text, recorded_dh text)
    ON CONFLICT (tenant, punch_id) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM ins
"""

_INSERT_EVENT = """
INSERT INTO ponto_event (rep_id, nsr, record_type, recorded_at, time_zone, fields)
VALUES (%s, %s, %s, %s, %s, %s)
"""

_ADVANCE = """
UPDATE ponto_rep_counter c
SET last_nsr = u.last_nsr, last_hash = u.last_hash, updated_at = %(now)s
FROM unnest(%(rep)s::text[], %(nsr)s::bigint[], %(hash)s::text[]) AS u (rep_id, last_nsr, last_hash)
WHERE c.rep_id = u.rep_id AND c.last_nsr < u.last_nsr
RETURNING c.rep_id, c.last_nsr
"""


@dataclass
class RepHead:
    """A locked REP: its owner, zone and the head of its sequence and chain."""

    rep_id: str
    tenant: str
    time_zone: str
    last_nsr: int
    last_hash: str


@dataclass(frozen=True)
class PunchOutcome:
    """What happened to one punch of a batch."""

    punch_id: str
    status: str  # "recorded", "duplicate" or "rejected"
    nsr: int | None = None
    rep: str | None = None
    reason: str | None = None
    recorded_at: datetime | None = None  # gravação of a punch recorded by this call (the database's clock)

    def to_json(self) -> dict[str, Any]:
        """The job result entry."""
        data: dict[str, Any] = {"id": self.punch_id, "status": self.status, "rep": self.rep, "nsr": self.nsr}
        if self.reason:
            data["reason"] = self.reason
        return data


def lock_reps(cur: Any, rep_ids: Sequence[str]) -> dict[str, RepHead]:
    """Lock the counters of ``rep_ids`` in id order; REPs that do not exist are left out."""
    cur.execute(_LOCK, (sorted(set(rep_ids)),))
    return {row[0]: RepHead(row[0], row[3], row[4], int(row[1]), str(row[2])) for row in cur.fetchall()}


def advance(cur: Any, heads: Sequence[RepHead], now: datetime) -> None:
    """Write the new heads of the counters (``UPDATE ... RETURNING``).

    Raises:
        Retry: A counter did not move as expected (never seen; would mean a broken lock).
    """
    if not heads:
        return
    cur.execute(
        _ADVANCE,
        {
            "now": now,
            "rep": [h.rep_id for h in heads],
            "nsr": [h.last_nsr for h in heads],
            "hash": [h.last_hash for h in heads],
        },
    )
    moved = {row[0]: int(row[1]) for row in cur.fetchall()}
    if any(moved.get(h.rep_id) != h.last_nsr for h in heads):
        raise Retry("a REP counter did not advance as locked; retrying the batch", delay=1.0)


def record_punches(
    conn: Any, *, tenant: str, job_id: str, punches: Sequence[QueuedPunch]
) -> list[PunchOutcome]:
    """Record a batch of punches in the caller's transaction.

    Args:
        conn: DB-API connection to the ERP database (one transaction).
        tenant: The tenant that submitted the batch.
        job_id: The job recording it (kept on each row).
        punches: The batch, in arrival order.

    Returns:
        One outcome per punch, in order: new punches get the next NSRs of their REP,
        punches recorded before (same UUID) report their original NSR.

    Raises:
        Retry: The same UUID was being recorded concurrently under another REP; the
            whole transaction must roll back (so no NSR is skipped) and run again.
    """
    with conn.cursor() as cur:
        heads = lock_reps(cur, [p.rep for p in punches])
        cur.execute(_EXISTING, {"tenant": tenant, "ids": [str(p.id) for p in punches]})
        rows = cur.fetchall()
        now: datetime = rows[0][0]
        known = {row[1]: (row[2], int(row[3])) for row in rows if row[1] is not None}
        outcomes, fresh = _number(punches, tenant, heads, known, now)
        if fresh:
            _insert(cur, tenant, job_id, fresh, now)
            advance(cur, [heads[rep] for rep in sorted({row["rep"] for row in fresh})], now)
    _quarantine_rejected(conn, tenant, job_id, punches, outcomes)
    return outcomes


def marcacao(punch: QueuedPunch, recorded_at: datetime) -> datetime:
    """The marcação of a punch: never later than its receipt by the API, nor than its gravação.

    Online punches are marked at the API's receipt; offline punches at the device's time, unless
    the device's clock is ahead: a punch cannot have been made after the API received it, so its
    marcação is then the receipt (the device's own time and offset stay in ``device_time`` and
    ``device_offset``). Gravação caps it too, in case the API's clock is ahead of the database's.

    Args:
        punch: The queued punch.
        recorded_at: Its gravação (the database's clock under the REP's lock).
    """
    claimed = punch.time if punch.offline else punch.received_at
    return min(claimed, punch.received_at, recorded_at)


def _quarantine_rejected(
    conn: Any, tenant: str, job_id: str, punches: Sequence[QueuedPunch], outcomes: Sequence[PunchOutcome]
) -> None:
    refusals = [
        Refusal("rep_unknown", o.reason or "rejected", p.model_dump(mode="json"), p.received_at, str(p.id))
        for p, o in zip(punches, outcomes, strict=True)
        if o.status == "rejected"
    ]
    if refusals:
        from .schema import ensure_schema  # here: schema imports modules that import the ledger

        ensure_schema(conn)  # a database created before the quarantine existed
        quarantine(conn, tenant=tenant, refusals=refusals, stage="record", job_id=job_id)


def _number(
    punches: Sequence[QueuedPunch],
    tenant: str,
    heads: dict[str, RepHead],
    known: dict[str, tuple[str, int]],
    now: datetime,
) -> tuple[list[PunchOutcome], list[dict[str, Any]]]:
    outcomes: list[PunchOutcome] = []
    fresh: list[dict[str, Any]] = []
    gravacao = _Gravacao(now)
    for punch in punches:
        pid = str(punch.id)
        head = heads.get(punch.rep)
        if pid in known:
            rep, nsr = known[pid]
            outcomes.append(PunchOutcome(pid, "duplicate", nsr, rep))
        elif head is None or head.tenant != tenant:
            outcomes.append(PunchOutcome(pid, "rejected", rep=punch.rep, reason="unknown REP"))
        else:
            row = _chain(punch, pid, head, gravacao)
            known[pid] = (punch.rep, row["nsr"])
            fresh.append(row)
            outcomes.append(PunchOutcome(pid, "recorded", row["nsr"], punch.rep, recorded_at=now))
    return outcomes, fresh


@dataclass
class _Gravacao:
    """A batch's gravação (one instant for all its punches) and its DH in each zone, rendered once."""

    at: datetime
    _zones: dict[str, tuple[ZoneInfo, str]] = field(default_factory=dict)

    def in_zone(self, name: str) -> tuple[ZoneInfo, str]:
        """The zone and the gravação's DH in it."""
        found = self._zones.get(name)
        if found is None:
            zone = ZoneInfo(name)
            found = self._zones[name] = (zone, format_dh(self.at.astimezone(zone)))
        return found


def _chain(punch: QueuedPunch, pid: str, head: RepHead, gravacao: _Gravacao) -> dict[str, Any]:
    """Number one punch and chain its hash onto the REP's head (which moves)."""
    zone, recorded_dh = gravacao.in_zone(head.time_zone)
    marked = marcacao(punch, gravacao.at)
    nsr = head.last_nsr + 1
    marked_dh = format_dh(marked.astimezone(zone))
    fields = punch_fields_text(
        nsr=nsr,
        marked_dh=marked_dh,
        cpf=punch.cpf,
        recorded_dh=recorded_dh,
        collector=punch.collector,
        offline=punch.offline,
    )
    digest = chain_hash(fields, head.last_hash)
    offset = punch.time.utcoffset()
    row = {
        "rep": punch.rep,
        "nsr": nsr,
        "pid": pid,
        "cpf": punch.cpf,
        "marked": marked,
        "device": punch.time,
        "offset": int(offset.total_seconds() // 60) if offset else 0,
        "received": punch.received_at,
        "tz": head.time_zone,
        "collector": punch.collector,
        "offline": punch.offline,
        "lat": punch.geo.lat if punch.geo else None,
        "lon": punch.geo.lon if punch.geo else None,
        "acc": punch.geo.accuracy if punch.geo else None,
        "hash": digest,
        "prev": head.last_hash,
        "marked_dh": marked_dh,
        "recorded_dh": recorded_dh,
    }
    head.last_nsr, head.last_hash = nsr, digest
    return row


def _insert(cur: Any, tenant: str, job_id: str, fresh: list[dict[str, Any]], now: datetime) -> None:
    rows = orjson.dumps(fresh).decode()
    cur.execute(_INSERT_PUNCHES, {"tenant": tenant, "job_id": job_id, "now": now, "rows": rows})
    inserted = cur.fetchone()[0]
    if inserted != len(fresh):
        raise Retry("a punch of this batch was recorded concurrently under another REP", delay=0.5)


def append_events(conn: Any, rep_id: str, events: Sequence[tuple[int, dict[str, Any]]]) -> list[int]:
    """Append non-punch records (type 2 employer, 5 employee) to a REP's sequence.

    Args:
        conn: DB-API connection to the ERP database (the caller's transaction).
        rep_id: The REP.
        events: ``(record_type, fields)`` pairs, in order.

    Returns:
        Their NSRs.

    Raises:
        LookupError: The REP does not exist.
    """
    with conn.cursor() as cur:
        heads = lock_reps(cur, [rep_id])
        if rep_id not in heads:
            raise LookupError(f"no REP {rep_id!r}")
        head = heads[rep_id]
        cur.execute("SELECT clock_timestamp()")
        now = cur.fetchone()[0]
        numbers = []
        for record_type, fields in events:
            head.last_nsr += 1
            numbers.append(head.last_nsr)
            cur.execute(
                _INSERT_EVENT,
                (rep_id, head.last_nsr, record_type, now, head.time_zone, json.dumps(fields)),
            )
        advance(cur, [head], now)
    return numbers
