"""Tenants and their API tokens (stored hashed), with expiry, revocation and request quotas."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Tenant:
    """A customer of the ERP; every job belongs to one.

    Attributes:
        name: Its name.
        created_at: When it was created.
        requests_per_second: Its API quota; ``None`` uses the deployment's default.
    """

    name: str
    created_at: datetime
    requests_per_second: float | None = None


@dataclass(frozen=True)
class TokenGrant:
    """What a valid token grants: its tenant, until when, at what rate.

    Attributes:
        tenant: The tenant the token acts for.
        expires_at: Epoch seconds after which the token is refused; ``None``: never.
        requests_per_second: The tenant's quota (``None``: the deployment's default).
    """

    tenant: str
    expires_at: float | None = None
    requests_per_second: float | None = None

    def valid_at(self, now: float) -> bool:
        """Whether the token is still valid at epoch second ``now``."""
        return self.expires_at is None or now < self.expires_at


#: Called with the hashes of tokens whose grant changed (created, cut short, revoked, their
#: tenant's quota or existence changed), or ``None`` when changes may have been missed.
TokenChanges = Callable[[frozenset[str] | None], None]


class TenantStorePort(Protocol):
    """Tenant registry. Methods raise ``StoreUnavailable`` when unreachable."""

    def create(self, name: str, token_hash: str, *, expires_at: float | None = None) -> Tenant:
        """Add a tenant with its first token; raises ``ConfigError`` if it exists."""

    def list(self) -> list[Tenant]:
        """All tenants by name."""

    def grants(self) -> dict[str, TokenGrant]:
        """Every token that is neither revoked nor expired, by hash (the API caches this)."""

    def add_token(self, tenant: str, token_hash: str, *, expires_at: float | None = None) -> None:
        """Give ``tenant`` another token; raises ``ConfigError`` for an unknown tenant."""

    def expire_tokens(self, tenant: str, *, at: float, keep: str | None = None) -> int:
        """Make the tenant's tokens (but ``keep``) end at ``at`` unless they end sooner; returns how many."""

    def revoke(self, tenant: str, *, token_hash: str | None = None) -> int:
        """Refuse the tenant's valid tokens from now on (only ``token_hash`` if given); returns how many."""

    def set_quota(self, tenant: str, requests_per_second: float | None) -> None:
        """Set (or, with ``None``, remove) the tenant's requests-per-second quota."""

    def watch(self, on_change: TokenChanges) -> Callable[[], None]:
        """Call ``on_change`` (from another thread) whenever grants change; returns a stop function."""
