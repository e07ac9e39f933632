"""Helpers of the ponto end-to-end tests: a tenant with REPs, and checks on what was recorded."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from tornado_tasks.ponto.admin import add_demo_establishment
from tornado_tasks.ponto.audit import audit_rep, rep_nsrs
from tornado_tasks.ponto.devices import DeviceRun, send_punches

from tests.e2e.helpers import wait_until
from tornado_core.services import Services
from tornado_core.tokens import hash_token, new_token


@dataclass(frozen=True)
class PontoTenant:
    """A tenant with its token and REPs (in one establishment in São Paulo)."""

    name: str
    token: str
    reps: list[str]


def create_ponto_tenant(services: Services, reps: int) -> PontoTenant:
    name = f"ponto-{uuid.uuid4().hex[:8]}"
    token = new_token()
    services.tenants.create(name, hash_token(token))
    with services.rds.connection() as conn:
        rep_ids = add_demo_establishment(conn, tenant=name, reps=reps)
    return PontoTenant(name, token, rep_ids)


def post(
    url: str, tenant: PontoTenant, punches: list[dict[str, Any]], devices: int, run: DeviceRun | None = None
) -> DeviceRun:
    return asyncio.run(send_punches(url, tenant.token, punches, devices=devices, timeout=300, run=run))


def query(services: Services, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with services.rds.connection() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def recorded(services: Services, tenant: PontoTenant) -> int:
    return int(query(services, "SELECT count(*) FROM ponto_punch WHERE tenant = %s", tenant.name)[0][0])


def wait_recorded(services: Services, tenant: PontoTenant, count: int, timeout: float = 240) -> None:
    wait_until(lambda: recorded(services, tenant) >= count, timeout=timeout, what=f"{count} punches recorded")


def assert_exactly_once_gap_free_and_chained(services: Services, tenant: PontoTenant, ids: set[str]) -> None:
    """Every id recorded once, each REP's NSRs 1..n without a gap, and every REP's AFD verifies."""
    rows = query(services, "SELECT punch_id::text FROM ponto_punch WHERE tenant = %s", tenant.name)
    assert len(rows) == len(ids) and {r[0] for r in rows} == ids
    for rep in tenant.reps:
        with services.rds.connection() as conn:
            nsrs = rep_nsrs(conn, rep)
            report = audit_rep(conn, rep)
        assert nsrs == list(range(1, len(nsrs) + 1)), f"{rep}: NSRs are not 1..{len(nsrs)}"
        assert report.ok, report.problems[:5]
        assert report.chain_anchor is None and report.chain_checked == len(nsrs) - 1
