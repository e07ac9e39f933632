"""The ARP ledger on a real PostgreSQL: gap-free NSRs, the hash chain, idempotency, append-only."""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone

import psycopg2
import pytest
from tornado_tasks.ponto.afd import render_afd
from tornado_tasks.ponto.afd_source import load_afd_source
from tornado_tasks.ponto.audit import rep_nsrs
from tornado_tasks.ponto.ledger import PunchOutcome, record_punches
from tornado_tasks.ponto.models import Geo, QueuedPunch
from tornado_tasks.ponto.verify import verify_afd

from tests.integration.ponto_fixtures import Erp, erp_fixture, erp_pool_fixture, make_erp  # noqa: F401
from tornado_core.errors import Retry, StoreUnavailable

CPFS = ("12345678909", "52998224725", "11144477735")


def punch(
    rep: str, *, offline: bool = False, age: timedelta = timedelta(0), pid: uuid.UUID | None = None
) -> QueuedPunch:
    now = datetime.now(UTC)
    return QueuedPunch(
        id=pid or uuid.uuid4(),
        cpf=random.choice(CPFS),
        rep=rep,
        time=now - age,
        offline=offline,
        collector=1,
        received_at=now,
    )


def record(erp: Erp, punches: list[QueuedPunch], job: str = "job") -> list[PunchOutcome]:
    with erp.pool.connection() as conn:
        return record_punches(conn, tenant=erp.tenant, job_id=job, punches=punches)


def nsr_sequence(erp: Erp, rep: str) -> list[int]:
    with erp.pool.connection() as conn:
        return rep_nsrs(conn, rep)


def afd_report(erp: Erp, rep: str, day: date | None = None, previous_hash: str | None = None) -> object:
    today = day or datetime.now(UTC).astimezone().date()
    with erp.pool.connection() as conn:
        source = load_afd_source(
            conn,
            rep=rep,
            start=today - timedelta(days=1),
            end=today + timedelta(days=1),
            generated_at=datetime.now(UTC),
        )
    return verify_afd(render_afd(source.header, source.records), previous_hash=previous_hash)


def test_concurrent_batches_over_several_reps_are_gap_free_chained_and_idempotent(erp: Erp) -> None:
    rng = random.Random(4)
    pool_of_ids = [uuid.uuid4() for _ in range(1500)]
    batches = [
        [punch(rng.choice(erp.reps), pid=rng.choice(pool_of_ids)) for _ in range(25)] for _ in range(120)
    ]

    def run(batch: list[QueuedPunch]) -> list[PunchOutcome]:
        for _ in range(20):
            try:
                return record(erp, batch)
            except Retry:  # the same UUID raced under two REPs: the whole batch runs again
                continue
        raise AssertionError("batch never went through")

    with ThreadPoolExecutor(8) as pool:
        outcomes = [o for result in pool.map(run, batches) for o in result]
    distinct = {str(p.id) for batch in batches for p in batch}
    assert erp.scalar("SELECT count(*) FROM ponto_punch WHERE tenant = %s", erp.tenant) == len(distinct)
    nsr_of: dict[str, int] = {}
    for outcome in outcomes:  # every copy of a UUID reports the one NSR it got
        assert nsr_of.setdefault(outcome.punch_id, outcome.nsr or -1) == outcome.nsr
    for rep in erp.reps:
        sequence = nsr_sequence(erp, rep)
        assert sequence == list(range(1, len(sequence) + 1))
        report = afd_report(erp, rep)
        assert report.ok, report.problems  # type: ignore[attr-defined]
        assert report.chain_anchor is None  # type: ignore[attr-defined]


def test_a_rolled_back_batch_leaves_no_gap(erp: Erp) -> None:
    rep = erp.reps[0]
    record(erp, [punch(rep)])
    with pytest.raises(RuntimeError), erp.pool.connection() as conn:
        record_punches(conn, tenant=erp.tenant, job_id="doomed", punches=[punch(rep), punch(rep)])
        raise RuntimeError("crash before commit")
    record(erp, [punch(rep)])
    assert nsr_sequence(erp, rep) == [1, 2, 3, 4]


def test_a_late_offline_punch_gets_the_next_nsr_and_keeps_its_own_time(erp: Erp) -> None:
    rep = erp.reps[1]
    record(erp, [punch(rep), punch(rep)])
    late = punch(rep, offline=True, age=timedelta(hours=5))
    [outcome] = record(erp, [late])
    assert outcome.nsr == 5  # after type 2, type 5 and the two online punches
    marked = erp.scalar("SELECT marked_at FROM ponto_punch WHERE punch_id = %s", str(late.id))
    assert marked == late.time
    assert afd_report(erp, rep).ok  # type: ignore[attr-defined]


