"""Operator accounts of the console: creation and changes, sign-in sessions, CSRF, roles and the audit log.

Operators are people, separate from tenants: a tenant's API token opens no session here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher

from tornado_core.console import sessions
from tornado_core.console.passwords import Passwords, check_password
from tornado_core.errors import OperatorInvalid, OperatorNotFound
from tornado_core.ports.operators import AuditEntry, AuditLogPort, Operator, OperatorStorePort, Role

#: An operator's name: 1 to 64 of lower-case letters, digits and ``. _ @ -``.
NAME_PATTERN = re.compile(r"[a-z0-9._@-]{1,64}")
#: The most audit entries one read returns.
MAX_AUDIT_ENTRIES = 1000


class Permission(StrEnum):
    """What a console page or action needs."""

    VIEW = "view"  # every role
    ACT = "act"  # operator and admin: act on jobs, dead letters, releases
    ADMINISTER = "administer"  # admin: manage operator accounts


_ROLE_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
_NEEDED_RANK = {Permission.VIEW: 0, Permission.ACT: 1, Permission.ADMINISTER: 2}


def allowed(role: Role, permission: Permission) -> bool:
    """Whether an operator of ``role`` has ``permission``."""
    return _ROLE_RANK[role] >= _NEEDED_RANK[permission]


def check_name(name: str) -> None:
    """Refuse a name that is not 1-64 of ``[a-z0-9._@-]``.

    Raises:
        OperatorInvalid: ``field`` is ``name``.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise OperatorInvalid("name", "use 1-64 lower-case letters, digits, '.', '_', '@' or '-'")


def as_role(role: Role | str) -> Role:
    """``role`` as a :class:`Role`.

    Raises:
        OperatorInvalid: ``field`` is ``role``: not one of viewer, operator, admin.
    """
    try:
        return Role(role)
    except ValueError:
        raise OperatorInvalid("role", f"{role!r} is not one of {', '.join(Role)}") from None


