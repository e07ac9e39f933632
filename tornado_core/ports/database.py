"""Handles a task uses to reach relational databases (RDS PostgreSQL, Redshift)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol


class DatabasePort(Protocol):
    """A pool of DB-API connections.

    ``with db.connection() as conn:`` yields a connection inside a transaction
    that commits when the block ends normally and rolls back otherwise.
    """

    def connection(self) -> AbstractContextManager[Any]:
        """Borrow a connection for one transaction."""

    def close(self) -> None:
        """Close every pooled connection."""
