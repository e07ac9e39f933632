"""Refused punches over HTTP: the 422 says they were quarantined, and the employer can list them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.ponto_support import PontoTenant, create_ponto_tenant
from tornado_core.services import Services


@pytest.fixture(scope="module")
def backend() -> str:
    """The quarantine is written by the API itself: one queue backend is enough."""
    return "postgres"


def call(api_url: str, tenant: PontoTenant, path: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        api_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={
            "Authorization": f"Bearer {tenant.token}",
            "Content-Type": "application/json",
            "User-Agent": "relogio-offline/3.1",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_refused_punches_are_answered_422_quarantined_and_listed_for_their_employer(
    api_url: str, services: Services
) -> None:
    acme, other = create_ponto_tenant(services, reps=1), create_ponto_tenant(services, reps=1)
    now = datetime.now(UTC)
    rep = acme.reps[0]
    base = {"cpf": "529.982.247-25", "rep": rep, "offline": True, "collector": "device"}
    too_old = {**base, "id": str(uuid.uuid4()), "time": (now - timedelta(days=61)).isoformat()}
    too_far_ahead = {**base, "id": str(uuid.uuid4()), "time": (now + timedelta(hours=2)).isoformat()}
    status, answer = call(api_url, acme, "/v1/punches", {"punches": [too_old, too_far_ahead]})
    assert status == 422 and answer["accepted"] == 0
    assert [r["error"]["code"] for r in answer["results"]] == ["time_too_old", "time_in_future"]
    assert all(r["quarantined"] for r in answer["results"])

    status, page = call(api_url, acme, "/v1/punches/quarantine")
    assert status == 200
    kept = {row["punch_id"]: row for row in page["quarantined"]}
    assert set(kept) == {too_old["id"], too_far_ahead["id"]}
    assert kept[too_old["id"]]["reason"] == "time_too_old" and kept[too_old["id"]]["payload"] == too_old
    assert kept[too_far_ahead["id"]]["payload"]["time"] == too_far_ahead["time"]
    assert {(row["rep"], row["collector"], row["user_agent"]) for row in kept.values()} == {
        (rep, "device", "relogio-offline/3.1")
    }
    assert call(api_url, other, "/v1/punches/quarantine") == (200, {"quarantined": [], "next_before": None})
