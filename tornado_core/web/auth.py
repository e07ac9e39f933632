"""Bearer-token authentication against an in-memory cache of the tenants' token hashes.

The tenant store is never asked per request: the map of token hashes is loaded
once, refreshed in the background when it is older than ``max_age``, and
refreshed at once (at most every ``min_gap`` seconds) when an unknown token
arrives, so a tenant created a moment ago can submit straight away. When the
store is down, the last map keeps serving (known tokens keep working).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor

from tornado_core.errors import StoreUnavailable
from tornado_core.ports.tenants import TenantStorePort
from tornado_core.tokens import hash_token

_log = logging.getLogger(__name__)


class TokenCache:
    """Resolves bearer tokens to tenant names.

    Args:
        tenants: The tenant store.
        executor: Where the blocking store call runs.
        max_age: Seconds after which the map is refreshed in the background.
        min_gap: Least seconds between two refreshes triggered by unknown tokens.
        clock: Monotonic clock (tests).
    """

    def __init__(
        self,
        tenants: TenantStorePort,
        executor: Executor,
        *,
        max_age: float = 30.0,
        min_gap: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenants = tenants
        self._executor = executor
        self._max_age = max_age
        self._min_gap = min_gap
        self._clock = clock
        self._hashes: dict[str, str] | None = None
        self._loaded_at = -float("inf")
        self._attempted_at = -float("inf")
        self._refreshing: asyncio.Task[None] | None = None

    async def tenant_for(self, token: str) -> str | None:
        """The tenant owning ``token``, or ``None`` if the token is unknown.

        Raises:
            StoreUnavailable: The map was never loaded and the store is unreachable.
        """
        digest = hash_token(token)
        now = self._clock()
        if self._hashes is not None:
            if now - self._loaded_at >= self._max_age and now - self._attempted_at >= self._min_gap:
                self._start_refresh()
            tenant = self._hashes.get(digest)
            if tenant is not None:
                return tenant
        if self._refreshing is not None or now - self._attempted_at >= self._min_gap:
            await self._refresh()
        if self._hashes is None:
            raise StoreUnavailable("tenant tokens are not loaded yet and the store is unreachable")
        return self._hashes.get(digest)

    def _start_refresh(self) -> asyncio.Task[None]:
        if self._refreshing is None:
            self._attempted_at = self._clock()
            self._refreshing = asyncio.get_running_loop().create_task(self._load())
        return self._refreshing

    async def _refresh(self) -> None:
        await asyncio.shield(self._start_refresh())

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            hashes = await loop.run_in_executor(self._executor, self._tenants.token_hashes)
        except StoreUnavailable as exc:
            _log.warning("cannot refresh tenant tokens (keeping the cached ones): %s", exc)
        except Exception:
            _log.exception("cannot refresh tenant tokens (keeping the cached ones)")
        else:
            self._hashes = dict(hashes)
            self._loaded_at = self._clock()
        finally:
            self._refreshing = None
