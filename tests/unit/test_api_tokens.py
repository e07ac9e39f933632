"""Tokens that can be revoked, rotated and expired, and per-tenant quotas (429 with Retry-After)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.unit.test_web_api import ApiTestCase, FakeClock
from tornado_core.adapters.memory.tenants import MemoryTenantStore
from tornado_core.errors import StoreUnavailable
from tornado_core.tokens import hash_token, new_token
from tornado_core.web.auth import TokenCache


class TestRevocation(ApiTestCase):
    def test_a_revoked_token_is_refused_at_once(self) -> None:
        assert self.call("GET", "/v1/jobs")[0] == 200
        assert self.services.tenants.revoke("acme") == 1
        status, body, _ = self.call("GET", "/v1/jobs")
        assert status == 401
        self.assert_error(status, body, "unauthorized")
        assert "revoked" in body["error"]["message"]
        assert self.call("GET", "/v1/jobs", token="b")[0] == 200  # the other tenant is untouched

    def test_a_revoked_token_stays_refused_while_the_store_is_down(self) -> None:
        assert self.call("GET", "/v1/jobs")[0] == 200
        self.services.tenants.revoke("acme")  # the notice reaches the cache ...

        def store_down() -> dict[str, Any]:
            raise StoreUnavailable("down")

        self.services.tenants.grants = store_down  # type: ignore[method-assign]  # ... then the store fails
        assert self.call("GET", "/v1/jobs")[0] == 401  # fail closed: never served from the old map
        assert self.call("GET", "/v1/jobs", token="b")[0] == 200  # known tokens keep working

    def test_revoking_one_token_keeps_the_others(self) -> None:
        second = new_token()
        self.services.tenants.add_token("acme", hash_token(second))
        self.services.tenants.revoke("acme", token_hash=hash_token(self.token_a))
        assert self.call("GET", "/v1/jobs")[0] == 401
        assert self.call("GET", "/v1/jobs", token=second)[0] == 200

    def test_an_expired_token_is_refused_naming_why(self) -> None:
        stale = new_token()
        self.services.tenants.add_token("acme", hash_token(stale), expires_at=time.time() - 1)
        status, body, _ = self.call("GET", "/v1/jobs", token=stale)
        assert status == 401
        self.assert_error(status, body, "unauthorized")


class TestQuotas(ApiTestCase):
    def test_a_tenant_over_its_quota_gets_429_with_retry_after_and_others_do_not(self) -> None:
        self.services.tenants.set_quota("acme", 2)
        answers = [self.call("GET", "/v1/jobs") for _ in range(12)]
        limited = [(body, response) for status, body, response in answers if status == 429]
        assert limited, [a[0] for a in answers]
        body, response = limited[0]
        self.assert_error(429, body, "rate_limited")
        assert int(response.headers["Retry-After"]) >= 1
        assert {self.call("GET", "/v1/jobs", token="b")[0] for _ in range(12)} == {200}
        assert self.queued() == 0


def test_a_cached_token_stops_working_when_it_expires() -> None:
    wall = FakeClock()
    tenants = MemoryTenantStore(clock=wall)
    token = new_token()
    tenants.create("acme", hash_token(token), expires_at=wall.now + 60)

    async def run() -> None:
        with ThreadPoolExecutor(2) as pool:
            cache = TokenCache(tenants, pool, wall_clock=wall)
            assert await cache.tenant_for(token) == "acme"
            wall.now += 61  # no reload needed: expiry is checked against the clock on every request
            assert await cache.tenant_for(token) is None

    asyncio.run(run())


def test_rotation_keeps_the_old_token_for_the_overlap_then_only_the_new_one() -> None:
    wall = FakeClock()
    tenants = MemoryTenantStore(clock=wall)
    old, new = new_token(), new_token()
    tenants.create("acme", hash_token(old))

    async def run() -> None:
        with ThreadPoolExecutor(2) as pool:
            cache = TokenCache(tenants, pool, wall_clock=wall)
            assert await cache.tenant_for(old) == "acme"
            tenants.add_token("acme", hash_token(new))
            assert tenants.expire_tokens("acme", at=wall.now + 3600, keep=hash_token(new)) == 1
            assert await cache.tenant_for(old) == await cache.tenant_for(new) == "acme"  # overlap
            wall.now += 3601
            assert await cache.tenant_for(old) is None
            assert await cache.tenant_for(new) == "acme"

    asyncio.run(run())
