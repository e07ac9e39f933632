"""``tornado migrate`` and ``tornado tenants`` on a real PostgreSQL, as an operator runs them."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator

import psycopg2
import pytest

from tornado_core.adapters.postgres.admin import DatabaseAdmin, database_name, with_database
from tornado_core.local_machine import tornado_argv


@pytest.fixture
def empty_database(postgres_url: str) -> Iterator[str]:
    """A database with nothing in it (not cloned from the migrated template)."""
    admin = DatabaseAdmin(with_database(postgres_url, "postgres"))
    dsn = admin.create()
    yield dsn
    admin.drop(database_name(dsn))


def tornado(stack_env: dict[str, str], database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack_env, "TORNADO_DATABASE_URL": database}
    return subprocess.run(tornado_argv(*args), env=env, capture_output=True, text=True, timeout=120)


def tables(dsn: str) -> set[str]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        names = {row[0] for row in cur.fetchall()}
    conn.close()
    return names


def test_migrate_applies_every_migration_once(empty_database: str, stack_env: dict[str, str]) -> None:
    assert "tornado_jobs" not in tables(empty_database)
    first = tornado(stack_env, empty_database, "migrate")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        "applied: 0001_core, 0002_releases, 0003_tokens, 0004_cancellation, 0005_unique_jobs, "
        "0006_schedules, 0007_webhooks, 0008_workflows, 0009_rate_limits, 0010_fair_dispatch, "
        "0011_workflow_webhooks, 0012_console, 0013_lean_queued_rows"
    )
    assert {"tornado_jobs", "tornado_tenants", "tornado_tokens", "tornado_routes"} <= tables(empty_database)
    again = tornado(stack_env, empty_database, "migrate")
    assert (again.returncode, again.stdout.strip()) == (0, "database is up to date")


def test_tokens_are_stored_only_as_their_sha256(fresh_database_url: str, stack_env: dict[str, str]) -> None:
    created = tornado(stack_env, fresh_database_url, "tenants", "create", "padaria-central")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    rotated = tornado(stack_env, fresh_database_url, "tenants", "rotate", "padaria-central")
    assert rotated.returncode == 0, rotated.stderr
    tokens = {token, rotated.stdout.strip()}
    with psycopg2.connect(fresh_database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT token_hash FROM tornado_tokens WHERE tenant = 'padaria-central'")
        stored = {row[0] for row in cur.fetchall()}
        cur.execute("SELECT t::text FROM tornado_tokens t UNION ALL SELECT t::text FROM tornado_tenants t")
        everything = " ".join(row[0] for row in cur.fetchall())
    conn.close()
    assert stored == {hashlib.sha256(t.encode()).hexdigest() for t in tokens}
    assert not any(t in everything for t in tokens)  # no column anywhere holds a token itself
