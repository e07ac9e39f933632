"""Token buckets in PostgreSQL: concurrent takers across connections share one bucket per key."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tornado_core.adapters.postgres import PostgresPool
from tornado_core.adapters.postgres.limits import PostgresRateLimiter


@pytest.fixture
def limiter(postgres_url: str) -> Iterator[PostgresRateLimiter]:
    pool = PostgresPool(postgres_url, max_size=4)
    yield PostgresRateLimiter(pool)
    pool.close()


def test_concurrent_takers_get_exactly_the_burst(limiter: PostgresRateLimiter) -> None:
    key = f"test|{uuid.uuid4().hex}"
    with ThreadPoolExecutor(4) as pool:  # four connections at once on one bucket
        waits = list(pool.map(lambda _: limiter.try_take(key, per_second=0.001, capacity=5), range(20)))
    assert waits.count(0.0) == 5
    # The next token is due in about 1 / 0.001 s: the wait says so (less the refill meanwhile).
    assert all(900 < wait <= 1000 for wait in waits if wait)


def test_each_key_has_its_own_bucket(limiter: PostgresRateLimiter) -> None:
    first, second = f"test|{uuid.uuid4().hex}", f"test|{uuid.uuid4().hex}"
    assert limiter.try_take(first, per_second=0.001, capacity=1) == 0.0
    assert limiter.try_take(first, per_second=0.001, capacity=1) > 0
    assert limiter.try_take(second, per_second=0.001, capacity=1) == 0.0
