"""Where each emitted NF-e stands at SEFAZ: the ``nfe_emission`` rows in the ERP database.

A row is created, state ``signed``, when the job has its number, key and signed XML; it turns
``sent`` in its own commit *before* the XML leaves (so a redelivery knows it must ask SEFAZ for
the protocol before sending again), then ``authorized``, ``denied`` or ``rejected`` with the
answer, and ``cancelled`` after a registered cancellation. Every function takes a DB-API
connection and works in the caller's transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from .access_key import AccessKey, parse_access_key

#: States after which nothing more is sent for the emission.
FINAL_STATES = frozenset({"authorized", "rejected", "denied", "cancelled"})


@dataclass(frozen=True, kw_only=True)
class Emission:
    """One NF-e's row.

    Attributes:
        job_id: The emission job.
        tenant: Its tenant.
        access_key: The 44-character key.
        uf: The issuer's UF.
        environment: 1 production, 2 homologation.
        authority: Who it goes to: the UF's own SEFAZ or its SVC under contingency.
        state: ``signed``, ``sent``, ``authorized``, ``rejected``, ``denied`` or ``cancelled``.
        receipt: nRec of an asynchronous lote still to be polled.
        protocol: nProt of the authorisation (or denial).
        status_code: Last cStat that decided the state.
        reason: Its xMotivo.
        authorized_at: dhRecbto of the authorisation.
        sends: How many times the XML was sent.
        artifacts: Object keys of the stored files, by kind.
    """

    job_id: str
    tenant: str
    access_key: str
    uf: str
    environment: int
    authority: str
    state: str
    receipt: str | None
    protocol: str | None
    status_code: int | None
    reason: str | None
    authorized_at: datetime | None
    sends: int
    artifacts: dict[str, str]

    @property
    def key(self) -> AccessKey:
        """The fields of :attr:`access_key` (issuer, series, number...)."""
        return parse_access_key(self.access_key)


_COLUMNS = ", ".join(f.name for f in fields(Emission))


def find_emission(conn: Any, job_id: str) -> Emission | None:
    """The emission of ``job_id``, if it got that far."""
    return _one(conn, f"SELECT {_COLUMNS} FROM nfe_emission WHERE job_id = %s", (job_id,))


def find_by_key(conn: Any, tenant: str, access_key: str) -> Emission | None:
    """The tenant's emission with ``access_key`` (another tenant's is ``None``)."""
    sql = f"SELECT {_COLUMNS} FROM nfe_emission WHERE tenant = %s AND access_key = %s"
    return _one(conn, sql, (tenant, access_key))


def start_emission(
    conn: Any, *, job_id: str, tenant: str, access_key: str, uf: str, environment: int, authority: str,
    artifacts: dict[str, str],
) -> Emission:  # fmt: skip
    """Create the row (state ``signed``) or return the one the job already has."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO nfe_emission (job_id, tenant, access_key, uf, environment, authority, artifacts)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (job_id) DO NOTHING",
            (job_id, tenant, access_key, uf, environment, authority, json.dumps(artifacts)),
        )
    found = find_emission(conn, job_id)
    assert found is not None
    return found


def record_sent(conn: Any, job_id: str) -> Emission:
    """The XML is about to leave: state ``sent``, one more send."""
    return _update(conn, job_id, "state = 'sent', sends = sends + 1", ())


def record_receipt(conn: Any, job_id: str, receipt: str) -> Emission:
    """SEFAZ took an asynchronous lote: remember its nRec to poll it (on this or a later attempt)."""
    return _update(conn, job_id, "receipt = %s", (receipt,))


def record_verdict(
    conn: Any, job_id: str, *, state: str, status_code: int, reason: str, protocol: str | None = None,
    authorized_at: str | None = None, artifacts: dict[str, str] | None = None,
) -> Emission:  # fmt: skip
    """SEFAZ decided: ``authorized``, ``denied``, ``rejected`` (or ``cancelled`` after an event)."""
    return _update(
        conn,
        job_id,
        "state = %s, status_code = %s, reason = %s, protocol = coalesce(%s, protocol),"
        " authorized_at = coalesce(%s::timestamptz, authorized_at), receipt = NULL,"
        " artifacts = artifacts || %s::jsonb",
        (state, status_code, reason, protocol, authorized_at, json.dumps(artifacts or {})),
    )


def add_artifacts(conn: Any, job_id: str, artifacts: dict[str, str]) -> Emission:
    """Record more stored files of the emission."""
    return _update(conn, job_id, "artifacts = artifacts || %s::jsonb", (json.dumps(artifacts),))


def _update(conn: Any, job_id: str, assignments: str, params: tuple[Any, ...]) -> Emission:
    sql = (
        f"UPDATE nfe_emission SET {assignments}, updated_at = clock_timestamp()"
        f" WHERE job_id = %s RETURNING {_COLUMNS}"
    )
    found = _one(conn, sql, (*params, job_id))
    if found is None:
        raise LookupError(f"no NF-e emission for job {job_id!r}")
    return found


def _one(conn: Any, sql: str, params: tuple[Any, ...]) -> Emission | None:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    if row is None:
        return None
    values = dict(zip((f.name for f in fields(Emission)), row, strict=True))
    values["artifacts"] = dict(values["artifacts"] or {})
    return Emission(**values)


def result_of(emission: Emission) -> dict[str, Any]:
    """The job's result: key, number, protocol and the stored files."""
    return {
        "access_key": emission.access_key,
        "number": emission.key.number,
        "series": emission.key.series,
        "state": emission.state,
        "protocol": emission.protocol,
        "status_code": emission.status_code,
        "reason": emission.reason,
        "authority": emission.authority,
        "sends": emission.sends,
        "files": emission.artifacts,
    }
