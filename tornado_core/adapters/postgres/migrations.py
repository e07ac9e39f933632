"""Versioned SQL migrations of the PostgreSQL adapters.

Migrations are the files ``migrations/NNNN_name.sql`` shipped with this
package, applied in order of their number, each in its own transaction under
a transaction-level advisory lock, so concurrent processes starting at once
apply each file exactly once. Applied versions are recorded in
``tornado_schema_migrations``. To change the schema, add a new numbered file;
never edit one that has shipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from psycopg2.extensions import cursor as Cursor

from tornado_core.adapters.postgres.pool import PostgresPool

#: Key of the advisory lock serialising migrations (arbitrary, fixed forever).
LOCK_KEY = 7_461_727_001
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS tornado_schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


@dataclass(frozen=True)
class Migration:
    """One SQL file.

    Attributes:
        version: The file name without ``.sql``, e.g. ``0001_core``.
        sql: Its statements.
    """

    version: str
    sql: str


def load_migrations() -> list[Migration]:
    """Every migration shipped with the package, in order.

    Raises:
        ValueError: Two files share a number.
    """
    folder = resources.files(__package__ or "tornado_core.adapters.postgres") / "migrations"
    found = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if _FILE.match(entry.name)
    )
    numbers = [name[:4] for name, _ in found]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"duplicate migration numbers in {[name for name, _ in found]}")
    return [Migration(name.removesuffix(".sql"), sql) for name, sql in found]


def apply_migrations(pool: PostgresPool) -> list[str]:
    """Apply the migrations the database does not have yet.

    Idempotent and safe to run from several processes at once.

    Args:
        pool: Pool of the target database.

    Returns:
        The versions applied by this call, in order (empty if up to date).

    Raises:
        StoreUnavailable: PostgreSQL cannot be reached.
    """
    applied: list[str] = []
    for migration in load_migrations():
        with pool.connection() as conn, conn.cursor() as cur:
            _lock(cur)
            if _is_applied(cur, migration.version):
                continue
            cur.execute(migration.sql)
            cur.execute("INSERT INTO tornado_schema_migrations (version) VALUES (%s)", (migration.version,))
        applied.append(migration.version)
    return applied


def _lock(cur: Cursor) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    cur.execute(_CREATE_TABLE)


def _is_applied(cur: Cursor, version: str) -> bool:
    cur.execute("SELECT 1 FROM tornado_schema_migrations WHERE version = %s", (version,))
    return cur.fetchone() is not None
