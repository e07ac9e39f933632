"""Tenants and their API tokens (stored hashed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Tenant:
    """A customer of the ERP; every job belongs to one."""

    name: str
    created_at: datetime


class TenantStorePort(Protocol):
    """Tenant registry. Methods raise ``StoreUnavailable`` when unreachable."""

    def create(self, name: str, token_hash: str) -> Tenant:
        """Add a tenant with the hash of its token; raises ``ConfigError`` if it exists."""

    def list(self) -> list[Tenant]:
        """All tenants by name."""

    def token_hashes(self) -> dict[str, str]:
        """Every token hash mapped to its tenant's name (the API caches this)."""
