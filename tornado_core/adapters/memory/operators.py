"""Operator accounts, their sessions and the audit log in memory, as PostgreSQL keeps them (unit tests)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tornado_core.errors import OperatorExists, OperatorNotFound
from tornado_core.ports.operators import AuditEntry, Credentials, Operator, Role


@dataclass(frozen=True)
class _Session:
    operator: str
    expires_at: datetime


class MemoryOperatorStore:
    """Accounts and sessions in dicts (an :class:`OperatorStorePort`)."""

    def __init__(self) -> None:
        self._accounts: dict[str, Credentials] = {}
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def create(self, name: str, *, role: Role, password_hash: str) -> Operator:
        with self._lock:
            if name in self._accounts:
                raise OperatorExists(name)
            operator = Operator(name=name, role=role, disabled=False, created_at=datetime.now(UTC))
            self._accounts[name] = Credentials(operator=operator, password_hash=password_hash)
            return operator

    def credentials(self, name: str) -> Credentials | None:
        with self._lock:
            return self._accounts.get(name)

    def operators(self) -> list[Operator]:
        with self._lock:
            return [self._accounts[name].operator for name in sorted(self._accounts)]

    def update(
        self,
        name: str,
        *,
        role: Role | None = None,
        password_hash: str | None = None,
        disabled: bool | None = None,
    ) -> Operator:
        with self._lock:
            found = self._accounts.get(name)
            if found is None:
                raise OperatorNotFound(name)
            operator = replace(
                found.operator,
                role=role if role is not None else found.operator.role,
                disabled=disabled if disabled is not None else found.operator.disabled,
            )
            self._accounts[name] = Credentials(
                operator=operator, password_hash=password_hash or found.password_hash
            )
            if password_hash is not None or disabled:
                self._sessions = {k: s for k, s in self._sessions.items() if s.operator != name}
            return operator

    def open_session(self, token_hash: str, *, operator: str, expires_at: datetime) -> None:
        with self._lock:
            if operator not in self._accounts:
                raise OperatorNotFound(operator)
            self._sessions[token_hash] = _Session(operator, expires_at)

    def session(self, token_hash: str, *, now: datetime) -> Operator | None:
        with self._lock:
            found = self._sessions.get(token_hash)
            if found is None or found.expires_at <= now:
                return None
            operator = self._accounts[found.operator].operator
            return None if operator.disabled else operator

    def close_session(self, token_hash: str) -> None:
        with self._lock:
            self._sessions.pop(token_hash, None)


class MemoryAuditLog:
    """The audit log in a list (an :class:`AuditLogPort`)."""

    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []
        self._lock = threading.Lock()

    def record(
        self, *, actor: str, action: str, target: str | None = None, detail: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        with self._lock:
            entry = AuditEntry(
                id=len(self._entries) + 1, at=datetime.now(UTC), actor=actor, action=action, target=target,
                detail=dict(detail or {}),
            )  # fmt: skip
            self._entries.append(entry)
            return entry

    def entries(
        self,
        *,
        limit: int = 100,
        before_id: int | None = None,
        actor: str | None = None,
        actions: Sequence[str] = (),
    ) -> list[AuditEntry]:
        with self._lock:
            newest_first = reversed(self._entries)
            return [
                e
                for e in newest_first
                if (before_id is None or e.id < before_id)
                and (actor is None or e.actor == actor)
                and (not actions or e.action in actions)
            ][:limit]
