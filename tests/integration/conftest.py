"""Fixtures of the integration tests shared by several modules."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tornado_core.ports.jobs import JobStorePort


def _memory(request: pytest.FixtureRequest) -> Iterator[JobStorePort]:
    from tornado_core.adapters.memory.jobs import MemoryJobStore

    yield MemoryJobStore()


def _postgres(request: pytest.FixtureRequest) -> Iterator[JobStorePort]:
    from tornado_core.adapters.postgres import PostgresJobStore, PostgresPool

    pool = PostgresPool(request.getfixturevalue("postgres_url"), max_size=2)
    yield PostgresJobStore(pool)
    pool.close()


_STORES = {"memory": _memory, "postgres": _postgres}


@pytest.fixture(params=sorted(_STORES))
def store(request: pytest.FixtureRequest) -> Iterator[JobStorePort]:
    """Each job store in turn."""
    yield from _STORES[request.param](request)


@pytest.fixture
def prefix(unique_prefix: str) -> str:
    """The test's unique prefix, as a job id and tenant may spell it."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", unique_prefix)[:50]
