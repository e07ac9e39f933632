"""Console operator accounts over the in-memory store: hashing, sign-in, sessions, CSRF, roles, audit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from tornado_core.adapters.memory.operators import MemoryAuditLog, MemoryOperatorStore
from tornado_core.console.accounts import Accounts, Permission, SignedIn, allowed
from tornado_core.errors import OperatorExists, OperatorInvalid, OperatorNotFound
from tornado_core.ports.operators import Role
from tornado_core.tokens import new_token

PASSWORD = "correct horse battery"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def cheap_hasher(time_cost: int = 1) -> PasswordHasher:
    """Argon2id with tiny costs, so the tests hash quickly."""
    return PasswordHasher(time_cost=time_cost, memory_cost=8, parallelism=1)


class CountingHasher(PasswordHasher):
    """A cheap hasher that counts its verifications."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # type: ignore[override]
        self.verified += 1
        return super().verify(hash, password)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def signed_in_as_ana(accounts: Accounts, role: Role) -> SignedIn:
    """Create operator ``ana`` with ``role`` and sign her in."""
    accounts.create_operator("ana", role, PASSWORD, actor="cli:root")
    signed_in = accounts.sign_in("ana", PASSWORD, source="10.0.0.7")
    assert signed_in is not None
    return signed_in


@pytest.fixture
def store() -> MemoryOperatorStore:
    return MemoryOperatorStore()


@pytest.fixture
def audit() -> MemoryAuditLog:
    return MemoryAuditLog()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(store: MemoryOperatorStore, audit: MemoryAuditLog, clock: Clock) -> Accounts:
    return Accounts(store, audit, session_hours=12, clock=clock, hasher=cheap_hasher())


def test_a_new_operator_is_stored_with_an_argon2id_hash_and_audited(
    accounts: Accounts, store: MemoryOperatorStore, audit: MemoryAuditLog
) -> None:
    operator = accounts.create_operator("ana.silva@erp-1", Role.OPERATOR, PASSWORD, actor="cli:root")
    assert (operator.name, operator.role, operator.disabled) == ("ana.silva@erp-1", Role.OPERATOR, False)
    stored = store.credentials("ana.silva@erp-1")
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$") and PASSWORD not in stored.password_hash
    [entry] = audit.entries()
    assert (entry.actor, entry.action, entry.target, dict(entry.detail)) == (
        "cli:root", "operator.create", "ana.silva@erp-1", {"role": "operator"},
    )  # fmt: skip


def test_a_taken_name_is_refused_and_audited_once(accounts: Accounts, audit: MemoryAuditLog) -> None:
    accounts.create_operator("ana", Role.VIEWER, PASSWORD, actor="cli:root")
    with pytest.raises(OperatorExists, match="'ana' already exists"):
        accounts.create_operator("ana", Role.ADMIN, "another long password", actor="cli:root")
    assert [e.action for e in audit.entries()] == ["operator.create"]
    assert [o.role for o in accounts.operators()] == [Role.VIEWER]


@pytest.mark.parametrize("name", ["", "Ana", "ana silva", "a" * 65, "josé", "ana/x"])
def test_names_outside_the_allowed_characters_are_refused(accounts: Accounts, name: str) -> None:
    with pytest.raises(OperatorInvalid) as raised:
        accounts.create_operator(name, Role.VIEWER, PASSWORD, actor="cli:root")
    assert raised.value.field == "name"
    assert accounts.operators() == []


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short pass", "at least 12 characters"),
        ("ana.operator", "too easy to guess"),
        ("abababababababab", "too easy to guess"),
        ("x" * 1025, "at most 1024 characters"),
    ],
)
def test_weak_passwords_are_refused_with_a_message(accounts: Accounts, password: str, message: str) -> None:
    with pytest.raises(OperatorInvalid, match=message) as raised:
        accounts.create_operator("ana.operator", Role.VIEWER, password, actor="cli:root")
    assert raised.value.field == "password"
    assert accounts.operators() == []


def test_an_unknown_role_is_refused(accounts: Accounts) -> None:
    with pytest.raises(OperatorInvalid) as raised:
        accounts.create_operator("ana", "root", PASSWORD, actor="cli:root")  # type: ignore[arg-type]
    assert raised.value.field == "role"


