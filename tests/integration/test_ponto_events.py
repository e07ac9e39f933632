"""The REP-P's sensitive events (AFD type 6) on a real PostgreSQL: outage windows in the AFD job."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from tornado_tasks.ponto.afd import local_dh
from tornado_tasks.ponto.cli import ponto, verify_afd_command
from tornado_tasks.ponto.events import EventOutcome, record_outage
from tornado_tasks.ponto.handlers import afd
from tornado_tasks.ponto.ledger import append_events
from tornado_tasks.ponto.models import AfdPayload
from tornado_tasks.ponto.rep_signer import DEV_SIGNER_KEY
from tornado_tasks.ponto.verify import verify_afd

from tests.integration.ponto_fixtures import Erp, erp_fixture, erp_pool_fixture, s3_fixture  # noqa: F401
from tests.integration.test_ponto_ledger import afd_report, nsr_sequence, punch, record
from tornado_core import TaskContext
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.devstack.certs import make_test_signer_pem
from tornado_core.task_context import job_logger

ZONE = "America/Rio_Branco"  # the fixtures' establishment (UTC-5)


def window(minutes: int = 20) -> tuple[datetime, datetime]:
    end = datetime.now(UTC) - timedelta(seconds=5)
    return end - timedelta(minutes=minutes), end


def outage(erp: Erp, reps: list[str], start: datetime, end: datetime) -> list[EventOutcome]:
    with erp.pool.connection() as conn:
        return record_outage(conn, reps, start=start, end=end, reason="ponto.record workers down")


def run_afd_job(erp: Erp, s3: S3ObjectStore, rep: str) -> tuple[bytes, bytes]:
    """Run the ``ponto.afd`` handler as a worker would; return the AFD and its .p7s from S3."""
    if not s3.exists(DEV_SIGNER_KEY):  # the demo REP is not registered: the stack's test signer signs
        s3.put(DEV_SIGNER_KEY, make_test_signer_pem())
    job_id = str(uuid.uuid4())
    ctx = TaskContext(
        job_id=job_id, task="ponto.afd", version="1", tenant=erp.tenant, attempt=1, s3=s3, rds=erp.pool,
        redshift=None, logger=job_logger(logging.getLogger("tests.ponto"), job=job_id, tenant=erp.tenant),
        deadline=time.monotonic() + 600, _progress_sink=lambda fraction, note: None,
    )  # fmt: skip
    today = datetime.now(UTC).date()
    payload = AfdPayload(rep=rep, start=today - timedelta(days=1), end=today + timedelta(days=1))
    result = afd.handler(ctx, payload)
    return s3.get(result["key"]), s3.get(result["signature_key"])


def test_an_outage_window_is_in_the_afd_as_type_6_records_in_nsr_order_and_verifies(
    erp: Erp, s3: S3ObjectStore, tmp_path: Path
) -> None:
    rep = erp.reps[0]
    record(erp, [punch(rep), punch(rep)])  # NSR 3, 4 after the type-2 and type-5 records
    start, end = window()
    events = outage(erp, [rep], start, end)
    record(erp, [punch(rep)])

    assert [(e.code, e.nsr, e.created) for e in events] == [("08", 5, True), ("07", 6, True)]
    assert nsr_sequence(erp, rep) == [1, 2, 3, 4, 5, 6, 7]
    data, p7s = run_afd_job(erp, s3, rep)
    lines = data.decode("iso-8859-1").split("\r\n")
    assert [line[9] for line in lines[1:-3]] == ["2", "5", "7", "7", "6", "6", "7"]
    assert lines[5] == f"0000000056{local_dh(start, ZONE)}08"
    assert lines[6] == f"0000000066{local_dh(end, ZONE)}07"
    assert lines[8][9 + 9 * 4 : 18 + 9 * 4] == "000000002"  # trailer: two type-6 records
    (tmp_path / "AFD.txt").write_bytes(data)
    (tmp_path / "AFD.p7s").write_bytes(p7s)
    checked = CliRunner().invoke(verify_afd_command, [str(tmp_path / "AFD.txt")])
    assert checked.exit_code == 0, checked.output
    assert "type 6: 2" in checked.output and "3 link(s) recomputed" in checked.output


def test_type_4_and_6_records_appended_to_a_rep_no_longer_crash_the_afd_job(
    erp: Erp, s3: S3ObjectStore
) -> None:
    """``ponto_event`` accepts types 4 and 6; the AFD source used to read them as employees (KeyError)."""
    rep = erp.reps[1]
    moved = datetime.now(UTC) - timedelta(minutes=3)
    adjustment = {"before": moved.isoformat(), "adjusted": (moved + timedelta(seconds=90)).isoformat(),
                  "responsible_cpf": "52998224725"}  # fmt: skip
    with erp.pool.connection() as conn:
        append_events(conn, rep, [(4, adjustment), (6, {"code": "08"}), (6, {"code": "07"})])
    record(erp, [punch(rep)])

    data, p7s = run_afd_job(erp, s3, rep)

    kinds = [line[9] for line in data.decode("iso-8859-1").split("\r\n")[1:-3]]
    assert kinds == ["2", "5", "4", "6", "6", "7"]
    report = verify_afd(data, p7s)
    assert report.ok, report.problems


def test_recording_the_same_window_again_adds_nothing(erp: Erp) -> None:
    rep = erp.reps[2]
    start, end = window()
    first = outage(erp, [rep], start, end)
    again = outage(erp, [rep], start.astimezone(UTC), end)  # the same instants, another offset

    assert [(e.nsr, e.created) for e in again] == [(e.nsr, False) for e in first]
    assert nsr_sequence(erp, rep) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("shift_end", "problem"),
    [(timedelta(minutes=-30), "end after its start"), (timedelta(hours=1), "after the database's clock")],
)
def test_an_impossible_window_is_refused_and_uses_no_nsr(
    erp: Erp, shift_end: timedelta, problem: str
) -> None:
    rep = erp.reps[3]
    start, end = window()
    with pytest.raises(ValueError, match=problem):
        outage(erp, [rep], start, end + shift_end)
    with pytest.raises(LookupError, match="no REP nope"):
        outage(erp, [rep, "nope"], start, end)
    assert nsr_sequence(erp, rep) == [1, 2]


def test_an_outage_recorded_while_batches_commit_keeps_every_rep_gap_free(erp: Erp) -> None:
    start, end = window()
    batches = [[punch(rep) for rep in erp.reps] for _ in range(24)]
    with ThreadPoolExecutor(6) as pool:
        recorded = [pool.submit(record, erp, batch) for batch in batches[:12]]
        events = pool.submit(outage, erp, erp.reps, start, end)
        recorded += [pool.submit(record, erp, batch) for batch in batches[12:]]
        assert all(f.result() for f in recorded)
    assert len(events.result()) == 2 * len(erp.reps)
    for rep in erp.reps:
        assert nsr_sequence(erp, rep) == list(range(1, 2 + 24 + 2 + 1))
        report = afd_report(erp, rep)
        assert report.ok, report.problems  # type: ignore[attr-defined]
        assert report.counts["6"] == 2  # type: ignore[attr-defined]


def test_the_outage_command_records_a_tenant_window(
    erp: Erp, fresh_database_url: str, stack_env: dict[str, str]
) -> None:
    start, end = window(45)
    env = {**stack_env, "TORNADO_ERP_DATABASE_URL": fresh_database_url}
    arguments = ["outage", "--tenant", erp.tenant, "--start", start.isoformat(), "--end", end.isoformat()]

    result = CliRunner().invoke(ponto, arguments, env=env)
    naive = CliRunner().invoke(ponto, [*arguments[:-1], "2025-03-10T10:00:00"], env=env)

    assert result.exit_code == 0, result.output
    assert f"{erp.reps[0]}: NSR 3, event 08 at " in result.output
    assert result.output.count("event 07") == len(erp.reps)
    assert naive.exit_code == 1 and "needs a UTC offset" in naive.output
    assert all(nsr_sequence(erp, rep) == [1, 2, 3, 4] for rep in erp.reps)
