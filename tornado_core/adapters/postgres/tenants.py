"""Tenants and their token hashes in PostgreSQL (table ``tornado_tenants``)."""

from __future__ import annotations

from datetime import UTC

import psycopg2.errors

from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.errors import ConfigError
from tornado_core.ports.tenants import Tenant


class PostgresTenantStore:
    """The tenant registry.

    Args:
        pool: Pool of the database holding ``tornado_tenants`` (see ``apply_migrations``).

    Every method raises ``StoreUnavailable`` when PostgreSQL cannot be reached.
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def create(self, name: str, token_hash: str) -> Tenant:
        """Add a tenant with the hash of its token.

        Raises:
            ConfigError: The tenant (or a tenant with the same token) exists.
        """
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO tornado_tenants (name, token_hash) VALUES (%s, %s)"
                    " RETURNING created_at",
                    (name, token_hash),
                )
                row = cur.fetchone()
        except psycopg2.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "tornado_tenants_pkey":
                raise ConfigError(f"tenant {name!r} already exists") from None
            raise ConfigError(f"tenant {name!r}: that token is already in use") from None
        assert row is not None
        return Tenant(name, row[0].astimezone(UTC))

    def list(self) -> list[Tenant]:
        """All tenants by name."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT name, created_at FROM tornado_tenants ORDER BY name")
            rows = cur.fetchall()
        return [Tenant(name, created.astimezone(UTC)) for name, created in rows]

    def token_hashes(self) -> dict[str, str]:
        """Every token hash mapped to its tenant's name."""
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT token_hash, name FROM tornado_tenants")
            rows = cur.fetchall()
        return {token_hash: name for token_hash, name in rows}
