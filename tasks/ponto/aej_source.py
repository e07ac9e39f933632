"""Reading an establishment's punches, employees and work schedules for one period, ready for the AEJ.

The marcações are the recorded punches (the ARP), all of source ``O`` (original): Tornado has no
treatment yet (no inclusion ``I``, pre-assignment ``P``, exception ``X`` nor disregard ``D``).
Their direction is inferred: an employee's punches of one day (the marcação's local date in the
establishment's zone) alternate entry and exit in time order, pairs numbered from 1, and the day's
first entry carries the code of the work schedule in force for that employee on that day. A
journey that crosses midnight is therefore split at midnight; an odd punch stays an entry without
its exit. Records 06 (one vínculo per CPF here) and 07 (absences and hour bank need leave and
holiday data Tornado does not have) are not written.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from tornado_core import NonRetryable

from . import __version__
from .aej import PTRP_DEVELOPER_EMAIL, PTRP_DEVELOPER_NAME, PTRP_NAME, Aej, AejHeader, AejRep, Marcacao, Ptrp
from .aej import Vinculo as AejVinculo
from .afd import Employer
from .schema import ensure_schema
from .work_schedule import assignment_history, code_on, load_work_schedules

#: Longest period of one AEJ, in days.
MAX_PERIOD_DAYS = 366
#: Most missing items an error lists.
_LISTED = 10

_ESTABLISHMENT = """
SELECT employer_type, employer_id, cno_caepf, company_name, work_site, time_zone
FROM ponto_establishment WHERE establishment_id = %s AND tenant = %s
"""
_REPS = """
SELECT rep_id, inpi_number, developer_type, developer_id, registered FROM ponto_rep
WHERE establishment_id = %s ORDER BY rep_id
"""
_PUNCHES = """
SELECT cpf, marked_at, marked_dh, time_zone, rep_id, nsr FROM ponto_punch
WHERE rep_id = ANY(%(reps)s) AND marked_at >= %(start)s AND marked_at < %(end)s
"""
_NAMES = """
SELECT DISTINCT ON (fields->>'cpf') fields->>'cpf', fields->>'name' FROM ponto_event
WHERE record_type = 5 AND rep_id = ANY(%(reps)s) AND fields->>'cpf' = ANY(%(cpfs)s)
ORDER BY fields->>'cpf', recorded_at DESC, nsr DESC
"""


class AejPayload(BaseModel):
    """Payload of ``ponto.aej``: the AEJ of one establishment for a period of local dates (inclusive)."""

    model_config = ConfigDict(extra="forbid")

    establishment: str = Field(min_length=1, max_length=64, description="Establishment id.")
    start: date
    end: date
    generated_at: AwareDatetime | None = Field(
        default=None, description="Header generation time; now by default (fixed in golden tests)."
    )

    @model_validator(mode="after")
    def _period(self) -> AejPayload:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        if (self.end - self.start).days >= MAX_PERIOD_DAYS:
            raise ValueError(f"an AEJ covers at most {MAX_PERIOD_DAYS} days")
        return self


class AejIncomplete(NonRetryable):
    """The period has punches of employees without a name (type 5 record) or a work schedule."""


@dataclass(frozen=True)
class OriginalPunch:
    """A recorded punch as the AEJ needs it.

    Attributes:
        cpf: The employee.
        instant: The marcação, to the second (the order of the day's punches).
        local: The marcação as its DH is written: the one rendered at insertion when kept
            (``marked_dh``, so the AEJ writes what the AFD writes), else in the punch's zone.
        rep_id: Its REP.
        nsr: Its NSR there.
    """

    cpf: str
    instant: datetime
    local: datetime
    rep_id: str
    nsr: int

    @property
    def day(self) -> date:
        """The journey's day: the marcação's local date."""
        return self.local.date()


@dataclass(frozen=True)
class AejSource:
    """An AEJ ready to render, and what the job needs besides.

    Attributes:
        aej: The file's content.
        tenant: The establishment's owner.
        registered: Every REP of the establishment is registered at INPI (the file is signed
            for real; otherwise with a test signature).
    """

    aej: Aej
    tenant: str
    registered: bool


@dataclass(frozen=True)
class _Rows:
    """What the ERP database holds for the period."""

    employer: Employer
    zone: str
    reps: list[tuple[str, str, int, str, bool]]
    punches: list[OriginalPunch]
    names: dict[str, str]


def treat(
    punches: Sequence[OriginalPunch],
    *,
    vinculos: dict[str, int],
    reps: dict[str, int],
    codes: dict[tuple[str, date], str],
) -> list[Marcacao]:
    """Original punches as 05 records: per employee and day, entry and exit alternate in time order.

    Args:
        punches: The period's punches (any order).
        vinculos: ``idtVinculoAej`` by CPF.
        reps: ``idRepAej`` by REP id.
        codes: The work schedule code in force per ``(cpf, day)``.

    Returns:
        The 05 records by vínculo, then time (then REP and NSR).
    """
    ordered = sorted(punches, key=lambda p: (vinculos[p.cpf], p.day, p.instant, reps[p.rep_id], p.nsr))
    marks: list[Marcacao] = []
    for (cpf, day), journey in itertools.groupby(ordered, key=lambda p: (p.cpf, p.day)):
        for index, punch in enumerate(journey):
            marks.append(
                Marcacao(
                    vinculo=vinculos[cpf],
                    marked_at=punch.local,
                    rep=reps[punch.rep_id],
                    kind="S" if index % 2 else "E",
                    seq=index // 2 + 1,
                    schedule="" if index else codes[(cpf, day)],
                )
            )
    return marks


def _bounds(start: date, end: date, zone: str) -> tuple[datetime, datetime]:
    """A window sure to hold every instant whose local date is in the period, whatever the zone."""
    tz = ZoneInfo(zone)
    return datetime.combine(start - timedelta(days=1), time.min, tz), datetime.combine(
        end + timedelta(days=2), time.min, tz
    )


def _punches(cur: Any, rep_ids: list[str], start: date, end: date, zone: str) -> list[OriginalPunch]:
    first, after = _bounds(start, end, zone)
    cur.execute(_PUNCHES, {"reps": rep_ids, "start": first, "end": after})
    punches = [
        OriginalPunch(str(cpf), marked, _local(marked, dh, tz), str(rep), int(nsr))
        for cpf, marked, dh, tz, rep, nsr in cur.fetchall()
    ]
    return [p for p in punches if start <= p.day <= end]


def _local(marked: datetime, dh: str | None, zone: str) -> datetime:
    if dh:
        return datetime.strptime(dh, "%Y-%m-%dT%H:%M:%S%z")
    return marked.astimezone(ZoneInfo(zone))


def _incomplete(problems: list[str]) -> AejIncomplete:
    more = f" (and {len(problems) - _LISTED} more)" if len(problems) > _LISTED else ""
    return AejIncomplete("the AEJ cannot be written: " + "; ".join(problems[:_LISTED]) + more)


def _day_codes(
    conn: Any, tenant: str, punches: Sequence[OriginalPunch], end: date
) -> tuple[dict[tuple[str, date], str], list[str]]:
    history = assignment_history(conn, tenant, [p.cpf for p in punches], until=end)
    codes: dict[tuple[str, date], str] = {}
    missing: list[str] = []
    for cpf, day in sorted({(p.cpf, p.day) for p in punches}):
        code = code_on(history.get(cpf, []), day)
        if code is None:
            missing.append(f"CPF {cpf} has no work schedule on {day} (tornado ponto work-schedule assign)")
        else:
            codes[(cpf, day)] = code
    return codes, missing


def _read(cur: Any, tenant: str, establishment: str, start: date, end: date) -> _Rows:
    cur.execute(_ESTABLISHMENT, (establishment, tenant))
    row = cur.fetchone()
    if row is None:
        raise LookupError(f"no establishment {establishment!r} for tenant {tenant!r}")
    emp_type, emp_id, cno, company, site, zone = row
    cur.execute(_REPS, (establishment,))
    reps = [(str(r[0]), str(r[1]), int(r[2]), str(r[3]), bool(r[4])) for r in cur.fetchall()]
    if not reps:
        raise LookupError(f"establishment {establishment!r} has no REP")
    rep_ids = [r[0] for r in reps]
    punches = _punches(cur, rep_ids, start, end, zone)
    cur.execute(_NAMES, {"reps": rep_ids, "cpfs": sorted({p.cpf for p in punches})})
    names = {str(cpf): str(name) for cpf, name in cur.fetchall()}
    employer = Employer(id_type=emp_type, id=emp_id, cno_caepf=cno, name=company, site=site)
    return _Rows(employer, zone, reps, punches, names)


def load_aej_source(
    conn: Any, *, tenant: str, establishment: str, start: date, end: date, generated_at: datetime
) -> AejSource:
    """Everything the AEJ of ``establishment`` (of ``tenant``) for the period says.

    Raises:
        LookupError: No such establishment for the tenant, or it has no REP.
        AejIncomplete: An employee with punches in the period has no type 5 record (no name)
            on the establishment's REPs, or no work schedule in force on a day they punched.
    """
    ensure_schema(conn)  # the work schedule tables arrived with schema version 3
    with conn.cursor() as cur:
        rows = _read(cur, tenant, establishment, start, end)
    cpfs = sorted({p.cpf for p in rows.punches})
    codes, problems = _day_codes(conn, tenant, rows.punches, end)
    unnamed = [
        f"CPF {c} has no type 5 record (tornado ponto add-employee)" for c in cpfs if c not in rows.names
    ]
    if unnamed or problems:
        raise _incomplete(unnamed + problems)
    vinculos = {cpf: number for number, cpf in enumerate(cpfs, 1)}
    rep_numbers = {rep[0]: number for number, rep in enumerate(rows.reps, 1)}
    marks = treat(rows.punches, vinculos=vinculos, reps=rep_numbers, codes=codes)
    used = sorted({m.schedule for m in marks if m.schedule})
    schedules = load_work_schedules(conn, tenant, used)
    header = AejHeader(
        employer=rows.employer,
        start=start,
        end=end,
        generated_at=generated_at.astimezone(ZoneInfo(rows.zone)),
    )
    aej = Aej(
        header=header,
        reps=[AejRep(rep_numbers[rep_id], inpi) for rep_id, inpi, *_ in rows.reps],
        vinculos=[AejVinculo(vinculos[c], c, rows.names[c]) for c in cpfs],
        schedules=[schedules[code] for code in used],
        marcacoes=marks,
        ptrp=ptrp_of(rows.reps[0][2], rows.reps[0][3]),
    )
    return AejSource(aej, tenant, all(rep[4] for rep in rows.reps))


def ptrp_of(developer_type: int, developer_id: str) -> Ptrp:
    """Record 08: this program, and the REP-P developer's CNPJ/CPF (as the AFD's header writes it)."""
    return Ptrp(
        name=PTRP_NAME,
        version=__version__,
        developer_type=developer_type,
        developer_id=developer_id,
        developer_name=PTRP_DEVELOPER_NAME,
        email=PTRP_DEVELOPER_EMAIL,
    )
