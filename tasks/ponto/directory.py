"""Read-side queries of the ERP tables used by the API (REP owners, one recorded punch)."""

from __future__ import annotations

from typing import Any

from .afd import local_dh


def rep_owners(conn: Any) -> dict[str, str]:
    """Every REP id mapped to its tenant (empty if the ponto tables do not exist yet)."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('ponto_rep') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return {}
        cur.execute("SELECT rep_id, tenant FROM ponto_rep")
        return {str(r[0]): str(r[1]) for r in cur.fetchall()}


def find_punch(conn: Any, tenant: str, punch_id: str) -> dict[str, Any] | None:
    """A recorded punch of ``tenant`` by its client UUID, as the API shows it, or ``None``."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('ponto_punch') IS NOT NULL")
        row = cur.fetchone()
        if not row or not row[0]:
            return None
        cur.execute(
            "SELECT rep_id, nsr, marked_at, recorded_at, time_zone, offline, hash, job_id, device_time"
            " FROM ponto_punch WHERE tenant = %s AND punch_id = %s::uuid",
            (tenant, punch_id),
        )
        found = cur.fetchone()
    if found is None:
        return None
    rep, nsr, marked, recorded, zone, offline, digest, job_id, device = found
    return {
        "id": punch_id,
        "status": "recorded",
        "rep": rep,
        "nsr": int(nsr),
        "marked_at": marked.isoformat(),
        "marked_local": local_dh(marked, zone),
        "recorded_at": recorded.isoformat(),
        "recorded_local": local_dh(recorded, zone),
        "time_zone": zone,
        "device_time": device.isoformat(),
        "offline": bool(offline),
        "hash": str(digest),
        "job_id": job_id,
    }
