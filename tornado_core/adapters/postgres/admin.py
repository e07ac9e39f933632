"""Databases on a PostgreSQL server: create, clone from a migrated template, drop, migrate.

Used by the dev stack and the test fixtures, never on a request path.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

from tornado_core.adapters.postgres.migrations import apply_migrations
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.errors import BackendError


class DatabaseAdminError(BackendError):
    """A database could not be created, dropped or reached, or a name or URL is invalid."""


_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def with_database(dsn: str, database: str) -> str:
    """``dsn`` (a ``postgresql://`` URI) pointing at another database."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise DatabaseAdminError(f"expected a postgresql:// URL, got {dsn!r}")
    return urlunsplit(parts._replace(path="/" + database))


def database_name(dsn: str) -> str:
    """The database a ``postgresql://`` URI names."""
    return urlsplit(dsn).path.lstrip("/") or "postgres"


def migrate(dsn: str) -> list[str]:
    """Apply Tornado's migrations to ``dsn``.

    Returns:
        The migrations applied now (empty if it was up to date).
    """
    pool = PostgresPool(dsn, min_size=0, max_size=1)
    try:
        return apply_migrations(pool)
    finally:
        pool.close()


class DatabaseAdmin:
    """Creates and drops databases through a superuser (or CREATEDB) DSN.

    Args:
        admin_dsn: A ``postgresql://`` URI of any database on the server.
    """

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn

    def exists(self, name: str) -> bool:
        """Whether database ``name`` exists."""
        with self._cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            return cur.fetchone() is not None

    def ensure(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` unless it exists; return its DSN."""
        if not self.exists(name):
            self.create(name, template=template)
        return with_database(self.admin_dsn, name)

    def create(self, name: str | None = None, *, template: str | None = None) -> str:
        """Create a database (a copy of ``template`` if given) and return its DSN.

        Args:
            name: Lowercase SQL identifier; a random ``t_...`` name if omitted.
            template: Database to copy; it must have no open connections.
        """
        name = name or f"t_{secrets.token_hex(6)}"
        _check_name(name)
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            _check_name(template)
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        with self._cursor() as cur:
            cur.execute(statement)
        return with_database(self.admin_dsn, name)

    def drop(self, name: str) -> None:
        """Drop database ``name`` (disconnecting its clients); missing is fine."""
        _check_name(name)
        with self._cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        try:
            conn = psycopg2.connect(self.admin_dsn, connect_timeout=5)
        except psycopg2.Error as exc:
            raise DatabaseAdminError(f"cannot connect to PostgreSQL at {self.admin_dsn}: {exc}") from exc
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                yield cur
        except psycopg2.Error as exc:
            raise DatabaseAdminError(f"PostgreSQL refused: {str(exc).strip()}") from exc
        finally:
            conn.close()


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise DatabaseAdminError(f"invalid database name {name!r} (lowercase letters, digits, _)")
