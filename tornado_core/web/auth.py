"""Bearer-token authentication against an in-memory cache of the tenants' token grants.

The cache follows the store: every change (a token created, rotated, revoked, expired early, a
quota changed) is pushed by the store's ``watch`` and reaches it at once. A changed token is
dropped from the cache before the store is read again, so a revoked token is refused even when
the store cannot be reached right after; expiry is checked on every request against the clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

from tornado_core.errors import StoreUnavailable
from tornado_core.ports.tenants import TenantStorePort, TokenGrant
from tornado_core.tokens import hash_token

_log = logging.getLogger(__name__)


class TokenCache:
    """Resolves bearer tokens to their grants (tenant, expiry, quota).

    Args:
        tenants: The tenant store.
        executor: Where the blocking store call runs.
        max_age: Seconds after which the grants are reloaded in the background (a safety net
            under the store's change notifications).
        min_gap: Least seconds between two reloads triggered by unknown tokens, unless the store
            notified a change since the last load.
        clock: Monotonic clock (tests).
        wall_clock: Epoch clock that token expiry is checked against (tests).
    """

    def __init__(
        self,
        tenants: TenantStorePort,
        executor: Executor,
        *,
        max_age: float = 30.0,
        min_gap: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._tenants = tenants
        self._executor = executor
        self._max_age = max_age
        self._min_gap = min_gap
        self._clock = clock
        self._wall_clock = wall_clock
        self._grants: dict[str, TokenGrant] | None = None
        self._loaded_at = -float("inf")
        self._attempted_at = -float("inf")
        self._refreshing: asyncio.Task[None] | None = None
        self._changes = 0  # bumped by every notified change
        self._loaded_changes = -1  # the value of _changes that the grants reflect
        self._stop_watching: Callable[[], None] | None = None

    async def grant_for(self, token: str) -> TokenGrant | None:
        """The grant of ``token``, or ``None`` if it is unknown, revoked or expired.

        Raises:
            StoreUnavailable: The grants were never loaded and the store is unreachable.
        """
        grant = self.cached_grant(token)
        if grant is None and self._may_reload(self._clock()):
            await asyncio.shield(self._start_refresh())
            grant = self._grants.get(hash_token(token)) if self._grants is not None else None
        if self._grants is None:
            raise StoreUnavailable("tenant tokens are not loaded yet and the store is unreachable")
        return grant

    def cached_grant(self, token: str) -> TokenGrant | None:
        """The grant of ``token`` if the loaded grants hold it, at once; ``None``: ask :meth:`grant_for`.

        Starts a refresh in the background when the grants are older than their maximum age.
        """
        self._watch()
        now = self._clock()
        stale = self._grants is not None and now - self._loaded_at >= self._max_age
        if stale and now - self._attempted_at >= self._min_gap:
            self._start_refresh()
        return self._grants.get(hash_token(token)) if self._grants is not None else None

    async def tenant_for(self, token: str) -> str | None:
        """The tenant of a valid ``token``, or ``None`` (see :meth:`grant_for`)."""
        grant = await self.grant_for(token)
        return grant.tenant if grant is not None and self.valid(grant) else None

    def valid(self, grant: TokenGrant) -> bool:
        """Whether ``grant`` has not expired yet."""
        return grant.valid_at(self._wall_clock())

    def close(self) -> None:
        """Stop following the store's changes."""
        if self._stop_watching is not None:
            self._stop_watching()
            self._stop_watching = None

    def _may_reload(self, now: float) -> bool:
        changed = self._changes != self._loaded_changes
        return self._refreshing is not None or changed or now - self._attempted_at >= self._min_gap

    def _watch(self) -> None:
        if self._stop_watching is not None:
            return
        loop = asyncio.get_running_loop()

        def notified(changed: frozenset[str] | None) -> None:  # usually from the store's own thread
            if _running_loop() is loop:
                self._changed(changed)
            else:
                loop.call_soon_threadsafe(self._changed, changed)

        self._stop_watching = self._tenants.watch(notified)

    def _changed(self, changed: frozenset[str] | None) -> None:
        """A notified change: drop the changed tokens at once (fail closed), then reload."""
        self._changes += 1
        if changed and self._grants is not None:
            self._grants = {d: g for d, g in self._grants.items() if d not in changed}
        self._start_refresh()

    def _start_refresh(self) -> asyncio.Task[None]:
        if self._refreshing is None:
            self._attempted_at = self._clock()
            self._refreshing = asyncio.get_running_loop().create_task(self._load())
        return self._refreshing

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        changes = self._changes
        try:
            grants = await loop.run_in_executor(self._executor, self._tenants.grants)
        except StoreUnavailable as exc:
            _log.warning("cannot reload tenant tokens (keeping the cached ones): %s", exc)
        except Exception:
            _log.exception("cannot reload tenant tokens (keeping the cached ones)")
        else:
            self._grants = dict(grants)
            self._loaded_at = self._clock()
            self._loaded_changes = changes
        finally:
            self._refreshing = None
        if self._changes != changes and self._loaded_changes == changes:
            self._start_refresh()  # a change arrived while this load read the store


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
