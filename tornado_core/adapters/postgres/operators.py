"""Operator accounts and their console sessions in PostgreSQL (tables ``tornado_operators``, sessions)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg2.errors

from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.errors import OperatorExists, OperatorNotFound
from tornado_core.ports.operators import Credentials, Operator, Role

_COLUMNS = "name, role, disabled, created_at"

_UPDATE = f"""
UPDATE tornado_operators SET
    role = COALESCE(%(role)s, role),
    password_hash = COALESCE(%(password_hash)s, password_hash),
    disabled = COALESCE(%(disabled)s, disabled),
    updated_at = clock_timestamp()
WHERE name = %(name)s
RETURNING {_COLUMNS}
"""

# A live session of an enabled account; its last_seen_at is touched at most once a minute.
_SESSION = """
SELECT o.name, o.role, o.disabled, o.created_at, s.last_seen_at < clock_timestamp() - interval '1 minute'
FROM tornado_console_sessions s JOIN tornado_operators o ON o.name = s.operator
WHERE s.token_hash = %(token_hash)s AND s.expires_at > %(now)s AND NOT o.disabled
"""
_SEEN = "UPDATE tornado_console_sessions SET last_seen_at = clock_timestamp() WHERE token_hash = %s"
_CLEAR_EXPIRED = (
    "DELETE FROM tornado_console_sessions WHERE operator = %s AND expires_at <= clock_timestamp()"
)
_OPEN = "INSERT INTO tornado_console_sessions (token_hash, operator, expires_at) VALUES (%s, %s, %s)"


def _operator(row: Sequence[Any]) -> Operator:
    return Operator(name=row[0], role=Role(row[1]), disabled=row[2], created_at=row[3].astimezone(UTC))


class PostgresOperatorStore:
    """The operator store (an :class:`OperatorStorePort`).

    Args:
        pool: Pool of the job-store database (migration ``0012_console`` applied).

    Every method raises ``StoreUnavailable`` when PostgreSQL cannot be reached.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def create(self, name: str, *, role: Role, password_hash: str) -> Operator:
        """Add an account.

        Raises:
            OperatorExists: ``name`` is taken.
        """
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO tornado_operators (name, role, password_hash) VALUES (%s, %s, %s)"
                    f" RETURNING {_COLUMNS}",
                    (name, str(role), password_hash),
                )
                row = cur.fetchone()
        except psycopg2.errors.UniqueViolation:
            raise OperatorExists(name) from None
        assert row is not None
        return _operator(row)

    def credentials(self, name: str) -> Credentials | None:
        """The account and its password hash, or ``None``."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS}, password_hash FROM tornado_operators WHERE name = %s", (name,))
            row = cur.fetchone()
        return Credentials(operator=_operator(row), password_hash=row[4]) if row else None

    def operators(self) -> list[Operator]:
        """Every account, by name."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM tornado_operators ORDER BY name")
            rows = cur.fetchall()
        return [_operator(row) for row in rows]

    def update(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> Operator:
        """Change what is given, in one transaction; a new password or disabling ends the sessions.

        Raises:
            OperatorNotFound: No such account.
        """
        changes = {
            "name": name, "role": str(role) if role is not None else None, "password_hash": password_hash,
            "disabled": disabled,
        }  # fmt: skip
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_UPDATE, changes)
            row = cur.fetchone()
            if row is not None and (password_hash is not None or disabled):
                cur.execute("DELETE FROM tornado_console_sessions WHERE operator = %s", (name,))
        if row is None:
            raise OperatorNotFound(name)
        return _operator(row)

    def open_session(self, token_hash: str, *, operator: str, expires_at: datetime) -> None:
        """Record a session by its token's hash; the account's expired sessions are cleared.

        Raises:
            OperatorNotFound: No such account.
        """
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute(_CLEAR_EXPIRED, (operator,))
                cur.execute(_OPEN, (token_hash, operator, expires_at))
        except psycopg2.errors.ForeignKeyViolation:
            raise OperatorNotFound(operator) from None

    def session(self, token_hash: str, *, now: datetime) -> Operator | None:
        """The operator of a live session (not expired at ``now``, account enabled), or ``None``."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_SESSION, {"token_hash": token_hash, "now": now})
            row = cur.fetchone()
            if row is not None and row[4]:
                cur.execute(_SEEN, (token_hash,))
        return _operator(row) if row else None

    def close_session(self, token_hash: str) -> None:
        """End a session; an unknown one is ignored."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM tornado_console_sessions WHERE token_hash = %s", (token_hash,))
