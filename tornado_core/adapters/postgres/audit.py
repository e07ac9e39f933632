"""The console's audit log in PostgreSQL (``tornado_audit_log``): appended to, read newest first."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from psycopg2.extras import Json

from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.ports.operators import AuditEntry

_COLUMNS = "id, at, actor, action, target, detail"


def _entries_query(*, before_id: int | None, actor: str | None, actions: Sequence[str]) -> str:
    """The read, with only the filters given (so each can use its index)."""
    conditions = ["TRUE"]
    if before_id is not None:
        conditions.append("id < %(before_id)s")
    if actor is not None:
        conditions.append("actor = %(actor)s")
    if actions:
        conditions.append("action = ANY(%(actions)s)")
    where = " AND ".join(conditions)
    return f"SELECT {_COLUMNS} FROM tornado_audit_log WHERE {where} ORDER BY id DESC LIMIT %(limit)s"


def _entry(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(
        id=row[0], at=row[1].astimezone(UTC), actor=row[2], action=row[3], target=row[4], detail=row[5]
    )


def _json_text(value: Any) -> str:
    """JSON text of a detail; a value JSON has no type for (a datetime...) is written as its text."""
    return json.dumps(value, default=str, ensure_ascii=False)


class PostgresAuditLog:
    """The audit log (an :class:`AuditLogPort`).

    Args:
        pool: Pool of the job-store database (migration ``0012_console`` applied).

    Every method raises ``StoreUnavailable`` when PostgreSQL cannot be reached.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def record(
        self, *, actor: str, action: str, target: str | None = None, detail: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        """Append one entry and return it (with its id and time)."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO tornado_audit_log (actor, action, target, detail) VALUES (%s, %s, %s, %s)"
                f" RETURNING {_COLUMNS}",
                (actor, action, target, Json(dict(detail or {}), dumps=_json_text)),
            )
            row = cur.fetchone()
        assert row is not None
        return _entry(row)

    def entries(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        actor: str | None = None,
        actions: Sequence[str] = (),
    ) -> list[AuditEntry]:
        """Entries newest first, optionally of one actor or of some actions, older than ``before_id``."""
        params = {"limit": limit, "before_id": before_id, "actor": actor, "actions": list(actions)}
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_entries_query(before_id=before_id, actor=actor, actions=actions), params)
            rows = cur.fetchall()
        return [_entry(row) for row in rows]