def test_an_afd_of_a_period_without_records_has_header_and_trailer_only(erp: Erp) -> None:
    rep = erp.reps[2]
    record(erp, [punch(rep) for _ in range(3)])
    with erp.pool.connection() as conn:
        source = load_afd_source(
            conn, rep=rep, start=date(2100, 1, 1), end=date(2100, 1, 2), generated_at=datetime.now(UTC)
        )
    assert source.records == []
    assert verify_afd(render_afd(source.header, source.records)).ok


def test_punch_tables_are_append_only(erp: Erp) -> None:
    record(erp, [punch(erp.reps[0])])
    for statement in (
        "UPDATE ponto_punch SET cpf = '52998224725'",
        "DELETE FROM ponto_punch",
        "DELETE FROM ponto_event",
        "TRUNCATE ponto_punch",
    ):
        with (
            pytest.raises((psycopg2.Error, StoreUnavailable)),
            erp.pool.connection() as conn,
            conn.cursor() as cur,
        ):
            cur.execute(statement)


def test_a_punch_for_another_tenants_rep_is_rejected_not_recorded(erp: Erp) -> None:
    other = make_erp(erp.pool, reps=1)
    [outcome] = record(erp, [punch(other.reps[0])])
    assert outcome.status == "rejected"
    assert nsr_sequence(erp, other.reps[0]) == [1, 2]


def test_checking_a_batch_for_re_sent_punches_reads_only_their_rows_however_long_the_history(
    erp: Erp,
) -> None:
    """Before numbering a batch, the ledger looks up which of its UUIDs were recorded already. On a
    table the planner has no statistics for yet (a new ERP database filling up), that lookup read
    every punch of the tenant for each batch: its cost grew with the tenant's history."""
    rep, history = erp.reps[0], 20_000
    with erp.pool.connection() as conn, conn.cursor() as cur:  # a history the planner has never analysed
        cur.execute(
            "INSERT INTO ponto_punch (rep_id, nsr, tenant, punch_id, cpf, marked_at, device_time,"
            " device_offset, received_at, recorded_at, time_zone, collector, offline, hash, prev_hash,"
            " job_id) SELECT %s, 1000000 + n, %s, gen_random_uuid(), '12345678909', now(), now(), 0,"
            " now(), now(), 'UTC', 1, false, repeat('0', 64), '', 'history'"
            " FROM generate_series(1, %s) AS n",
            (rep, erp.tenant, history),
        )
    re_sent = punch(rep)
    record(erp, [re_sent])
    batch = [re_sent, *(punch(rep) for _ in range(49))]  # a batch the size the API's lanes send
    with erp.pool.connection() as conn, conn.cursor() as cur:
        rows_read = (
            "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
            " WHERE relname = 'ponto_punch'"
        )
        cur.execute(rows_read)
        before = cur.fetchone()[0]
        outcomes = record_punches(conn, tenant=erp.tenant, job_id="job", punches=batch)
        cur.execute(rows_read)
        read = cur.fetchone()[0] - before
    assert [o.status for o in outcomes] == ["duplicate"] + ["recorded"] * 49
    assert read <= 2 * len(batch), f"{read:,} rows of ponto_punch read to record {len(batch)} punches"


def test_a_recorded_punch_keeps_every_value_it_was_queued_with(erp: Erp) -> None:
    """Times to the microsecond with the device's own offset, the position and its accuracy."""
    device_time = datetime(2026, 3, 10, 7, 58, 12, 345678, tzinfo=timezone(timedelta(hours=-3)))
    received = datetime.now(UTC).replace(microsecond=123456)
    sent = QueuedPunch(
        id=uuid.uuid4(),
        cpf="52998224725",
        rep=erp.reps[0],
        time=device_time,
        offline=True,
        collector=4,
        received_at=received,
        geo=Geo(lat=-23.561684, lon=-46.655981, accuracy=12.5),
    )
    [outcome] = record(erp, [sent])
    with erp.pool.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT nsr, cpf, marked_at, device_time, device_offset, received_at, collector, offline,"
            " latitude, longitude, accuracy_m, job_id FROM ponto_punch WHERE punch_id = %s",
            (str(sent.id),),
        )
        row = cur.fetchone()
    assert row == (
        outcome.nsr,
        "52998224725",
        device_time,  # offline: marked at the device's time
        device_time,
        -180,
        received,
        4,
        True,
        -23.561684,
        -46.655981,
        12.5,
        "job",
    )
