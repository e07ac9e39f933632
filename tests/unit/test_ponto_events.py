"""AFD types 4 and 6 (clock adjustment, the REP-P's sensitive events): rendering and verify-afd."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from tornado_tasks.ponto.afd import (
    ClockAdjustment,
    Employer,
    EmployerRecord,
    Header,
    PunchRecord,
    Record,
    SensitiveEvent,
    chain_hash,
    punch_fields,
    render_afd,
)
from tornado_tasks.ponto.afd_source import event_record
from tornado_tasks.ponto.verify import verify_afd

ACRE = ZoneInfo("America/Rio_Branco")
EMPLOYER = Employer(id_type=1, id="11222333000181", cno_caepf="", name="ACME LTDA", site="Rio Branco/AC")
HEADER = Header(
    employer=EMPLOYER,
    inpi="BR512021000001",
    start=date(2025, 3, 10),
    end=date(2025, 3, 10),
    generated_at=datetime(2025, 3, 11, 9, 0, tzinfo=ACRE),
    developer_type=1,
    developer_id="11222333000181",
)


def at(hour: int, minute: int) -> datetime:
    return datetime(2025, 3, 10, hour, minute, 41, tzinfo=ACRE)


def punch(nsr: int, hour: int, previous: str) -> PunchRecord:
    fields = punch_fields(
        nsr=nsr, marked_at=at(hour, 0), cpf="12345678909", recorded_at=at(hour, 0), collector=1, offline=False
    )
    return PunchRecord(
        nsr=nsr,
        marked_at=at(hour, 0),
        cpf="12345678909",
        recorded_at=at(hour, 0),
        collector=1,
        offline=False,
        hash=chain_hash(fields, previous),
    )


def outage_history() -> list[Record]:
    """Employer, a punch, an outage window 10:00-10:20 (08 then 07), a clock adjustment, a punch."""
    first = punch(2, 8, "")
    return [
        EmployerRecord(nsr=1, recorded_at=at(7, 0), responsible_cpf="52998224725", employer=EMPLOYER),
        first,
        SensitiveEvent(nsr=3, recorded_at=at(10, 0), code="08"),
        SensitiveEvent(nsr=4, recorded_at=at(10, 20), code="07"),
        ClockAdjustment(nsr=5, before=at(11, 0), adjusted=at(11, 2), responsible_cpf="52998224725"),
        punch(6, 12, first.hash),
    ]


def lines_of(data: bytes) -> list[str]:
    return data.decode("iso-8859-1").split("\r\n")


def test_type_6_records_are_written_in_nsr_order_and_verify() -> None:
    lines = lines_of(render_afd(HEADER, outage_history()))
    assert lines[3] == "000000003" + "6" + "2025-03-10T10:00:00-0500" + "08"
    assert lines[4] == "000000004" + "6" + "2025-03-10T10:20:00-0500" + "07"
    assert len(lines[5]) == 73 and lines[5][9] == "4"
    assert (
        lines[7]
        == "999999999"
        + "000000001"
        + "000000000"
        + "000000001"
        + "000000000"
        + "000000002"
        + "000000002"
        + "9"
    )
    report = verify_afd("\r\n".join(lines).encode("iso-8859-1"))
    assert report.ok, report.problems
    assert report.counts == {"2": 1, "3": 0, "4": 1, "5": 0, "6": 2, "7": 2}
    assert report.chain_checked == 2  # the chain runs from punch to punch across the type-6 records


def test_verify_flags_an_unknown_event_code_and_a_broken_type_4_crc() -> None:
    lines = lines_of(render_afd(HEADER, outage_history()))
    lines[3] = lines[3][:-2] + "99"
    lines[5] = lines[5].replace("52998224725", "52998224726")
    problems = verify_afd("\r\n".join(lines).encode("iso-8859-1")).problems
    assert any(p.startswith("line 4: type-6 event code '99'") for p in problems), problems
    assert any(p.startswith("line 6: CRC") for p in problems), problems


def test_an_unknown_event_code_is_refused_when_rendering() -> None:
    with pytest.raises(ValueError, match="event code '01'"):
        render_afd(HEADER, [SensitiveEvent(nsr=1, recorded_at=at(10, 0), code="01")])


def test_stored_type_4_and_6_rows_become_their_records() -> None:
    """The AFD source used to read every non-type-2 row as an employee (KeyError, failed AFD job)."""
    recorded = datetime(2025, 3, 10, 15, 0, 41, tzinfo=ZoneInfo("UTC"))
    event = event_record((7, 6, recorded, "America/Rio_Branco", {"code": "08", "reason": "workers down"}))
    assert event == SensitiveEvent(nsr=7, recorded_at=at(10, 0), code="08")
    fields = {
        "before": "2025-03-10T16:00:00+00:00",
        "adjusted": "2025-03-10T16:02:00+00:00",
        "responsible_cpf": "52998224725",
    }
    adjustment = event_record((8, 4, recorded, "America/Rio_Branco", fields))
    assert adjustment == ClockAdjustment(
        nsr=8,
        before=at(11, 0).replace(second=0),
        adjusted=at(11, 2).replace(second=0),
        responsible_cpf="52998224725",
    )
    with pytest.raises(ValueError, match="type-3"):
        event_record((9, 3, recorded, "America/Rio_Branco", {}))
