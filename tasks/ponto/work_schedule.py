"""Work schedules (horários contratuais): the contractual daily schedules of a tenant and who follows which.

A *work schedule* (not to be confused with Tornado's periodic job schedules) is one contractual
journey, as the AEJ's record 04 writes it: a code, a duration in minutes and its entry/exit pairs
(``08:00-12:00 13:00-17:00``). Definitions never change: a code keeps its times forever (a new
contract gets a new code), so an AEJ generated again says the same thing. An employee (CPF) follows
a work schedule from a date on (an *assignment*); the latest assignment dated on or before a day is
the one in force that day, and a later row for the same date corrects an earlier one. Both tables
are append-only, like the ARP: history is kept, never edited.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from .identity import normalize_cpf

#: Appended to the ponto DDL (``schema.py``): definitions and assignments, both append-only.
WORK_SCHEDULE_DDL = """
-- Contractual work schedules (horário contratual, AEJ record 04). A code never changes its times.
CREATE TABLE IF NOT EXISTS ponto_work_schedule (
    tenant       text NOT NULL,
    code         varchar(30) NOT NULL,
    duration_min integer NOT NULL CHECK (duration_min BETWEEN 1 AND 1440),
    periods      jsonb NOT NULL,                  -- [["0800", "1200"], ["1300", "1700"]]: entry, exit (hhmm)
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant, code)
);
-- Which work schedule an employee follows from a date on; a later row for a date corrects it.
CREATE TABLE IF NOT EXISTS ponto_work_schedule_assignment (
    assignment_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        text NOT NULL,
    cpf           char(11) NOT NULL,
    valid_from    date NOT NULL,
    code          varchar(30) NOT NULL,
    assigned_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (tenant, code) REFERENCES ponto_work_schedule (tenant, code)
);
CREATE INDEX IF NOT EXISTS ponto_work_schedule_assignment_cpf_idx
    ON ponto_work_schedule_assignment (tenant, cpf, valid_from);
CREATE OR REPLACE TRIGGER ponto_work_schedule_append_only
    BEFORE UPDATE OR DELETE ON ponto_work_schedule FOR EACH ROW EXECUTE FUNCTION ponto_append_only();
CREATE OR REPLACE TRIGGER ponto_work_schedule_no_truncate
    BEFORE TRUNCATE ON ponto_work_schedule FOR EACH STATEMENT EXECUTE FUNCTION ponto_append_only();
CREATE OR REPLACE TRIGGER ponto_work_schedule_assignment_append_only
    BEFORE UPDATE OR DELETE ON ponto_work_schedule_assignment
    FOR EACH ROW EXECUTE FUNCTION ponto_append_only();
CREATE OR REPLACE TRIGGER ponto_work_schedule_assignment_no_truncate
    BEFORE TRUNCATE ON ponto_work_schedule_assignment
    FOR EACH STATEMENT EXECUTE FUNCTION ponto_append_only();
