"""Punches from a collector whose clock is ahead: marcação is never after gravação; refusals are kept."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from tornado_tasks.ponto.intake import check_punch
from tornado_tasks.ponto.ledger import marcacao
from tornado_tasks.ponto.models import QueuedPunch
from tornado_tasks.ponto.quarantine import Refusal
from tornado_tasks.ponto.quarantine_api import store_refusals

from tornado_core.errors import ApiError, StoreUnavailable

RECEIVED = datetime(2025, 3, 10, 8, 48, 10, tzinfo=UTC)
RECORDED = RECEIVED + timedelta(seconds=2)
ACRE = timezone(timedelta(hours=-5))


def queued(time: datetime, *, offline: bool, received: datetime = RECEIVED) -> QueuedPunch:
    return QueuedPunch(
        id=uuid.uuid4(),
        cpf="12345678909",
        rep="rep-1",
        time=time,
        offline=offline,
        collector=1,
        received_at=received,
    )


def test_an_offline_punch_from_a_clock_four_minutes_ahead_is_marked_at_its_receipt() -> None:
    ahead = queued((RECEIVED + timedelta(minutes=4)).astimezone(ACRE), offline=True)
    assert marcacao(ahead, RECORDED) == RECEIVED
    assert ahead.time.utcoffset() == timedelta(hours=-5)  # what the device said is left alone


def test_a_late_offline_punch_keeps_the_devices_time() -> None:
    late = queued(RECEIVED - timedelta(hours=5), offline=True)
    assert marcacao(late, RECORDED) == RECEIVED - timedelta(hours=5)


@pytest.mark.parametrize("offline", [False, True])
def test_marcacao_is_never_after_gravacao_even_when_the_api_clock_is_ahead(offline: bool) -> None:
    punch = queued(
        RECEIVED + timedelta(minutes=1), offline=offline, received=RECORDED + timedelta(seconds=30)
    )
    assert marcacao(punch, RECORDED) == RECORDED


def test_an_offline_punch_up_to_five_minutes_ahead_is_accepted_with_the_devices_time_and_offset() -> None:
    sent = (RECEIVED + timedelta(minutes=4)).astimezone(ACRE).isoformat()
    item = {"id": str(uuid.uuid4()), "cpf": "123.456.789-09", "rep": "rep-1", "time": sent, "offline": True}
    checked = check_punch(item, index=0, received_at=RECEIVED, rep_known=lambda _: True)
    assert checked.ok and checked.queued is not None
    assert checked.queued["time"] == sent


class _BrokenErp:
    @contextmanager
    def connection(self) -> Any:
        raise StoreUnavailable("the ERP database is down")
        yield


def test_refused_punches_that_cannot_be_quarantined_get_a_503_not_a_422() -> None:
    async def run_blocking(func: Any) -> Any:
        return func()

    handler: Any = SimpleNamespace(
        request=SimpleNamespace(headers={"User-Agent": "clock/1.0"}, remote_ip="127.0.0.1"),
        tenant="acme",
        api=SimpleNamespace(services=SimpleNamespace(rds=_BrokenErp())),
        run_blocking=run_blocking,
    )
    refusal = Refusal("time_too_old", "punches[0].time: is older than 60 days", {"rep": "r"}, RECEIVED)
    with pytest.raises(ApiError) as raised:
        asyncio.run(store_refusals(handler, [refusal]))
    assert raised.value.status == 503
    assert raised.value.body()["error"]["code"] == "quarantine_unavailable"