def test_sign_in_opens_a_session_stored_only_as_its_sha256(
    accounts: Accounts, store: MemoryOperatorStore, audit: MemoryAuditLog
) -> None:
    accounts.create_operator("ana", Role.ADMIN, PASSWORD, actor="cli:root")
    signed_in = accounts.sign_in("Ana ", PASSWORD, source="10.0.0.7")
    assert signed_in is not None
    assert signed_in.operator.name == "ana" and signed_in.expires_at == START + timedelta(hours=12)
    assert len(signed_in.token) >= 43
    assert accounts.session(signed_in.token) == signed_in.operator
    digest = hashlib.sha256(signed_in.token.encode()).hexdigest()
    assert store.session(digest, now=START) == signed_in.operator
    assert store.session(signed_in.token, now=START) is None
    login = audit.entries(limit=1)[0]
    assert (login.actor, login.action, dict(login.detail)) == ("ana", "login", {"source": "10.0.0.7"})


def test_a_wrong_password_opens_nothing_and_is_audited(accounts: Accounts, audit: MemoryAuditLog) -> None:
    accounts.create_operator("ana", Role.ADMIN, PASSWORD, actor="cli:root")
    assert accounts.sign_in("ana", "incorrect horse battery", source="10.0.0.7") is None
    failed = audit.entries(limit=1)[0]
    assert (failed.actor, failed.action, dict(failed.detail)) == (
        "ana", "login_failed", {"source": "10.0.0.7", "reason": "wrong password"},
    )  # fmt: skip


def test_an_unknown_account_still_costs_a_password_verification(
    store: MemoryOperatorStore, audit: MemoryAuditLog
) -> None:
    hasher = CountingHasher()
    accounts = Accounts(store, audit, hasher=hasher)
    accounts.create_operator("ana", Role.ADMIN, PASSWORD, actor="cli:root")
    assert accounts.sign_in("ana", "incorrect horse battery", source="10.0.0.7") is None
    assert hasher.verified == 1
    assert accounts.sign_in("nobody", PASSWORD, source="10.0.0.7") is None
    assert hasher.verified == 2  # the dummy hash was verified, as for a real account
    failed = audit.entries(limit=1)[0]
    assert (failed.actor, failed.action, failed.detail["reason"]) == (
        "nobody",
        "login_failed",
        "unknown account",
    )


def test_a_disabled_account_cannot_sign_in_and_loses_its_sessions(
    accounts: Accounts, audit: MemoryAuditLog
) -> None:
    before = signed_in_as_ana(accounts, Role.OPERATOR)
    disabled = accounts.update_operator("ana", disabled=True, actor="root-admin")
    assert disabled.disabled
    assert accounts.session(before.token) is None
    assert accounts.sign_in("ana", PASSWORD, source="10.0.0.7") is None
    assert audit.entries(limit=1)[0].detail["reason"] == "disabled"
    accounts.update_operator("ana", disabled=False, actor="root-admin")
    assert accounts.sign_in("ana", PASSWORD, source="10.0.0.7") is not None


def test_a_session_ends_when_it_expires(accounts: Accounts, clock: Clock) -> None:
    signed_in = signed_in_as_ana(accounts, Role.VIEWER)
    clock.now = START + timedelta(hours=11, minutes=59)
    assert accounts.session(signed_in.token) is not None
    clock.now = START + timedelta(hours=12)
    assert accounts.session(signed_in.token) is None


def test_sign_out_ends_the_session_and_is_audited(accounts: Accounts, audit: MemoryAuditLog) -> None:
    signed_in = signed_in_as_ana(accounts, Role.VIEWER)
    accounts.sign_out(signed_in.token, actor="ana")
    assert accounts.session(signed_in.token) is None
    assert (audit.entries(limit=1)[0].actor, audit.entries(limit=1)[0].action) == ("ana", "logout")


def test_a_tenant_token_or_a_made_up_one_opens_no_session(accounts: Accounts) -> None:
    accounts.create_operator("ana", Role.ADMIN, PASSWORD, actor="cli:root")
    assert accounts.sign_in("ana", PASSWORD, source="10.0.0.7") is not None
    assert accounts.session(new_token()) is None
    assert accounts.session("") is None


def test_a_new_password_replaces_the_old_ends_sessions_and_is_never_logged(
    accounts: Accounts, audit: MemoryAuditLog
) -> None:
    signed_in = signed_in_as_ana(accounts, Role.VIEWER)
    accounts.update_operator("ana", password="a brand new passphrase", actor="cli:root")
    assert accounts.session(signed_in.token) is None
    assert accounts.sign_in("ana", PASSWORD, source="10.0.0.7") is None
    assert accounts.sign_in("ana", "a brand new passphrase", source="10.0.0.7") is not None
    update = audit.entries(actions=["operator.update"])[0]
    assert dict(update.detail) == {"password": "changed"}
    assert not any("passphrase" in repr(entry) for entry in audit.entries())


