"""Per-punch validation of POST /v1/punches (no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from tornado_tasks.ponto.intake import check_punch
from tornado_tasks.ponto.models import RecordPayload

NOW = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
ACRE = timezone(timedelta(hours=-5))


def punch(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "cpf": "123.456.789-09",
        "rep": "rep-1",
        "time": (NOW - timedelta(seconds=3)).astimezone(ACRE).isoformat(),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def check(item: Any) -> Any:
    return check_punch(item, index=3, received_at=NOW, rep_known=lambda rep: rep == "rep-1")


def test_a_good_punch_is_normalised_for_the_queue() -> None:
    item = punch(offline=True, collector="browser", geo={"lat": -9.97, "lon": -67.81, "accuracy": 12})
    checked = check(item)
    assert checked.ok
    queued = checked.queued
    assert queued["cpf"] == "12345678909"
    assert queued["collector"] == 2
    assert queued["offline"] is True
    assert queued["time"].endswith("-05:00")
    assert queued["received_at"] == NOW.isoformat()
    RecordPayload.model_validate({"punches": [queued]})  # what the worker will accept


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"cpf": "123.456.789-00"}, "punch_invalid", "punches[3].cpf"),
        ({"cpf": None}, "punch_invalid", "punches[3].cpf"),
        ({"time": None}, "punch_invalid", "punches[3].time"),
        ({"id": "not-a-uuid"}, "punch_invalid", "punches[3].id"),
        ({"time": "2025-03-10T12:00:00"}, "punch_invalid", "punches[3].time"),  # no UTC offset
        ({"time": (NOW + timedelta(hours=2)).isoformat()}, "time_in_future", "punches[3].time"),
        ({"time": (NOW - timedelta(days=90)).isoformat()}, "time_too_old", "punches[3].time"),
        ({"rep": "rep-of-someone-else"}, "rep_unknown", "punches[3].rep"),
        ({"geo": {"lat": 91, "lon": 0}}, "punch_invalid", "punches[3].geo.lat"),
        ({"colour": "red"}, "punch_invalid", "punches[3].colour"),
    ],
)
def test_bad_punches_get_their_own_error(changes: dict[str, Any], code: str, field: str) -> None:
    checked = check(punch(**changes))
    assert not checked.ok
    error = checked.error()
    assert error["code"] == code
    assert field in [f["field"] for f in error["fields"]], error


def test_a_late_offline_punch_within_the_window_is_accepted() -> None:
    assert check(punch(offline=True, time=(NOW - timedelta(days=3)).isoformat())).ok


def test_an_item_that_is_not_an_object_is_refused() -> None:
    checked = check_punch("punch", index=0, received_at=NOW, rep_known=lambda _: True)
    assert not checked.ok and checked.punch_id is None
