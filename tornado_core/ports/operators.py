"""The operators port: console accounts with roles, their sign-in sessions, and the audit log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class Role(StrEnum):
    """What an operator may do in the console.

    ``viewer`` looks at everything and changes nothing; ``operator`` also acts on jobs, dead
    letters and releases; ``admin`` also manages operator accounts.
    """

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


@dataclass(frozen=True, kw_only=True)
class Operator:
    """An operator account (never its password hash)."""

    name: str
    role: Role
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """An account with its stored password hash, read only to check a password."""

    operator: Operator
    password_hash: str


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One line of the audit log: who did what, to what, when."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: Mapping[str, Any] = field(default_factory=dict)


class OperatorStorePort(Protocol):
    """Operator accounts and their sessions. Methods raise ``StoreUnavailable`` when unreachable."""

    def create(self, name: str, *, role: Role, password_hash: str) -> Operator:
        """Add an account.

        Raises:
            OperatorExists: ``name`` is taken.
        """

    def credentials(self, name: str) -> Credentials | None:
        """The account and its password hash, or ``None`` if there is no such account."""

    def operators(self) -> list[Operator]:
        """Every account, by name."""

    def update(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> Operator:
        """Change what is given; disabling an account or changing its password ends its sessions.

        Raises:
            OperatorNotFound: No such account.
        """

    def open_session(self, token_hash: str, *, operator: str, expires_at: datetime) -> None:
        """Record a signed-in browser by the hash of its cookie's token."""

    def session(self, token_hash: str, *, now: datetime) -> Operator | None:
        """The operator of a live session (not expired, account not disabled), or ``None``."""

    def close_session(self, token_hash: str) -> None:
        """End a session (signing out); an unknown one is ignored."""


class AuditLogPort(Protocol):
    """The append-only audit log. Methods raise ``StoreUnavailable`` when unreachable."""

    def record(
        self, *, actor: str, action: str, target: str | None = None, detail: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        """Append one entry and return it."""

    def entries(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        actor: str | None = None,
        actions: Sequence[str] = (),
    ) -> list[AuditEntry]:
        """Entries newest first, optionally of one actor or of some actions, older than ``before_id``."""