"""

#: What a code may look like (the AEJ's codHorContratual: 1 to 30 characters, no "|").
CODE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,29}$")
#: Most entry/exit pairs in one journey.
MAX_PERIODS = 6
_TIME = re.compile(r"^([01]\d|2[0-3]):?([0-5]\d)$")
_DAY = 1440

_INSERT = """
INSERT INTO ponto_work_schedule (tenant, code, duration_min, periods) VALUES (%s, %s, %s, %s)
ON CONFLICT (tenant, code) DO NOTHING RETURNING 1
"""
_SELECT = "SELECT code, duration_min, periods FROM ponto_work_schedule WHERE tenant = %s"
_CURRENT = """
SELECT DISTINCT ON (cpf, valid_from) cpf, valid_from, code FROM ponto_work_schedule_assignment
WHERE tenant = %(tenant)s AND cpf = ANY(%(cpfs)s) AND valid_from <= %(until)s
ORDER BY cpf, valid_from, assignment_id DESC
"""
_ASSIGN = "INSERT INTO ponto_work_schedule_assignment (tenant, cpf, valid_from, code) VALUES (%s, %s, %s, %s)"


@dataclass(frozen=True)
class WorkSchedule:
    """One contractual journey (AEJ record 04).

    Attributes:
        code: Its code, unique in the tenant (:data:`CODE_PATTERN`).
        duration: The journey's length in minutes (with the night-hour reduction, if any).
        periods: Entry and exit times, in order; the last exit may fall after midnight.
    """

    code: str
    duration: int
    periods: tuple[tuple[time, time], ...]

    def hhmm(self) -> list[str]:
        """The entry and exit times as ``hhmm`` strings, in order (``["0800", "1200", ...]``)."""
        return [f"{t.hour:02d}{t.minute:02d}" for pair in self.periods for t in pair]


def parse_time(text: str) -> time:
    """``08:00`` or ``0800`` as a time.

    Raises:
        ValueError: Not hh:mm between 00:00 and 23:59.
    """
    found = _TIME.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a time hh:mm (00:00 to 23:59)")
    return time(int(found.group(1)), int(found.group(2)))


def parse_period(text: str) -> tuple[time, time]:
    """``08:00-12:00`` (or ``0800-1200``) as an (entry, exit) pair.

    Raises:
        ValueError: Not two times joined by ``-``.
    """
    entry, sep, leave = text.partition("-")
    if not sep:
        raise ValueError(f"{text!r} is not a period entry-exit like 08:00-12:00")
    return parse_time(entry), parse_time(leave)


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _worked_minutes(periods: Sequence[tuple[time, time]]) -> int:
    """Minutes inside the pairs: each time after the one before (past midnight if earlier), within 24 h."""
    times = [_minutes(moment) for pair in periods for moment in pair]
    elapsed = [0]
    for before, after in itertools.pairwise(times):
        step = (after - before) % _DAY
        if step == 0:
            raise ValueError("each entry or exit time must come after the one before it")
        elapsed.append(elapsed[-1] + step)
    if elapsed[-1] >= _DAY:
        raise ValueError("a work schedule's times must span less than 24 hours")
    return sum(elapsed[i + 1] - elapsed[i] for i in range(0, len(elapsed), 2))


def work_schedule(
    code: str, periods: Sequence[tuple[time, time]], duration: int | None = None
) -> WorkSchedule:
    """A checked work schedule; ``duration`` defaults to the minutes inside the periods.

    Raises:
        ValueError: A bad code, no period or too many, times going backwards, or a duration
            outside 1..1440 minutes.
    """
    if not CODE_PATTERN.match(code):
        raise ValueError(f"work schedule code {code!r}: 1 to 30 letters, digits, '.', '_' or '-'")
    if not 1 <= len(periods) <= MAX_PERIODS:
        raise ValueError(f"a work schedule has 1 to {MAX_PERIODS} entry-exit periods")
    worked = _worked_minutes(periods)
    minutes = worked if duration is None else duration
    if not 1 <= minutes <= _DAY:
        raise ValueError(f"the duration must be 1 to {_DAY} minutes, not {minutes}")
    return WorkSchedule(code, minutes, tuple(periods))


def _stored(schedule: WorkSchedule) -> str:
    return json.dumps([[f"{t.hour:02d}{t.minute:02d}" for t in pair] for pair in schedule.periods])


def _loaded(code: str, duration: int, periods: Any) -> WorkSchedule:
    pairs = json.loads(periods) if isinstance(periods, str) else periods
    return WorkSchedule(code, int(duration), tuple((parse_time(a), parse_time(b)) for a, b in pairs))


def add_work_schedule(conn: Any, tenant: str, schedule: WorkSchedule) -> bool:
    """Define a work schedule of ``tenant`` (in the caller's transaction).

    Returns:
        True if created, False if the same definition existed already.

    Raises:
        ValueError: The code exists with other times or duration (definitions never change:
            give the new contract a new code and assign it).
    """
    with conn.cursor() as cur:
        cur.execute(_INSERT, (tenant, schedule.code, schedule.duration, _stored(schedule)))
        if cur.fetchone() is not None:
            return True
    existing = load_work_schedules(conn, tenant, [schedule.code])[schedule.code]
    if existing != schedule:
        raise ValueError(
            f"work schedule {schedule.code!r} exists with other times ({' '.join(existing.hhmm())},"
            f" {existing.duration} min): definitions never change, use a new code"
        )
    return False


def load_work_schedules(
    conn: Any, tenant: str, codes: Iterable[str] | None = None
) -> dict[str, WorkSchedule]:
    """The tenant's work schedules by code (only ``codes`` when given)."""
    wanted = None if codes is None else sorted(set(codes))
    with conn.cursor() as cur:
        if wanted is None:
            cur.execute(_SELECT + " ORDER BY code", (tenant,))
        else:
            cur.execute(_SELECT + " AND code = ANY(%s) ORDER BY code", (tenant, wanted))
        return {str(row[0]): _loaded(str(row[0]), row[1], row[2]) for row in cur.fetchall()}


def assign_work_schedule(conn: Any, *, tenant: str, cpf: str, code: str, valid_from: date) -> bool:
    """Make the employee ``cpf`` follow work schedule ``code`` from ``valid_from`` on.

    Returns:
        True if recorded, False if that assignment was already the one in force for the date.

    Raises:
        ValueError: Invalid CPF.
        LookupError: The tenant has no work schedule ``code``.
    """
    digits = normalize_cpf(cpf)
    if code not in load_work_schedules(conn, tenant, [code]):
        raise LookupError(
            f"tenant {tenant!r} has no work schedule {code!r} (tornado ponto work-schedule add)"
        )
    current = assignment_history(conn, tenant, [digits], until=valid_from).get(digits, [])
    if (valid_from, code) in current:
        return False
    with conn.cursor() as cur:
        cur.execute(_ASSIGN, (tenant, digits, valid_from, code))
    return True


def assignment_history(
    conn: Any, tenant: str, cpfs: Sequence[str], *, until: date
) -> dict[str, list[tuple[date, str]]]:
    """Per CPF, the assignments in force from each date up to ``until``: ``[(valid_from, code)]`` by date."""
    history: dict[str, list[tuple[date, str]]] = {}
    with conn.cursor() as cur:
        cur.execute(_CURRENT, {"tenant": tenant, "cpfs": sorted(set(cpfs)), "until": until})
        for cpf, valid_from, code in cur.fetchall():
            history.setdefault(str(cpf), []).append((valid_from, str(code)))
    return history


def code_on(history: Sequence[tuple[date, str]], day: date) -> str | None:
    """The code in force on ``day``: the assignment with the latest date on or before it, if any."""
    found = None
    for valid_from, code in history:
        if valid_from > day:
            break
        found = code
    return found
