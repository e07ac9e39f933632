"""Fixtures of the ponto integration tests: an ERP database with the ponto tables and REPs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from tornado_tasks.ponto.admin import add_demo_establishment

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.adapters.postgres import PostgresPool
from tornado_core.devstack import BUCKET, REGION, StackInfo


@dataclass(frozen=True)
class Erp:
    """An ERP database with one establishment in Acre (UTC-5) and its REPs."""

    pool: PostgresPool
    tenant: str
    reps: list[str]

    def scalar(self, sql: str, *params: object) -> object:
        with self.pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None


def make_erp(pool: PostgresPool, reps: int = 4, zone: str = "America/Rio_Branco") -> Erp:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    with pool.connection() as conn:
        rep_ids = add_demo_establishment(
            conn, tenant=tenant, reps=reps, time_zone=zone, employee_cpf="12345678909"
        )
    return Erp(pool, tenant, rep_ids)


@pytest.fixture(name="erp_pool")
def erp_pool_fixture(fresh_database_url: str) -> Iterator[PostgresPool]:
    pool = PostgresPool(fresh_database_url, min_size=0, max_size=12)
    yield pool
    pool.close()


@pytest.fixture(name="erp")
def erp_fixture(erp_pool: PostgresPool) -> Erp:
    return make_erp(erp_pool)


@pytest.fixture(name="s3")
def s3_fixture(stack_info: StackInfo) -> S3ObjectStore:
    client = make_client(
        "s3", region=REGION, endpoint_url=stack_info.aws_endpoint_url, credentials=("test", "test")
    )
    return S3ObjectStore(client, BUCKET)
