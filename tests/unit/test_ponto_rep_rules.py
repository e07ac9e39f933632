"""Smaller REP-P rules: INPI numbers, collector 05, header dates, stored DH text, marcação <= gravação."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from tornado_tasks.ponto.admin import DEMO_INPI_NUMBER, Rep, add_rep
from tornado_tasks.ponto.afd import (
    PunchRecord,
    chain_hash,
    punch_fields,
    punch_fields_text,
    record_line,
    records_period,
    render_afd,
)
from tornado_tasks.ponto.identity import inpi_problem, normalize_inpi
from tornado_tasks.ponto.intake import check_punch
from tornado_tasks.ponto.models import RecordPayload
from tornado_tasks.ponto.verify import verify_afd

from tests.unit.test_ponto_afd import golden_records

ACRE = ZoneInfo("America/Rio_Branco")


@pytest.mark.parametrize(
    "number", ["BR 51 2022 002733-0", "BR512017000290-8", "BR5120250058594", "br 51 2016 000508 4"]
)
def test_public_inpi_software_registrations_are_valid(number: str) -> None:
    assert inpi_problem(number) is None


@pytest.mark.parametrize(
    ("number", "why"),
    [
        (DEMO_INPI_NUMBER, "BR 51 AAAA NNNNNN-D"),  # the demo REP's: no check digit
        ("BR 51 2022 002733-1", "check digit"),
        ("BR 10 2026 024571-2", "BR 51 AAAA NNNNNN-D"),  # a patent application, not software
        ("512022002733-0", "BR 51 AAAA NNNNNN-D"),
    ],
)
def test_other_numbers_are_not_inpi_software_registrations(number: str, why: str) -> None:
    problem = inpi_problem(number)
    assert problem is not None and why in problem


def test_a_registration_is_written_as_br_and_thirteen_digits() -> None:
    assert normalize_inpi("BR 51 2022 002733-0") == "BR5120220027330"


def rep(**changes: object) -> Rep:
    base = Rep(
        rep_id="r1",
        establishment_id="e1",
        inpi_number="BR 51 2022 002733-0",
        developer_type=1,
        developer_id="11222333000181",
        responsible_cpf="52998224725",
        registered=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"inpi_number": DEMO_INPI_NUMBER}, "INPI number must be"),  # the demo REP cannot be registered
        ({"inpi_number": "BR 51 2022 002733-9"}, "check digit"),
        ({"inpi_number": "X" * 18, "registered": False}, "1 to 17 characters"),
    ],
)
def test_a_rep_is_refused_before_any_write(changes: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        add_rep(None, rep(**changes))  # refused before the connection is used


def test_collector_05_other_electronic_device_can_be_sent() -> None:
    now = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
    item = {"id": str(uuid.uuid4()), "cpf": "123.456.789-09", "rep": "r1", "time": now.isoformat()}
    checked = check_punch({**item, "collector": "other"}, index=0, received_at=now, rep_known=lambda r: True)
    assert checked.ok and checked.queued is not None and checked.queued["collector"] == 5
    RecordPayload.model_validate({"punches": [checked.queued]})


def test_the_afd_writes_collector_05_and_verify_accepts_it() -> None:
    header, records = golden_records()
    moment = datetime(2025, 3, 10, 13, 0, tzinfo=ACRE)
    fields = punch_fields(
        nsr=6, marked_at=moment, cpf="12345678909", recorded_at=moment, collector=5, offline=False
    )
    last = records[-1]
    assert isinstance(last, PunchRecord)
    punch = PunchRecord(
        nsr=6, marked_at=moment, cpf="12345678909", recorded_at=moment, collector=5, offline=False,
        hash=chain_hash(fields, last.hash),
    )  # fmt: skip
    assert record_line(punch)[70:72] == "05"
    report = verify_afd(render_afd(header, [*records, punch]))
    assert report.ok, report.problems


def test_a_punch_line_keeps_the_dh_text_it_was_hashed_with() -> None:
    """A later time-zone database would render the instants differently: the stored text wins."""
    moment = datetime(2025, 3, 10, 8, 0, tzinfo=ACRE)
    as_hashed = "2025-03-10T08:00:00-0500"
    fields = punch_fields_text(
        nsr=1, marked_dh=as_hashed, cpf="12345678909", recorded_dh=as_hashed, collector=1, offline=False
    )
    punch = PunchRecord(
        nsr=1, marked_at=moment.astimezone(ZoneInfo("America/Sao_Paulo")), cpf="12345678909",
        recorded_at=moment.astimezone(ZoneInfo("America/Sao_Paulo")), collector=1, offline=False,
        hash=chain_hash(fields, ""), marked_dh=as_hashed, recorded_dh=as_hashed,
    )  # fmt: skip
    assert record_line(punch) == fields + punch.hash
    assert "-0300" not in record_line(punch)


def test_the_header_dates_are_those_of_the_first_and_last_records() -> None:
    _header, records = golden_records()
    late = PunchRecord(
        nsr=9, marked_at=datetime(2025, 3, 9, 23, 50, tzinfo=ACRE), cpf="12345678909",
        recorded_at=datetime(2025, 3, 12, 0, 10, tzinfo=ACRE), collector=1, offline=True, hash="0" * 64,
    )  # fmt: skip
    assert records_period(records) == (date(2025, 3, 10), date(2025, 3, 10))
    assert records_period([*records, late]) == (date(2025, 3, 10), date(2025, 3, 12))  # by gravação
    assert records_period([]) is None


def test_verify_afd_refuses_a_marcacao_after_its_gravacao() -> None:
    header, records = golden_records()
    moment = datetime(2025, 3, 10, 13, 0, tzinfo=ACRE)
    last = records[-1]
    assert isinstance(last, PunchRecord)
    ahead = moment + timedelta(minutes=4)
    fields = punch_fields(
        nsr=6, marked_at=ahead, cpf="12345678909", recorded_at=moment, collector=1, offline=True
    )
    punch = PunchRecord(
        nsr=6, marked_at=ahead, cpf="12345678909", recorded_at=moment, collector=1, offline=True,
        hash=chain_hash(fields, last.hash),
    )  # fmt: skip
    report = verify_afd(render_afd(header, [*records, punch]))
    assert report.problems == [
        "line 7: marcação 2025-03-10T13:04:00-0500 is after its gravação 2025-03-10T13:00:00-0500"
    ]


def test_verify_afd_refuses_a_record_outside_the_headers_period() -> None:
    header, records = golden_records()
    report = verify_afd(render_afd(replace(header, end=date(2025, 3, 9), start=date(2025, 3, 9)), records))
    assert not report.ok
    assert (
        "line 2: recorded on 2025-03-10, outside the header's period 2025-03-09..2025-03-09"
        in report.problems
    )