def test_a_role_change_applies_to_an_open_session(accounts: Accounts, audit: MemoryAuditLog) -> None:
    signed_in = signed_in_as_ana(accounts, Role.VIEWER)
    accounts.update_operator("ana", role=Role.ADMIN, actor="cli:root")
    session = accounts.session(signed_in.token)
    assert session is not None and session.role is Role.ADMIN
    assert dict(audit.entries(actions=["operator.update"])[0].detail) == {"role": "admin"}


def test_the_last_enabled_admin_can_be_neither_demoted_nor_disabled(accounts: Accounts) -> None:
    accounts.create_operator("ana", Role.ADMIN, PASSWORD, actor="cli:root")
    with pytest.raises(OperatorInvalid, match="last enabled admin"):
        accounts.update_operator("ana", role=Role.OPERATOR, actor="ana")
    with pytest.raises(OperatorInvalid, match="last enabled admin"):
        accounts.update_operator("ana", disabled=True, actor="ana")
    accounts.create_operator("bea", Role.ADMIN, PASSWORD, actor="ana")
    assert accounts.update_operator("ana", role=Role.OPERATOR, actor="bea").role is Role.OPERATOR
    with pytest.raises(OperatorInvalid, match="bea is the last enabled admin"):
        accounts.update_operator("bea", disabled=True, actor="bea")


def test_changing_an_unknown_account_is_refused(accounts: Accounts) -> None:
    with pytest.raises(OperatorNotFound, match="no operator 'ghost'"):
        accounts.update_operator("ghost", role=Role.ADMIN, actor="cli:root")
    with pytest.raises(OperatorNotFound):
        accounts.update_operator("ghost", actor="cli:root")


def test_a_hash_with_older_parameters_is_renewed_at_sign_in(
    store: MemoryOperatorStore, audit: MemoryAuditLog
) -> None:
    Accounts(store, audit, hasher=cheap_hasher(1)).create_operator("ana", Role.VIEWER, PASSWORD, actor="x")
    first = store.credentials("ana")
    assert first is not None and ",t=1," in first.password_hash
    stronger = Accounts(store, audit, hasher=cheap_hasher(2))
    assert stronger.sign_in("ana", PASSWORD, source="10.0.0.7") is not None
    renewed = store.credentials("ana")
    assert renewed is not None and ",t=2," in renewed.password_hash
    assert stronger.sign_in("ana", PASSWORD, source="10.0.0.7") is not None


def test_the_csrf_token_derives_from_its_session_and_matches_only_it() -> None:
    session, other = new_token(), new_token()
    csrf = Accounts.csrf_token(session)
    assert csrf == Accounts.csrf_token(session) and csrf != Accounts.csrf_token(other)
    assert session not in csrf
    assert Accounts.csrf_ok(session, csrf)
    assert not Accounts.csrf_ok(other, csrf)
    assert not Accounts.csrf_ok(session, None)
    assert not Accounts.csrf_ok(session, "")
    assert not Accounts.csrf_ok(session, csrf[:-1] + "é")
    assert not Accounts.csrf_ok("", Accounts.csrf_token(""))


@pytest.mark.parametrize(
    ("role", "granted"),
    [
        (Role.VIEWER, {Permission.VIEW}),
        (Role.OPERATOR, {Permission.VIEW, Permission.ACT}),
        (Role.ADMIN, {Permission.VIEW, Permission.ACT, Permission.ADMINISTER}),
    ],
)
def test_each_role_has_its_permissions(role: Role, granted: set[Permission]) -> None:
    assert {p for p in Permission if allowed(role, p)} == granted


def test_audit_entries_filter_by_actor_and_action_and_page_back(accounts: Accounts) -> None:
    first = accounts.record("ana", "release.promote", "demo.sleep 1.1.0", {"weight": 100})
    accounts.record("bia", "jobs.bulk_cancel", None)
    accounts.record("ana", "dlq.redrive", "demo.fail")
    assert [e.action for e in accounts.audit_entries(actor="ana")] == ["dlq.redrive", "release.promote"]
    assert [e.actor for e in accounts.audit_entries(actions=["jobs.bulk_cancel", "dlq.redrive"])] == [
        "ana", "bia",
    ]  # fmt: skip
    newest = accounts.audit_entries(limit=1)
    assert [e.action for e in newest] == ["dlq.redrive"]
    older = accounts.audit_entries(limit=5, before_id=newest[0].id)
    assert [e.action for e in older] == ["jobs.bulk_cancel", "release.promote"]
    assert older[-1] == first and dict(first.detail) == {"weight": 100}
