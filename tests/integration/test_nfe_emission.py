"""Emission paths a worker rarely meets, against the real SEFAZ emulator, PostgreSQL and S3."""

from __future__ import annotations

import pytest
from tornado_tasks.nfe.authorities import take_send_slot

from tests.nfe_fixtures import (  # noqa: F401
    NfeWorld,
    nfe_world_fixture,
    sefaz_emulator_fixture,
    test_authority_fixture,
)

pytestmark = pytest.mark.integration


def test_a_document_sefaz_already_holds_ends_authorised_through_204_and_the_protocol_query(
    nfe_world: NfeWorld,
) -> None:
    """An emission row left ``signed`` although SEFAZ has the NF-e (e.g. written by a release that
    did not record ``sent`` first): sending again gets 204, and the protocol query settles it."""
    first = nfe_world.emit("job-204")
    with nfe_world.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("UPDATE nfe_emission SET state = 'signed', protocol = NULL WHERE job_id = 'job-204'")
    since = nfe_world.emulator.admin("GET", "requests")["requests"][-1]["seq"]
    again = nfe_world.emit("job-204")
    assert again["state"] == "authorized" and again["protocol"] == first["protocol"]
    assert again["access_key"] == first["access_key"] and again["number"] == first["number"]
    seen = [
        (r["service"], r["document_cStats"] or r["cStat"])
        for r in nfe_world.emulator.admin("GET", f"requests?since={since}")["requests"]
    ]
    assert [service for service, _ in seen] == ["NFeAutorizacao4", "NFeConsultaProtocolo4"]
    assert "204" in str(seen[0][1])


def test_the_send_rate_of_an_issuer_is_shared_and_capped_per_second(nfe_world: NfeWorld) -> None:
    """Every worker counts its sends in the ERP database, so together they stay under the cap (656)."""
    with nfe_world.pool.connection() as conn:
        waits = [take_send_slot(conn, "11222333000181", "SP", 3) for _ in range(12)]
        other_uf = take_send_slot(conn, "11222333000181", "PR", 3)
    allowed = [w for w in waits if w == 0.0]
    # Twelve calls take milliseconds: at most one new second starts among them, so at most 3 + 3 pass.
    assert waits[:3] == [0.0, 0.0, 0.0] and 3 <= len(allowed) <= 6
    assert all(0 < w <= 1.0 for w in waits if w != 0.0)
    assert other_uf == 0.0  # another UF has its own count
