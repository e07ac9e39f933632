"""Tenants and their tokens in memory, with the semantics of the PostgreSQL store (unit tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from tornado_core.errors import ConfigError
from tornado_core.ports.tenants import Tenant, TokenChanges, TokenGrant


@dataclass(frozen=True)
class _Token:
    tenant: str
    expires_at: float | None = None
    revoked: bool = False


class MemoryTenantStore:
    """Tenants, tokens and quotas in dicts; watchers are told of changes at once, synchronously."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tenants: dict[str, Tenant] = {}
        self._tokens: dict[str, _Token] = {}
        self._watchers: list[TokenChanges] = []
        self._lock = threading.Lock()

    def create(self, name: str, token_hash: str, *, expires_at: float | None = None) -> Tenant:
        with self._lock:
            if name in self._tenants:
                raise ConfigError(f"tenant {name!r} already exists")
            if token_hash in self._tokens:
                raise ConfigError(f"tenant {name!r}: that token is already in use")
            tenant = self._tenants[name] = Tenant(name, datetime.now(UTC))
            self._tokens[token_hash] = _Token(name, expires_at)
        self._tell({token_hash})
        return tenant

    def list(self) -> list[Tenant]:
        with self._lock:
            return sorted(self._tenants.values(), key=lambda t: t.name)

    def grants(self) -> dict[str, TokenGrant]:
        now = self._clock()
        with self._lock:
            rates = {name: tenant.requests_per_second for name, tenant in self._tenants.items()}
            return {
                digest: TokenGrant(token.tenant, token.expires_at, rates[token.tenant])
                for digest, token in self._tokens.items()
                if not token.revoked and (token.expires_at is None or token.expires_at > now)
            }

    def add_token(self, tenant: str, token_hash: str, *, expires_at: float | None = None) -> None:
        with self._lock:
            if tenant not in self._tenants:
                raise ConfigError(f"no tenant {tenant!r}")
            if token_hash in self._tokens:
                raise ConfigError(f"tenant {tenant!r}: that token is already in use")
            self._tokens[token_hash] = _Token(tenant, expires_at)
        self._tell({token_hash})

    def expire_tokens(self, tenant: str, *, at: float, keep: str | None = None) -> int:
        def shorten(digest: str, token: _Token) -> _Token | None:
            sooner = token.expires_at is not None and token.expires_at <= at
            return None if digest == keep or token.revoked or sooner else replace(token, expires_at=at)

        return self._change(tenant, shorten)

    def revoke(self, tenant: str, *, token_hash: str | None = None) -> int:
        now = self._clock()

        def cancel(digest: str, token: _Token) -> _Token | None:
            chosen = token_hash is None or digest == token_hash
            valid = not token.revoked and (token.expires_at is None or token.expires_at > now)
            return replace(token, revoked=True) if chosen and valid else None

        return self._change(tenant, cancel)

    def set_quota(self, tenant: str, requests_per_second: float | None) -> None:
        with self._lock:
            if tenant not in self._tenants:
                raise ConfigError(f"no tenant {tenant!r}")
            self._tenants[tenant] = replace(self._tenants[tenant], requests_per_second=requests_per_second)
            changed = {d for d, t in self._tokens.items() if t.tenant == tenant}
        self._tell(changed)

    def watch(self, on_change: TokenChanges) -> Callable[[], None]:
        with self._lock:
            self._watchers.append(on_change)
        return lambda: self._watchers.remove(on_change) if on_change in self._watchers else None

    def _change(self, tenant: str, update: Callable[[str, _Token], _Token | None]) -> int:
        changed: set[str] = set()
        with self._lock:
            for digest, token in list(self._tokens.items()):
                new = update(digest, token) if token.tenant == tenant else None
                if new is not None:
                    self._tokens[digest] = new
                    changed.add(digest)
        self._tell(changed)
        return len(changed)

    def _tell(self, changed: set[str]) -> None:
        for watcher in list(self._watchers):
            watcher(frozenset(changed))
