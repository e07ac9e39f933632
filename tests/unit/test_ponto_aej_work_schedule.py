"""Work schedules (horário contratual) as the AEJ's 04 records need them: parsing, checks, which applies."""

from __future__ import annotations

from datetime import date, time

import pytest
from tornado_tasks.ponto.aej import schedule_line
from tornado_tasks.ponto.work_schedule import code_on, parse_period, work_schedule


def periods(*texts: str) -> list[tuple[time, time]]:
    return [parse_period(text) for text in texts]


def test_a_day_schedule_lasts_the_minutes_inside_its_periods_unless_told() -> None:
    adm = work_schedule("ADM", periods("08:00-12:00", "1300-1700"))
    reduced = work_schedule("NOTURNO", periods("22:00-05:00"), duration=480)  # night hours count 52'30"

    assert schedule_line(adm) == "04|ADM|480|0800|1200|1300|1700"
    assert schedule_line(reduced) == "04|NOTURNO|480|2200|0500"


def test_a_journey_may_cross_midnight_once() -> None:
    night = work_schedule("N12", periods("19:00-23:00", "23:30-07:00"))

    assert night.duration == 4 * 60 + 7 * 60 + 30
    assert night.hhmm() == ["1900", "2300", "2330", "0700"]


@pytest.mark.parametrize(
    ("code", "texts", "duration", "problem"),
    [
        ("ADM", ["08:00-08:00"], None, "must come after"),
        ("ADM", ["08:00-12:00", "12:00-17:00"], None, "must come after"),
        ("ADM", ["08:00-20:00", "21:00-08:00"], None, "less than 24 hours"),
        ("ADM", [], None, "1 to 6"),
        ("AD|M", ["08:00-12:00"], None, "1 to 30 letters"),
        ("x" * 31, ["08:00-12:00"], None, "1 to 30 letters"),
        ("ADM", ["08:00-12:00"], 0, "1 to 1440 minutes"),
    ],
)
def test_impossible_work_schedules_are_refused(
    code: str, texts: list[str], duration: int | None, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        work_schedule(code, periods(*texts), duration)


@pytest.mark.parametrize("text", ["8-12", "24:00-01:00", "08:00", "08:60-09:00"])
def test_malformed_periods_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not"):
        parse_period(text)


def test_the_schedule_in_force_is_the_latest_assigned_on_or_before_the_day() -> None:
    history = [(date(2025, 3, 1), "ADM"), (date(2025, 3, 15), "MEIO")]

    assert code_on(history, date(2025, 2, 28)) is None
    assert code_on(history, date(2025, 3, 1)) == "ADM"
    assert code_on(history, date(2025, 3, 14)) == "ADM"
    assert code_on(history, date(2025, 3, 15)) == "MEIO"
