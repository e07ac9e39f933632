"""Employees' own access to their receipts: per-employee bearer tokens the employer issues and revokes.

The API's tenant tokens belong to the employer (the ERP). An employee gets a token of their own,
``tpr_`` + 256 random bits, issued by the employer for one CPF of its tenant
(``POST /v1/punches/receipt-tokens`` or ``tornado ponto receipt-token issue``) and handed to the
employee's app once: only its SHA-256 is stored. With it the employee lists and fetches the
receipts of punches of that tenant with that CPF, nothing else; revoking it (``DELETE``,
``tornado ponto receipt-token revoke``) takes effect on the next request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .afd import local_dh

#: Every employee token starts with this (told apart from the ``tnd_`` tenant tokens at a glance).
TOKEN_PREFIX = "tpr_"

#: Appended to the ponto DDL (``schema.py``, version 3): the tokens, and the index that lists an
#: employee's punches (one more B-tree per recorded punch; built once, blocking writes meanwhile).
RECEIPT_ACCESS_DDL = """
CREATE TABLE IF NOT EXISTS ponto_receipt_token (
    token_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant     text NOT NULL,
    cpf        char(11) NOT NULL,
    token_hash char(64) NOT NULL UNIQUE,                -- SHA-256 hex of the token; never the token
    label      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS ponto_receipt_token_employee_idx ON ponto_receipt_token (tenant, cpf);
CREATE INDEX IF NOT EXISTS ponto_punch_employee_idx ON ponto_punch (tenant, cpf, marked_at, punch_id);
"""

_ISSUE = """
INSERT INTO ponto_receipt_token (tenant, cpf, token_hash, label) VALUES (%s, %s, %s, %s)
RETURNING token_id, created_at
"""

_REVOKE = """
UPDATE ponto_receipt_token SET revoked_at = clock_timestamp()
WHERE tenant = %s AND token_id = %s AND revoked_at IS NULL
RETURNING token_id
"""

_LIST = """
SELECT token_id, cpf, label, created_at, revoked_at FROM ponto_receipt_token
WHERE tenant = %s AND (%s::text IS NULL OR cpf = %s) ORDER BY token_id
"""

_HOLDER = """
SELECT token_id, tenant, cpf FROM ponto_receipt_token WHERE token_hash = %s AND revoked_at IS NULL
"""

_RECEIPTS = """
SELECT p.punch_id::text, p.rep_id, p.nsr, p.marked_at, p.recorded_at, p.time_zone, p.offline, p.hash
FROM ponto_punch p
WHERE p.tenant = %(tenant)s AND p.cpf = %(cpf)s AND (%(before)s::uuid IS NULL OR (p.marked_at, p.punch_id) < (
    SELECT b.marked_at, b.punch_id FROM ponto_punch b
    WHERE b.tenant = %(tenant)s AND b.cpf = %(cpf)s AND b.punch_id = %(before)s::uuid))
ORDER BY p.marked_at DESC, p.punch_id DESC
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class Employee:
    """Who an employee token speaks for."""

    token_id: int
    tenant: str
    cpf: str


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: the only time its secret is known."""

    token_id: int
    token: str
    cpf: str
    label: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The API's answer to an issue."""
        return {
            "token_id": self.token_id,
            "token": self.token,
            "cpf": self.cpf,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
        }


def token_hash(token: str) -> str:
    """SHA-256 hex of a token, as stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _exists(cur: Any, table: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
    row = cur.fetchone()
    return bool(row and row[0])


def issue_token(conn: Any, *, tenant: str, cpf: str, label: str = "") -> IssuedToken:
    """Issue a receipt token for employee ``cpf`` of ``tenant`` (the tables must exist: ``ensure_schema``).

    Args:
        conn: DB-API connection to the ERP database.
        tenant: The employer.
        cpf: The employee's 11 digits (already checked).
        label: A note for the employer (the device, the person), at most 200 characters.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with conn.cursor() as cur:
        cur.execute(_ISSUE, (tenant, cpf, token_hash(token), label[:200]))
        token_id, created_at = cur.fetchone()
    return IssuedToken(int(token_id), token, cpf, label[:200], created_at)


def revoke_token(conn: Any, *, tenant: str, token_id: int) -> bool:
    """Revoke ``tenant``'s token ``token_id``; False if it has none such or it was revoked already."""
    with conn.cursor() as cur:
        if not _exists(cur, "ponto_receipt_token"):
            return False
        cur.execute(_REVOKE, (tenant, token_id))
        return cur.fetchone() is not None


def list_tokens(conn: Any, *, tenant: str, cpf: str | None = None) -> list[dict[str, Any]]:
    """``tenant``'s tokens (never their secrets), optionally of one employee, oldest first."""
    with conn.cursor() as cur:
        if not _exists(cur, "ponto_receipt_token"):
            return []
        cur.execute(_LIST, (tenant, cpf, cpf))
        rows = cur.fetchall()
    return [
        {
            "token_id": int(token_id),
            "cpf": str(holder).strip(),
            "label": label,
            "created_at": created.isoformat(),
            "revoked_at": revoked.isoformat() if revoked else None,
        }
        for token_id, holder, label, created, revoked in rows
    ]


def employee_of(conn: Any, token: str) -> Employee | None:
    """The employee a live token speaks for, or ``None`` (unknown, revoked, or not a receipt token)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with conn.cursor() as cur:
        if not _exists(cur, "ponto_receipt_token"):
            return None
        cur.execute(_HOLDER, (token_hash(token),))
        row = cur.fetchone()
    return None if row is None else Employee(int(row[0]), str(row[1]), str(row[2]).strip())


def employee_receipts(
    conn: Any, employee: Employee, *, limit: int = 50, before: str | None = None
) -> list[dict[str, Any]]:
    """The employee's recorded punches, newest marcação first, as the receipt listing shows them.

    Args:
        conn: DB-API connection to the ERP database.
        employee: Whose punches (tenant and CPF).
        limit: Most entries.
        before: Only punches marked before this one (a punch id of the previous page).
    """
    params = {"tenant": employee.tenant, "cpf": employee.cpf, "before": before, "limit": limit}
    with conn.cursor() as cur:
        if not _exists(cur, "ponto_punch"):
            return []
        cur.execute(_RECEIPTS, params)
        rows = cur.fetchall()
    return [
        {
            "punch_id": punch_id,
            "rep": rep,
            "nsr": int(nsr),
            "marked_at": marked.isoformat(),
            "marked_local": local_dh(marked, zone),
            "recorded_at": recorded.isoformat(),
            "offline": bool(offline),
            "hash": str(digest).strip(),
        }
        for punch_id, rep, nsr, marked, recorded, zone, offline, digest in rows
    ]
