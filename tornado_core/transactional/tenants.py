"""Which tenants exist, asked of the tenant store at most once a second (an unknown name asks again)."""

from __future__ import annotations

import time
from collections.abc import Callable

from tornado_core.ports.tenants import TenantStorePort
from tornado_core.transactional.entries import UnknownTenant


class KnownTenants:
    """A cache of the tenant names, reloaded when a name is not in it.

    Args:
        tenants: The tenant store.
        min_reload: Seconds between two reloads (a burst of unknown names asks once).
        clock: Monotonic clock (tests).
    """

    def __init__(
        self,
        tenants: TenantStorePort,
        *,
        min_reload: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenants = tenants
        self._min_reload = min_reload
        self._clock = clock
        self._names: frozenset[str] = frozenset()
        self._loaded_at: float | None = None

    def require(self, name: str) -> None:
        """Return if the tenant exists.

        Raises:
            UnknownTenant: It does not.
            StoreUnavailable: The tenant store cannot be reached.
        """
        if name in self._names:
            return
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._min_reload:
            self._names = frozenset(tenant.name for tenant in self._tenants.list())
            self._loaded_at = now
        if name not in self._names:
            raise UnknownTenant(name)