@dataclass(frozen=True)
class SignedIn:
    """A new session: the token for the cookie (shown once, stored hashed), whose it is, until when."""

    token: str
    operator: Operator
    expires_at: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Accounts:
    """The console's accounts service, over an operator store and the audit log.

    Args:
        store: Operator accounts and sessions.
        audit: The audit log every change, sign-in and console action is written to.
        session_hours: How long a session lasts after sign-in.
        clock: The current time (UTC), injectable for tests.
        hasher: The Argon2id hasher (default parameters unless given; tests pass cheap ones).
    """

    def __init__(
        self,
        store: OperatorStorePort,
        audit: AuditLogPort,
        *,
        session_hours: float = 12.0,
        clock: Callable[[], datetime] = _utc_now,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._store = store
        self._audit = audit
        self._session_length = timedelta(hours=session_hours)
        self._clock = clock
        self._passwords = Passwords(hasher)

    def create_operator(self, name: str, role: Role, password: str, *, actor: str) -> Operator:
        """Add an account, checked whole before anything is stored; audited ``operator.create``.

        Raises:
            OperatorInvalid: The name, role or password is refused.
            OperatorExists: ``name`` is taken.
        """
        check_name(name)
        role = as_role(role)
        check_password(password, name=name)
        operator = self._store.create(name, role=role, password_hash=self._passwords.hash(password))
        self.record(actor, "operator.create", name, {"role": str(role)})
        return operator

    def update_operator(
        self,
        name: str,
        *,
        actor: str,
        role: Role | None = None,
        password: str | None = None,
        disabled: bool | None = None,
    ) -> Operator:
        """Change an account's role, password or state; audited ``operator.update`` (never the password).

        A new password or disabling the account ends its sessions. Nothing given: the account as it is.

        Raises:
            OperatorInvalid: The role or password is refused, or the change would leave no enabled
                admin (nobody could manage accounts from the console any more).
            OperatorNotFound: No such account.
        """
        new_role = as_role(role) if role is not None else None
        if password is not None:
            check_password(password, name=name)
        if new_role is None and password is None and disabled is None:
            return self._existing(name)
        if (new_role not in (None, Role.ADMIN)) or disabled:
            self._keep_an_admin(name, "disabled" if disabled else "role")
        operator = self._store.update(
            name,
            role=new_role,
            password_hash=self._passwords.hash(password) if password is not None else None,
            disabled=disabled,
        )
        changes: dict[str, Any] = {"role": new_role and str(new_role), "disabled": disabled}
        detail = {key: value for key, value in changes.items() if value is not None}
        if password is not None:
            detail["password"] = "changed"
        self.record(actor, "operator.update", name, detail)
        return operator

    def operators(self) -> list[Operator]:
        """Every account, by name."""
        return self._store.operators()

    def _keep_an_admin(self, name: str, field: str) -> None:
        """Refuse to demote or disable the last enabled admin."""
        admins = [o.name for o in self._store.operators() if o.role is Role.ADMIN and not o.disabled]
        if admins == [name]:
            raise OperatorInvalid(field, f"{name} is the last enabled admin: make another admin first")

    def sign_in(self, name: str, password: str, *, source: str) -> SignedIn | None:
        """Open a session if ``password`` is the enabled account's; audited ``login`` or ``login_failed``.

        An unknown name costs the same hashing as a known one. A hash made with older Argon2
        parameters is renewed on success.

        Args:
            name: The name typed (spaces around it and upper case are ignored).
            password: The password typed.
            source: Where the attempt came from (the client's IP address), for the audit log.

        Returns:
            The new session, or ``None`` (unknown account, wrong password or disabled account alike).
        """
        name = name.strip().lower()
        found = self._store.credentials(name) if NAME_PATTERN.fullmatch(name) else None
        matches = self._passwords.check(found.password_hash if found else None, password)
        if found is None or not matches or found.operator.disabled:
            reason = "unknown account" if found is None else "wrong password" if not matches else "disabled"
            self.record(name[:64] or "?", "login_failed", None, {"source": source, "reason": reason})
            return None
        if self._passwords.needs_rehash(found.password_hash):
            self._store.update(name, password_hash=self._passwords.hash(password))
        token = sessions.new_session_token()
        expires_at = self._clock() + self._session_length
        self._store.open_session(sessions.session_key(token), operator=name, expires_at=expires_at)
        self.record(name, "login", None, {"source": source})
        return SignedIn(token=token, operator=found.operator, expires_at=expires_at)

    def session(self, token: str) -> Operator | None:
        """The operator of the live session ``token`` (the cookie's value), or ``None``."""
        if not token:
            return None
        return self._store.session(sessions.session_key(token), now=self._clock())

    def sign_out(self, token: str, *, actor: str) -> None:
        """End session ``token``; audited ``logout``."""
        self._store.close_session(sessions.session_key(token))
        self.record(actor, "logout")

    @staticmethod
    def csrf_token(token: str) -> str:
        """The CSRF token of session ``token``, for the console's forms (derived, never stored)."""
        return sessions.csrf_token(token)

    @staticmethod
    def csrf_ok(token: str, given: str | None) -> bool:
        """Whether ``given`` is the CSRF token of session ``token`` (constant-time compare)."""
        return sessions.csrf_ok(token, given)

    def record(
        self, actor: str, action: str, target: str | None = None, detail: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        """Append one entry to the audit log (the console calls it for each of its actions)."""
        return self._audit.record(actor=actor, action=action, target=target, detail=detail)

    def audit_entries(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        actor: str | None = None,
        actions: Sequence[str] = (),
    ) -> list[AuditEntry]:
        """Audit entries newest first (at most :data:`MAX_AUDIT_ENTRIES`), optionally filtered.

        Args:
            limit: How many at most.
            before_id: Only entries older than this one (the next page).
            actor: Only this actor's.
            actions: Only these actions (all when empty).
        """
        limit = max(1, min(limit, MAX_AUDIT_ENTRIES))
        return self._audit.entries(limit=limit, before_id=before_id, actor=actor, actions=tuple(actions))

    def _existing(self, name: str) -> Operator:
        found = self._store.credentials(name)
        if found is None:
            raise OperatorNotFound(name)
        return found.operator
