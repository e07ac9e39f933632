"""On a real PostgreSQL: a punch from a clock ahead is never marked after its gravação in the AFD, and
punches refused for good are kept, raw and append-only, in the quarantine."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg2
import pytest
from tornado_tasks.ponto.afd import render_afd
from tornado_tasks.ponto.afd_source import load_afd_source
from tornado_tasks.ponto.ledger import record_punches
from tornado_tasks.ponto.models import QueuedPunch
from tornado_tasks.ponto.quarantine import Refusal, Sender, list_quarantined, quarantine
from tornado_tasks.ponto.schema import ensure_schema

from tests.integration.ponto_fixtures import Erp, erp_fixture, erp_pool_fixture, make_erp  # noqa: F401
from tornado_core.errors import StoreUnavailable

DEVICE_ZONE = timezone(timedelta(hours=-3))


def offline_punch(rep: str, ahead: timedelta) -> QueuedPunch:
    now = datetime.now(UTC)
    return QueuedPunch(
        id=uuid.uuid4(),
        cpf="12345678909",
        rep=rep,
        time=(now + ahead).astimezone(DEVICE_ZONE),
        offline=True,
        collector=4,
        received_at=now,
    )


def type7_times(erp: Erp, rep: str) -> list[tuple[datetime, datetime]]:
    """(marcação, gravação) of every type-7 line of the REP's AFD, as written in the file."""
    now = datetime.now(UTC)
    period = {"start": now.date() - timedelta(days=1), "end": now.date() + timedelta(days=1)}
    with erp.pool.connection() as conn:
        source = load_afd_source(conn, rep=rep, generated_at=now, **period)
    lines = render_afd(source.header, source.records).decode("latin-1").split("\r\n")
    return [
        (
            datetime.strptime(line[10:34], "%Y-%m-%dT%H:%M:%S%z"),
            datetime.strptime(line[46:70], "%Y-%m-%dT%H:%M:%S%z"),
        )
        for line in lines
        if len(line) == 137 and line[9] == "7"
    ]


def test_an_offline_punch_from_a_clock_ahead_is_never_marked_after_its_gravacao(erp: Erp) -> None:
    rep = erp.reps[0]
    ahead = offline_punch(rep, timedelta(minutes=4))
    with erp.pool.connection() as conn:
        [outcome] = record_punches(conn, tenant=erp.tenant, job_id="job", punches=[ahead])
    assert outcome.status == "recorded"
    [(marked, recorded)] = type7_times(erp, rep)
    assert marked <= recorded
    with erp.pool.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT device_time, device_offset, marked_at <= recorded_at FROM ponto_punch"
            " WHERE punch_id = %s",
            (str(ahead.id),),
        )
        device_time, device_offset, in_order = cur.fetchone()
    assert device_time == ahead.time and device_offset == -180 and in_order  # the device's word is kept


def test_a_punch_the_worker_cannot_record_is_quarantined_not_lost(erp: Erp) -> None:
    other = make_erp(erp.pool, reps=1)
    stray = offline_punch(other.reps[0], -timedelta(hours=1))
    with erp.pool.connection() as conn:
        [outcome] = record_punches(conn, tenant=erp.tenant, job_id="job-stray", punches=[stray])
    assert outcome.status == "rejected"
    with erp.pool.connection() as conn:
        [kept] = list_quarantined(conn, erp.tenant)
        assert list_quarantined(conn, other.tenant) == []
    assert (kept["stage"], kept["reason"], kept["punch_id"], kept["rep"]) == (
        "record",
        "rep_unknown",
        str(stray.id),
        other.reps[0],
    )
    assert kept["job_id"] == "job-stray" and kept["payload"]["time"] == stray.time.isoformat()


def test_the_quarantine_keeps_raw_refusals_pages_them_and_is_append_only(erp: Erp) -> None:
    now = datetime.now(UTC)
    refusals = [
        Refusal(
            "time_too_old", "too old", {"id": "a", "rep": "r1", "time": "2020-01-01T08:00:00-03:00"}, now, "a"
        ),
        Refusal("punch_invalid", "not an object", "punch", now),
        Refusal("time_in_future", "ahead", {"id": "c", "collector": "device"}, now, "c"),
    ]
    with erp.pool.connection() as conn:
        ensure_schema(conn)
        assert (
            quarantine(conn, tenant=erp.tenant, refusals=refusals, sender=Sender("clock/2", "10.0.0.9")) == 3
        )
    with erp.pool.connection() as conn:
        first = list_quarantined(conn, erp.tenant, limit=2)
        rest = list_quarantined(conn, erp.tenant, limit=2, before=first[-1]["quarantine_id"])
    assert [r["reason"] for r in first + rest] == ["time_in_future", "punch_invalid", "time_too_old"]
    assert rest[0]["payload"] == refusals[0].payload and first[1]["payload"] == "punch"
    assert first[0]["collector"] == "device" and first[0]["user_agent"] == "clock/2"


def test_a_punch_with_nul_and_unpaired_surrogates_is_kept_whole_and_listed(erp: Erp) -> None:
    """What a fuzzer (or a broken device) sends still goes in: PostgreSQL text takes no NUL, jsonb no
    NUL escape, UTF-8 no lone surrogate; the raw punch is kept as ASCII JSON, losslessly."""
    raw = {"id": "\udbc8x\x00", "rep": "r\x00\u00b5", "time": "0298-06-26T04:07:29Z", "cpf": "8\u00eef"}
    refusal = Refusal("punch_invalid", "bad \x00 punch", raw, datetime.now(UTC), raw["id"])
    with erp.pool.connection() as conn:
        assert quarantine(conn, tenant=erp.tenant, refusals=[refusal]) == 1
        [entry] = list_quarantined(conn, erp.tenant, limit=1)
        cur = conn.cursor()
        cur.execute(
            "SELECT payload FROM ponto_quarantine WHERE quarantine_id = %s", (entry["quarantine_id"],)
        )
        [stored] = cur.fetchone()
    assert json.loads(stored) == raw  # exactly what was sent
    assert entry["payload"]["rep"] == "r\\x00\u00b5" and entry["payload"]["id"] == "\\udbc8x\\x00"
    assert entry["rep"] == "r\\x00\u00b5" and entry["message"] == "bad \\x00 punch"
    json.dumps(entry, ensure_ascii=False).encode()  # the listing can be sent as UTF-8 JSON


@pytest.mark.parametrize(
    "statement",
    ["UPDATE ponto_quarantine SET reason = 'x'", "DELETE FROM ponto_quarantine", "TRUNCATE ponto_quarantine"],
)
def test_the_quarantine_is_append_only(erp: Erp, statement: str) -> None:
    kept = Refusal("time_too_old", "too old", {"id": "z"}, datetime.now(UTC), "z")
    with erp.pool.connection() as conn:
        ensure_schema(conn)
        quarantine(conn, tenant=erp.tenant, refusals=[kept])
    with pytest.raises((psycopg2.Error, StoreUnavailable)), erp.pool.connection() as conn:
        conn.cursor().execute(statement)
    with erp.pool.connection() as conn:
        assert [row["reason"] for row in list_quarantined(conn, erp.tenant)] == ["time_too_old"]
