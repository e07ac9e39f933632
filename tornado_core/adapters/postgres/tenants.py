"""Tenants, their tokens (hashes only) and quotas in PostgreSQL (``tornado_tenants``, ``tornado_tokens``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg2.errors

from tornado_core.adapters.postgres._listener import QueueListener
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.errors import ConfigError
from tornado_core.ports.tenants import Tenant, TokenChanges, TokenGrant

#: The channel the token triggers notify, with the changed token's hash as payload.
CHANNEL = "tornado_tokens"

_GRANTS = (
    "SELECT k.token_hash, k.tenant, extract(epoch FROM k.expires_at), t.requests_per_second"
    " FROM tornado_tokens k JOIN tornado_tenants t ON t.name = k.tenant"
    " WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > clock_timestamp())"
)


class PostgresTenantStore:
    """The tenant registry.

    Args:
        pool: Pool of the database holding the tenant tables (see ``apply_migrations``).

    Every method raises ``StoreUnavailable`` when PostgreSQL cannot be reached.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def create(self, name: str, token_hash: str, *, expires_at: float | None = None) -> Tenant:
        """Add a tenant with its first token.

        Raises:
            ConfigError: The tenant (or a tenant with the same token) exists.
        """
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO tornado_tenants (name) VALUES (%s) RETURNING created_at", (name,))
                row = cur.fetchone()
                _insert_token(cur, name, token_hash, expires_at)
        except psycopg2.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "tornado_tenants_pkey":
                raise ConfigError(f"tenant {name!r} already exists") from None
            raise ConfigError(f"tenant {name!r}: that token is already in use") from None
        assert row is not None
        return Tenant(name, row[0].astimezone(UTC))

    def list(self) -> list[Tenant]:
        """All tenants by name."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT name, created_at, requests_per_second FROM tornado_tenants ORDER BY name")
            rows = cur.fetchall()
        return [Tenant(name, created.astimezone(UTC), rate) for name, created, rate in rows]

    def grants(self) -> dict[str, TokenGrant]:
        """Every valid token by hash: its tenant, expiry and quota."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(_GRANTS)
            rows = cur.fetchall()
        return {
            digest: TokenGrant(tenant, float(expires) if expires is not None else None, rate)
            for digest, tenant, expires, rate in rows
        }

    def add_token(self, tenant: str, token_hash: str, *, expires_at: float | None = None) -> None:
        """Give ``tenant`` another token.

        Raises:
            ConfigError: No such tenant, or the token is in use.
        """
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                _insert_token(cur, tenant, token_hash, expires_at)
        except psycopg2.errors.ForeignKeyViolation:
            raise ConfigError(f"no tenant {tenant!r}") from None
        except psycopg2.errors.UniqueViolation:
            raise ConfigError(f"tenant {tenant!r}: that token is already in use") from None

    def expire_tokens(self, tenant: str, *, at: float, keep: str | None = None) -> int:
        """Make the tenant's valid tokens (but ``keep``) end at ``at`` unless they end sooner."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE tornado_tokens SET expires_at = to_timestamp(%s)"
                " WHERE tenant = %s AND token_hash IS DISTINCT FROM %s AND revoked_at IS NULL"
                " AND (expires_at IS NULL OR expires_at > to_timestamp(%s))",
                (at, tenant, keep, at),
            )
            return int(cur.rowcount)

    def revoke(self, tenant: str, *, token_hash: str | None = None) -> int:
        """Refuse the tenant's valid tokens from now on (only ``token_hash`` if given); returns how many."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE tornado_tokens SET revoked_at = clock_timestamp()"
                " WHERE tenant = %s AND revoked_at IS NULL AND (%s::text IS NULL OR token_hash = %s)"
                " AND (expires_at IS NULL OR expires_at > clock_timestamp())",
                (tenant, token_hash, token_hash),
            )
            return int(cur.rowcount)

    def set_quota(self, tenant: str, requests_per_second: float | None) -> None:
        """Set (or remove) the tenant's quota.

        Raises:
            ConfigError: No such tenant.
        """
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE tornado_tenants SET requests_per_second = %s WHERE name = %s",
                (requests_per_second, tenant),
            )
            if cur.rowcount == 0:
                raise ConfigError(f"no tenant {tenant!r}")

    def watch(self, on_change: TokenChanges) -> Callable[[], None]:
        """Follow token changes through LISTEN/NOTIFY; ``None`` after a reconnection."""
        listener = QueueListener(
            lambda: self._pool.new_connection(autocommit=True), channel=CHANNEL, on_notify=on_change
        )
        listener.start()
        return listener.close


def _insert_token(cur: Any, tenant: str, token_hash: str, expires_at: float | None) -> None:
    expires = datetime.fromtimestamp(expires_at, UTC) if expires_at is not None else None
    cur.execute(
        "INSERT INTO tornado_tokens (token_hash, tenant, expires_at) VALUES (%s, %s, %s)",
        (token_hash, tenant, expires),
    )
