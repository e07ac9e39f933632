"""The operator store and the audit log on PostgreSQL, held to the same contract as the in-memory ones."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from argon2 import PasswordHasher

from tornado_core.adapters.memory.operators import MemoryAuditLog, MemoryOperatorStore
from tornado_core.adapters.postgres import PostgresPool
from tornado_core.adapters.postgres.audit import PostgresAuditLog
from tornado_core.adapters.postgres.operators import PostgresOperatorStore
from tornado_core.console.accounts import Accounts
from tornado_core.errors import OperatorExists, OperatorNotFound
from tornado_core.ports.operators import AuditLogPort, OperatorStorePort, Role

Ports = tuple[OperatorStorePort, AuditLogPort]
NOW = datetime.now(UTC)


@pytest.fixture
def pool(postgres_url: str) -> Iterator[PostgresPool]:
    pool = PostgresPool(postgres_url, min_size=0, max_size=2)
    yield pool
    pool.close()


@pytest.fixture(params=["memory", "postgres"])
def ports(request: pytest.FixtureRequest) -> Ports:
    """Each implementation of the two ports in turn."""
    if request.param == "memory":
        return MemoryOperatorStore(), MemoryAuditLog()
    pool = request.getfixturevalue("pool")
    return PostgresOperatorStore(pool), PostgresAuditLog(pool)


@pytest.fixture
def name(prefix: str) -> str:
    """An operator name no other test uses (the PostgreSQL database is shared)."""
    return prefix.lower().replace("_", ".") + "@ops"


def test_an_account_is_created_read_listed_and_unique(ports: Ports, name: str) -> None:
    store, _ = ports
    created = store.create(name, role=Role.OPERATOR, password_hash="$argon2id$fake")
    assert (created.name, created.role, created.disabled) == (name, Role.OPERATOR, False)
    assert created.created_at.tzinfo is not None
    found = store.credentials(name)
    assert found is not None and (found.operator, found.password_hash) == (created, "$argon2id$fake")
    assert created in store.operators()
    assert store.credentials(name + ".x") is None
    with pytest.raises(OperatorExists):
        store.create(name, role=Role.ADMIN, password_hash="$argon2id$other")
    assert store.credentials(name) == found


def test_an_update_changes_only_what_is_given(ports: Ports, name: str) -> None:
    store, _ = ports
    store.create(name, role=Role.VIEWER, password_hash="h1")
    assert store.update(name, role=Role.ADMIN).role is Role.ADMIN
    assert store.update(name, disabled=True).disabled
    store.update(name, password_hash="h2")
    found = store.credentials(name)
    assert found is not None
    assert (found.operator.role, found.operator.disabled, found.password_hash) == (Role.ADMIN, True, "h2")
    with pytest.raises(OperatorNotFound):
        store.update(name + ".x", role=Role.ADMIN)


def test_a_session_lives_until_it_expires_or_is_closed(ports: Ports, name: str) -> None:
    store, _ = ports
    operator = store.create(name, role=Role.VIEWER, password_hash="h")
    store.open_session(f"{name}-s1", operator=name, expires_at=NOW + timedelta(hours=1))
    assert store.session(f"{name}-s1", now=NOW) == operator
    assert store.session(f"{name}-s1", now=NOW + timedelta(hours=1)) is None
    assert store.session(f"{name}-unknown", now=NOW) is None
    store.close_session(f"{name}-s1")
    store.close_session(f"{name}-s1")  # already closed: ignored
    assert store.session(f"{name}-s1", now=NOW) is None
    with pytest.raises(OperatorNotFound):
        store.open_session(f"{name}-s2", operator=name + ".x", expires_at=NOW + timedelta(hours=1))


def test_disabling_or_a_new_password_ends_sessions_and_a_role_change_does_not(
    ports: Ports, name: str
) -> None:
    store, _ = ports
    store.create(name, role=Role.VIEWER, password_hash="h")
    later = NOW + timedelta(hours=1)
    store.open_session(f"{name}-a", operator=name, expires_at=later)
    store.update(name, role=Role.OPERATOR)
    session = store.session(f"{name}-a", now=NOW)
    assert session is not None and session.role is Role.OPERATOR
    store.update(name, password_hash="h2")
    assert store.session(f"{name}-a", now=NOW) is None
    store.open_session(f"{name}-b", operator=name, expires_at=later)
    store.update(name, disabled=True)
    store.update(name, disabled=False)
    assert store.session(f"{name}-b", now=NOW) is None


def test_the_audit_log_reads_newest_first_with_filters(ports: Ports, name: str) -> None:
    _, audit = ports
    first = audit.record(actor=name, action="release.promote", target="demo.sleep 1.1.0", detail={"w": 100})
    audit.record(actor=name + ".b", action="jobs.bulk_cancel")
    last = audit.record(actor=name, action="login", detail={"source": "10.0.0.7", "at": NOW})
    assert first.id < last.id and first.at <= last.at and first.at.tzinfo is not None
    assert dict(first.detail) == {"w": 100} and first.target == "demo.sleep 1.1.0"
    assert [e.action for e in audit.entries(actor=name)] == ["login", "release.promote"]
    assert audit.entries(actor=name, limit=1) == [last]
    assert audit.entries(actor=name, before_id=last.id) == [first]
    bulk = audit.entries(actor=name + ".b", actions=["jobs.bulk_cancel", "login"])
    assert [(e.action, e.target, dict(e.detail)) for e in bulk] == [("jobs.bulk_cancel", None, {})]
    assert audit.entries(actor=name, actions=["logout"]) == []


def test_postgres_keeps_no_password_or_session_token_in_clear(
    pool: PostgresPool, postgres_url: str, name: str
) -> None:
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    accounts = Accounts(PostgresOperatorStore(pool), PostgresAuditLog(pool), hasher=hasher)
    password = "correct horse battery staple"
    accounts.create_operator(name, Role.ADMIN, password, actor="cli:root")
    signed_in = accounts.sign_in(name, password, source="10.0.0.7")
    assert signed_in is not None
    assert accounts.session(signed_in.token) == signed_in.operator
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT token_hash FROM tornado_console_sessions WHERE operator = %s", (name,))
        stored = [row[0] for row in cur.fetchall()]
        cur.execute(
            "SELECT o::text FROM tornado_operators o WHERE name = %s UNION ALL "
            "SELECT a::text FROM tornado_audit_log a WHERE actor = %s OR target = %s",
            (name, name, name),
        )
        everything = " ".join(row[0] for row in cur.fetchall())
    conn.close()
    assert stored == [hashlib.sha256(signed_in.token.encode()).hexdigest()]
    assert password not in everything and signed_in.token not in everything
    assert "$argon2id$" in everything and "operator.create" in everything and "10.0.0.7" in everything
