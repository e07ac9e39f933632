"""The AEJ job on a real PostgreSQL and S3: recorded punches and work schedules in, a signed AEJ out."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from tornado_tasks.ponto.aej_source import AejIncomplete, AejPayload
from tornado_tasks.ponto.aej_verify import verify_aej
from tornado_tasks.ponto.cli_aej import verify_aej_command
from tornado_tasks.ponto.handlers import aej
from tornado_tasks.ponto.ledger import record_punches
from tornado_tasks.ponto.models import QueuedPunch
from tornado_tasks.ponto.rep_signer import DEV_SIGNER_KEY
from tornado_tasks.ponto.work_schedule import (
    add_work_schedule,
    assign_work_schedule,
    parse_period,
    work_schedule,
)

from tests.integration.ponto_fixtures import Erp, erp_fixture, erp_pool_fixture, s3_fixture  # noqa: F401
from tornado_core import NonRetryable, TaskContext
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.devstack.certs import make_test_signer_pem
from tornado_core.task_context import job_logger

ACRE = ZoneInfo("America/Rio_Branco")  # the fixtures' establishment (UTC-5)
JOSE = "12345678909"  # included (type 5) on every REP of the fixtures
OTHER = "52998224725"  # never included
PERIOD = {"start": date(2025, 3, 10), "end": date(2025, 3, 11)}


def local(day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, second, tzinfo=ACRE)


def punch(rep: str, when: datetime, cpf: str = JOSE) -> QueuedPunch:
    """An offline punch synced now: its marcação is its own (past) time."""
    now = datetime.now(UTC)
    return QueuedPunch(
        id=uuid.uuid4(), cpf=cpf, rep=rep, time=when, offline=True, collector=1, received_at=now
    )


def record(erp: Erp, punches: list[QueuedPunch]) -> None:
    with erp.pool.connection() as conn:
        outcomes = record_punches(conn, tenant=erp.tenant, job_id="job", punches=punches)
    assert {o.status for o in outcomes} == {"recorded"}


def give_schedule(erp: Erp, cpf: str = JOSE, valid_from: date = date(2025, 3, 1)) -> None:
    schedule = work_schedule("ADM", [parse_period("08:00-12:00"), parse_period("13:00-17:00")])
    with erp.pool.connection() as conn:
        add_work_schedule(conn, erp.tenant, schedule)
        assign_work_schedule(conn, tenant=erp.tenant, cpf=cpf, code="ADM", valid_from=valid_from)


def run_aej_job(erp: Erp, s3: S3ObjectStore, tenant: str | None = None) -> dict[str, object]:
    """Run the ``ponto.aej`` handler as a worker would (unregistered REPs: the stack's test signer)."""
    if not s3.exists(DEV_SIGNER_KEY):
        s3.put(DEV_SIGNER_KEY, make_test_signer_pem())
    job_id, owner = str(uuid.uuid4()), tenant or erp.tenant
    ctx = TaskContext(
        job_id=job_id, task="ponto.aej", version="1", tenant=owner, attempt=1, s3=s3, rds=erp.pool,
        redshift=None, logger=job_logger(logging.getLogger("tests.ponto"), job=job_id, tenant=owner),
        deadline=time.monotonic() + 600, _progress_sink=lambda fraction, note: None,
    )  # fmt: skip
    payload = AejPayload(establishment=f"{erp.tenant}-est", generated_at=local(12, 9, 0), **PERIOD)
    return aej.handler(ctx, payload)


def test_an_aej_of_recorded_punches_verifies_with_its_signature(
    erp: Erp, s3: S3ObjectStore, tmp_path: Path
) -> None:
    rep_a, rep_b = erp.reps[0], erp.reps[1]
    give_schedule(erp)
    record(erp, [punch(rep_a, local(10, 7, 58, 10)), punch(rep_a, local(10, 12, 1, 5))])
    record(
        erp, [punch(rep_b, local(10, 13, 0)), punch(rep_a, local(10, 17, 2)), punch(rep_b, local(11, 8, 0))]
    )
    record(erp, [punch(rep_a, local(9, 23, 59)), punch(rep_a, local(12, 0, 1))])  # outside the period

    result = run_aej_job(erp, s3)
    data, p7s = s3.get(str(result["key"])), s3.get(str(result["signature_key"]))

    lines = data.decode("iso-8859-1").split("\r\n")
    header = "01|1|11222333000181|||ACME Indústria LTDA|2025-03-10|2025-03-11|2025-03-12T09:00:00-0500|002"
    assert lines[0] == header
    assert lines[1:5] == [f"02|{n}|3|00000512021000001" for n in (1, 2, 3, 4)]
    assert lines[5:7] == ["03|1|12345678909|José da Conceição", "04|ADM|480|0800|1200|1300|1700"]
    assert lines[7:12] == [
        "05|1|2025-03-10T07:58:00-0500|1|E|001|O|ADM|",
        "05|1|2025-03-10T12:01:00-0500|1|S|001|O||",
        "05|1|2025-03-10T13:00:00-0500|2|E|002|O||",
        "05|1|2025-03-10T17:02:00-0500|1|S|002|O||",
        "05|1|2025-03-11T08:00:00-0500|2|E|001|O|ADM|",
    ]
    assert lines[13] == "99|1|4|1|1|5|0|0|1"
    report = verify_aej(data, p7s)
    assert report.ok, report.problems
    assert (result["marcacoes"], result["vinculos"], result["test_signature"]) == (5, 1, True)
    (tmp_path / "AEJ.txt").write_bytes(data)
    (tmp_path / "AEJ.p7s").write_bytes(p7s)
    checked = CliRunner().invoke(verify_aej_command, [str(tmp_path / "AEJ.txt")])
    assert checked.exit_code == 0, checked.output
    assert "2025-03-10..2025-03-11" in checked.output and "05: 5" in checked.output


def test_a_period_without_punches_has_the_reps_and_the_ptrp_only(erp: Erp, s3: S3ObjectStore) -> None:
    result = run_aej_job(erp, s3)

    data = s3.get(str(result["key"]))
    assert verify_aej(data).ok
    assert b"\r\n99|1|4|0|0|0|0|0|1\r\n" in data


def test_punches_of_an_employee_without_work_schedule_or_name_stop_the_job_naming_them(
    erp: Erp, s3: S3ObjectStore
) -> None:
    give_schedule(erp, valid_from=date(2025, 3, 11))  # not yet on the 10th
    record(erp, [punch(erp.reps[0], local(10, 8, 0)), punch(erp.reps[0], local(10, 9, 0), cpf=OTHER)])

    with pytest.raises(AejIncomplete) as raised:
        run_aej_job(erp, s3)

    message = str(raised.value)
    assert f"CPF {OTHER} has no type 5 record" in message
    assert f"CPF {JOSE} has no work schedule on 2025-03-10" in message
    assert f"CPF {OTHER} has no work schedule on 2025-03-10" in message
    assert isinstance(raised.value, NonRetryable)


def test_another_tenants_establishment_is_not_found(erp: Erp, s3: S3ObjectStore) -> None:
    with pytest.raises(NonRetryable, match="no establishment"):
        run_aej_job(erp, s3, tenant=f"{erp.tenant}-other")
