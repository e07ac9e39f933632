"""Version 3 of the ponto tables on PostgreSQL: punches' DH kept as rendered, the AFD's header dates and
signer, a v2 database brought up by the record job, worker refusals quarantined once."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from tornado_tasks.ponto import afd_source
from tornado_tasks.ponto.admin import Rep, add_rep
from tornado_tasks.ponto.afd import ENCODING, chain_hash, local_dh, punch_fields, render_afd
from tornado_tasks.ponto.afd_source import load_afd_source
from tornado_tasks.ponto.cli import verify_afd_command
from tornado_tasks.ponto.handlers import afd, record
from tornado_tasks.ponto.ledger import lock_reps, record_punches
from tornado_tasks.ponto.models import AfdPayload, QueuedPunch, RecordPayload
from tornado_tasks.ponto.rep_signer import AD_RB_POLICY, DEV_SIGNER_KEY, REP_SIGNER_KEY, TEST_SIGNATURE_NOTICE
from tornado_tasks.ponto.signing import verify_detached
from tornado_tasks.ponto.verify import verify_afd

from tests.integration.ponto_fixtures import Erp, erp_fixture, erp_pool_fixture, make_erp  # noqa: F401
from tests.integration.test_ponto_ledger import punch
from tests.unit.test_ponto_signer import icp_like_pem
from tornado_core import NonRetryable, ObjectStorePort, Retry, TaskContext
from tornado_core.adapters.memory.stores import MemoryObjectStore
from tornado_core.devstack.certs import make_test_signer_pem
from tornado_core.task_context import job_logger

ZONE = "America/Rio_Branco"  # the fixtures' establishment (UTC-5)
REGISTERED_INPI = "BR 51 2022 002733-0"


def task_context(erp: Erp, task: str, objects: ObjectStorePort | None = None) -> TaskContext:
    """The context a worker gives a ponto handler (objects in memory unless given)."""
    job_id = str(uuid.uuid4())
    return TaskContext(
        job_id=job_id, task=task, version="1", tenant=erp.tenant, attempt=1,
        s3=objects or MemoryObjectStore(), rds=erp.pool, redshift=None,
        logger=job_logger(logging.getLogger("tests.ponto"), job=job_id, tenant=erp.tenant),
        deadline=time.monotonic() + 600, _progress_sink=lambda fraction, note: None,
    )  # fmt: skip


def afd_lines(erp: Erp, rep: str, start: date | None = None, end: date | None = None) -> list[str]:
    today = datetime.now(UTC).date()
    with erp.pool.connection() as conn:
        source = load_afd_source(
            conn, rep=rep, start=start or today - timedelta(days=3), end=end or today + timedelta(days=3),
            generated_at=datetime.now(UTC),
        )  # fmt: skip
    return render_afd(source.header, source.records).decode(ENCODING).split("\r\n")


def run_afd(erp: Erp, objects: ObjectStorePort, rep: str) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    payload = AfdPayload(rep=rep, start=today - timedelta(days=3), end=today + timedelta(days=3))
    return dict(afd.handler(task_context(erp, "ponto.afd", objects), payload))


def test_each_punch_keeps_the_dh_it_was_hashed_with_and_the_afd_writes_it(erp: Erp) -> None:
    rep = erp.reps[0]
    late = punch(rep, offline=True, age=timedelta(hours=3))
    with erp.pool.connection() as conn:
        record_punches(conn, tenant=erp.tenant, job_id="job", punches=[punch(rep), late])
    with erp.pool.connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT nsr, marked_dh, recorded_dh, marked_at FROM ponto_punch WHERE rep_id = %s", (rep,)
        )
        stored = {nsr: (marked, recorded, at) for nsr, marked, recorded, at in cur.fetchall()}
    lines = {int(line[:9]): line for line in afd_lines(erp, rep) if line[9:10] == "7"}
    assert lines.keys() == stored.keys() == {3, 4}
    for nsr, (marked, recorded, at) in stored.items():
        assert (lines[nsr][10:34], lines[nsr][46:70]) == (marked, recorded)
        assert marked == local_dh(at, ZONE)  # rendered at insertion in the establishment's zone


def test_a_later_time_zone_database_cannot_alter_a_recorded_line_nor_break_the_chain(
    erp: Erp, monkeypatch: pytest.MonkeyPatch
) -> None:
    rep = erp.reps[0]
    with erp.pool.connection() as conn:
        record_punches(conn, tenant=erp.tenant, job_id="job", punches=[punch(rep) for _ in range(3)])
    before = [line for line in afd_lines(erp, rep) if line[9:10] == "7"]
    # Acre's rules change (as in 2008 and 2013): the zone now renders the same instants at -0200.
    monkeypatch.setattr(afd_source, "ZoneInfo", lambda name: ZoneInfo("America/Noronha"))
    after = afd_lines(erp, rep)
    assert [line for line in after if line[9:10] == "7"] == before
    report = verify_afd("\r\n".join(after).encode(ENCODING))
    assert report.ok and report.chain_checked == 3, report.problems


def test_a_punch_recorded_before_version_3_renders_from_its_instants_and_the_chain_runs_on(erp: Erp) -> None:
    rep = erp.reps[1]
    with erp.pool.connection() as conn:
        record_punches(conn, tenant=erp.tenant, job_id="job", punches=[punch(rep)])
    with erp.pool.connection() as conn:
        insert_as_version_2(conn, erp.tenant, rep)
    with erp.pool.connection() as conn:
        record_punches(conn, tenant=erp.tenant, job_id="job", punches=[punch(rep)])
    assert erp.scalar("SELECT count(*) FROM ponto_punch WHERE rep_id = %s AND marked_dh IS NULL", rep) == 1
    lines = afd_lines(erp, rep)
    report = verify_afd("\r\n".join(lines).encode(ENCODING))
    assert report.ok and report.counts["7"] == 3 and report.chain_checked == 3, report.problems


def insert_as_version_2(conn: Any, tenant: str, rep: str) -> None:
    """One punch written as a version-2 worker did: its DH only hashed, never stored."""
    with conn.cursor() as cur:
        head = lock_reps(cur, [rep])[rep]
        cur.execute("SELECT clock_timestamp()")
        now = cur.fetchone()[0]
        zone = ZoneInfo(head.time_zone)
        nsr, at = head.last_nsr + 1, now.astimezone(zone)
        fields = punch_fields(
            nsr=nsr, marked_at=at, cpf="12345678909", recorded_at=at, collector=1, offline=False
        )
        digest = chain_hash(fields, head.last_hash)
        cur.execute(
            "INSERT INTO ponto_punch (rep_id, nsr, tenant, punch_id, cpf, marked_at, device_time,"
            " device_offset, received_at, recorded_at, time_zone, collector, offline, hash, prev_hash,"
            " job_id)"
            " VALUES (%s, %s, %s, %s, '12345678909', %s, %s, 0, %s, %s, %s, 1, false, %s, %s, 'v2')",
            (rep, nsr, tenant, str(uuid.uuid4()), now, now, now, now, head.time_zone, digest, head.last_hash),
        )
        cur.execute(
            "UPDATE ponto_rep_counter SET last_nsr = %s, last_hash = %s WHERE rep_id = %s", (nsr, digest, rep)
        )


def test_a_version_2_database_is_brought_up_by_the_record_job_which_then_records(erp: Erp) -> None:
    with erp.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE ponto_punch DROP COLUMN marked_dh, DROP COLUMN recorded_dh")
        cur.execute("DELETE FROM ponto_schema WHERE version = 3")
    payload = RecordPayload(punches=[punch(erp.reps[0])])
    with pytest.raises(Retry, match="brought up to date"):
        record.handler(task_context(erp, "ponto.record"), payload)
    result = record.handler(task_context(erp, "ponto.record"), payload)
    assert result["recorded"] == 1
    assert erp.scalar("SELECT count(*) FROM ponto_punch WHERE marked_dh IS NOT NULL") == 1


def test_the_header_states_the_dates_of_the_first_and_last_records(erp: Erp) -> None:
    rep = erp.reps[2]
    today = datetime.now(ZoneInfo(ZONE)).date()
    header = afd_lines(erp, rep, today - timedelta(days=5), today + timedelta(days=5))[0]
    assert header[206:226] == f"{today}{today}"  # the REP's records are all of today (gravação, in Acre)
    empty = afd_lines(erp, rep, date(2100, 1, 1), date(2100, 1, 2))[0]
    assert empty[206:226] == "2100-01-012100-01-02"  # no record: the period asked for


def test_the_demo_rep_is_not_registered_and_its_afd_carries_a_labelled_test_signature(
    erp: Erp, tmp_path: Path
) -> None:
    assert erp.scalar("SELECT bool_or(registered) FROM ponto_rep WHERE tenant = %s", erp.tenant) is False
    objects = MemoryObjectStore()
    objects.put(DEV_SIGNER_KEY, make_test_signer_pem())  # what `tornado dev up` installs
    result = run_afd(erp, objects, erp.reps[0])
    assert result["test_signature"] is True and result["notice"] == TEST_SIGNATURE_NOTICE
    (tmp_path / "AFD.txt").write_bytes(objects.get(result["key"]))
    (tmp_path / "AFD.p7s").write_bytes(objects.get(result["signature_key"]))
    checked = CliRunner().invoke(verify_afd_command, [str(tmp_path / "AFD.txt")])
    assert checked.exit_code == 0, checked.output
    assert "certificate: TEST (not ICP-Brasil); policy: 2.16.76.1.7.1.1.2.3" in checked.output


def registered_rep(erp: Erp) -> str:
    rep_id = f"{erp.tenant}-registered"
    with erp.pool.connection() as conn:
        add_rep(
            conn,
            Rep(
                rep_id=rep_id, establishment_id=f"{erp.tenant}-est", inpi_number=REGISTERED_INPI,
                developer_type=1, developer_id="11222333000181", responsible_cpf="52998224725",
                registered=True,
            ),
        )  # fmt: skip
    return rep_id


def test_a_registered_rep_refuses_a_test_certificate_and_signs_with_the_developers_icp_brasil_one(
    erp: Erp,
) -> None:
    rep = registered_rep(erp)
    objects = MemoryObjectStore()
    objects.put(DEV_SIGNER_KEY, make_test_signer_pem())
    objects.put(REP_SIGNER_KEY, make_test_signer_pem())
    with pytest.raises(NonRetryable, match="ICP-Brasil"):
        run_afd(erp, objects, rep)
    objects.put(REP_SIGNER_KEY, icp_like_pem())
    result = run_afd(erp, objects, rep)
    assert result["test_signature"] is False and "notice" not in result
    assert result["key"].endswith("AFDBR512022002733011222333000181REP_P.txt")
    data = objects.get(result["key"])
    assert data[189:206] == b"BR5120220027330  "  # header field 7: the registration
    info = verify_detached(data, objects.get(result["signature_key"]))
    assert info.policy is not None and info.policy.oid == AD_RB_POLICY.oid


def test_a_punch_the_worker_refuses_is_quarantined_once_however_often_its_batch_runs(erp: Erp) -> None:
    other = make_erp(erp.pool, reps=1)
    stray: QueuedPunch = punch(other.reps[0])
    for _ in range(3):  # the message redelivered: the same batch, the same job
        with erp.pool.connection() as conn:
            [outcome] = record_punches(conn, tenant=erp.tenant, job_id="job-stray", punches=[stray])
        assert outcome.status == "rejected"
    with erp.pool.connection() as conn:
        record_punches(conn, tenant=erp.tenant, job_id="job-again", punches=[stray])  # the punch sent again
    kept = erp.scalar(
        "SELECT count(*) FROM ponto_quarantine WHERE tenant = %s AND punch_id = %s", erp.tenant, str(stray.id)
    )
    assert kept == 1
