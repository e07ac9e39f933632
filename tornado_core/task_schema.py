"""Versioned tables a task package keeps in the ERP database, created once, safely in parallel."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True, kw_only=True)
class TaskSchema:
    """The DDL of a task package's tables and the version it brings them to.

    Args:
        version_table: A one-column table (``version``) the DDL creates and fills with its
            version (``INSERT ... VALUES (%(version)s)``): its row says the DDL has run.
        version: The version this DDL brings the tables to.
        lock_key: An advisory-lock key unique to the package, so that workers starting at
            once run the DDL one at a time.
        ddl: Idempotent statements (``CREATE ... IF NOT EXISTS``, ``CREATE OR REPLACE``).
    """

    version_table: str
    version: int
    lock_key: int
    ddl: str

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.version_table):
            raise ValueError(f"not a plain table name: {self.version_table!r}")

    def ensure(self, conn: Any) -> None:
        """Create or bring up the tables, inside the caller's transaction (a no-op once done).

        Args:
            conn: A DB-API connection to the ERP database, e.g. from ``ctx.rds.connection()``.
        """
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (self.version_table,))
            row = cur.fetchone()
            if row and row[0]:
                cur.execute(f"SELECT 1 FROM {self.version_table} WHERE version = %s", (self.version,))
                if cur.fetchone() is not None:
                    return
            cur.execute(self.ddl, {"version": self.version})
