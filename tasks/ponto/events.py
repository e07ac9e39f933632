"""The REP-P's sensitive events (AFD type 6): service unavailable and available again, per outage window.

A window in which the REP-P could not record punches (the API or the ``ponto.record`` workers
down, the ERP database unreachable) is written on each REP concerned as two type-6 records:
``08`` (service unavailable) dated at the window's start and ``07`` (available again) dated at
its end. They take the next NSRs of the REP's one sequence, under the same counter lock as punches
(:func:`tornado_tasks.ponto.ledger.lock_reps` / :func:`~tornado_tasks.ponto.ledger.advance`), so NSRs
stay gap-free. Recording the same window again adds nothing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .afd import EVENT_CODES, EVENT_SERVICE_AVAILABLE, EVENT_SERVICE_UNAVAILABLE
from .ledger import advance, lock_reps

#: Appended to the ponto DDL (``schema.py``): one type-6 record per REP, instant and code.
EVENTS_DDL = """
CREATE UNIQUE INDEX IF NOT EXISTS ponto_event_sensitive_once
    ON ponto_event (rep_id, recorded_at, (fields->>'code')) WHERE record_type = 6;
"""

_NOW = "SELECT clock_timestamp()"

_EXISTING = """
SELECT rep_id, fields->>'code', recorded_at, nsr FROM ponto_event
WHERE record_type = 6 AND rep_id = ANY(%(reps)s) AND recorded_at = ANY(%(instants)s::timestamptz[])
"""

_INSERT = """
INSERT INTO ponto_event (rep_id, nsr, record_type, recorded_at, time_zone, fields)
VALUES (%s, %s, 6, %s, %s, %s)
"""

_TENANT_REPS = "SELECT rep_id FROM ponto_rep WHERE tenant = %s ORDER BY rep_id"


@dataclass(frozen=True)
class EventOutcome:
    """One type-6 record of one REP: its NSR, and whether this call wrote it (False: it existed)."""

    rep_id: str
    code: str
    at: datetime
    nsr: int
    created: bool


def tenant_reps(conn: Any, tenant: str) -> list[str]:
    """The REP ids of ``tenant``, in order.

    Raises:
        LookupError: The tenant has no REP.
    """
    with conn.cursor() as cur:
        cur.execute(_TENANT_REPS, (tenant,))
        reps = [str(row[0]) for row in cur.fetchall()]
    if not reps:
        raise LookupError(f"tenant {tenant!r} has no REP")
    return reps


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with its UTC offset (``2025-03-10T10:00:00-03:00``).

    Raises:
        ValueError: Not ISO 8601, or no offset.
    """
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        raise ValueError(f"{text!r} needs a UTC offset (e.g. -03:00 or Z)")
    return moment


def record_events(
    conn: Any, reps: Sequence[str], events: Sequence[tuple[str, datetime]], *, reason: str = ""
) -> list[EventOutcome]:
    """Write type-6 events on each of ``reps`` in the caller's transaction (idempotent per instant and code).

    Args:
        conn: DB-API connection to the ERP database.
        reps: The REPs the events concern.
        events: ``(code, instant)`` pairs in the order they happened; instants are aware and
            not in the future (the database's clock).
        reason: Free text kept with the records (not in the AFD).

    Returns:
        One outcome per REP and event, REPs in id order; events recorded before keep their NSR.

    Raises:
        ValueError: An unknown code, a naive or future instant, or events out of time order.
        LookupError: A REP that does not exist.
    """
    _check_events(events)
    with conn.cursor() as cur:
        heads = lock_reps(cur, reps)
        missing = sorted(set(reps) - heads.keys())
        if missing:
            raise LookupError(f"no REP {', '.join(missing)}")
        cur.execute(_NOW)
        now: datetime = cur.fetchone()[0]
        if any(at > now for _, at in events):
            raise ValueError(f"an event instant is after the database's clock ({now.isoformat()})")
        cur.execute(_EXISTING, {"reps": sorted(heads), "instants": [at for _, at in events]})
        known = {(row[0], row[1], row[2]): int(row[3]) for row in cur.fetchall()}
        outcomes: list[EventOutcome] = []
        for rep_id in sorted(heads):
            head = heads[rep_id]
            for code, at in events:
                nsr = known.get((rep_id, code, at))
                if nsr is None:
                    head.last_nsr = nsr = head.last_nsr + 1
                    fields = {"code": code, "noted_at": now.isoformat(), "reason": reason}
                    cur.execute(_INSERT, (rep_id, nsr, at, head.time_zone, json.dumps(fields)))
                outcomes.append(EventOutcome(rep_id, code, at, nsr, (rep_id, code, at) not in known))
        moved = {o.rep_id for o in outcomes if o.created}
        advance(cur, [heads[rep_id] for rep_id in sorted(moved)], now)
    return outcomes


def record_outage(
    conn: Any, reps: Sequence[str], *, start: datetime, end: datetime, reason: str = ""
) -> list[EventOutcome]:
    """Record an outage window on ``reps``: ``08`` (unavailable) at ``start``, ``07`` (available) at ``end``.

    Args:
        conn: DB-API connection to the ERP database (the caller's transaction).
        reps: The REPs that could not record punches in the window.
        start: When the service became unavailable (aware).
        end: When it was available again (aware, after ``start``, not in the future).
        reason: Free text kept with the records, e.g. "ponto.record workers down".

    Returns:
        Two outcomes per REP (unavailable, then available), REPs in id order.

    Raises:
        ValueError: A naive instant, ``end`` not after ``start``, or ``end`` in the future.
        LookupError: A REP that does not exist.
    """
    return record_events(
        conn, reps, [(EVENT_SERVICE_UNAVAILABLE, start), (EVENT_SERVICE_AVAILABLE, end)], reason=reason
    )


def _check_events(events: Sequence[tuple[str, datetime]]) -> None:
    for code, at in events:
        if code not in EVENT_CODES:
            raise ValueError(f"unknown type-6 event code {code!r} (a REP-P writes {sorted(EVENT_CODES)})")
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"event instant {at.isoformat()} needs a UTC offset")
    instants = [at for _, at in events]
    if any(b <= a for a, b in itertools.pairwise(instants)):
        raise ValueError("events must be in time order (a window's end after its start)")
