"""Reading a REP's records for one period from the ERP database, ready for :func:`render_afd`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .afd import (
    ClockAdjustment,
    EmployeeRecord,
    Employer,
    EmployerRecord,
    Header,
    PunchRecord,
    Record,
    SensitiveEvent,
    records_period,
)

_REP = """
SELECT r.tenant, r.inpi_number, r.developer_type, r.developer_id, e.employer_type, e.employer_id,
       e.cno_caepf, e.company_name, e.work_site, e.time_zone, r.registered
FROM ponto_rep r JOIN ponto_establishment e ON e.establishment_id = r.establishment_id
WHERE r.rep_id = %s
"""

_EVENTS = """
SELECT nsr, record_type, recorded_at, time_zone, fields FROM ponto_event
WHERE rep_id = %(rep)s AND recorded_at >= %(start)s AND recorded_at < %(end)s
"""

_PUNCHES = """
SELECT nsr, marked_at, cpf, recorded_at, time_zone, collector, offline, hash, marked_dh, recorded_dh
FROM ponto_punch
WHERE rep_id = %(rep)s AND recorded_at >= %(start)s AND recorded_at < %(end)s
"""


@dataclass(frozen=True)
class AfdSource:
    """Everything an AFD of one REP and period is made of.

    Attributes:
        header: Type 1; its dates are those of the first and last records (the period asked
            for when there is none).
        records: Types 2 to 7, in NSR order.
        tenant: The REP's owner.
        registered: Whether the REP is registered at INPI (its files are signed for real).
    """

    header: Header
    records: list[Record]
    tenant: str
    registered: bool = False


def period_bounds(start: date, end: date, zone: str) -> tuple[datetime, datetime]:
    """``[first instant of start, first instant after end)`` in the establishment's zone."""
    tz = ZoneInfo(zone)
    return datetime.combine(start, time.min, tz), datetime.combine(end + timedelta(days=1), time.min, tz)


def load_afd_source(conn: Any, *, rep: str, start: date, end: date, generated_at: datetime) -> AfdSource:
    """The header and the records (by NSR) of ``rep`` whose gravação falls in the period.

    The period selects the records; the header states the dates of the first and last of them
    (:func:`.afd.records_period`), or the period itself when it has none.

    Raises:
        LookupError: No such REP.
    """
    with conn.cursor() as cur:
        cur.execute(_REP, (rep,))
        row = cur.fetchone()
        if row is None:
            raise LookupError(f"no REP {rep!r}")
        tenant, inpi, dev_type, dev_id, emp_type, emp_id, cno, name, site, zone, registered = row
        first, after = period_bounds(start, end, zone)
        bounds = {"rep": rep, "start": first, "end": after}
        cur.execute(_EVENTS, bounds)
        records: list[Record] = [event_record(r) for r in cur.fetchall()]
        cur.execute(_PUNCHES, bounds)
        records.extend(_punch(r) for r in cur.fetchall())
    employer = Employer(id_type=emp_type, id=emp_id, cno_caepf=cno, name=name, site=site)
    first_day, last_day = records_period(records) or (start, end)
    header = Header(
        employer=employer,
        inpi=inpi,
        start=first_day,
        end=last_day,
        generated_at=generated_at.astimezone(ZoneInfo(zone)),
        developer_type=dev_type,
        developer_id=dev_id,
    )
    return AfdSource(header, sorted(records, key=lambda r: r.nsr), str(tenant), bool(registered))


def event_record(row: Any) -> Record:
    """A ``ponto_event`` row ``(nsr, record_type, recorded_at, time_zone, fields)`` as its AFD record.

    Type 2 and 5 fields are as :mod:`.admin` writes them, type 6 ``{"code": "08", ...}``
    (:mod:`.events`), type 4 ``{"before": ISO, "adjusted": ISO, "responsible_cpf": ...}``.

    Raises:
        ValueError: A record type the AFD has no layout for here.
    """
    nsr, kind, recorded, zone, fields = row
    tz = ZoneInfo(zone)
    when = recorded.astimezone(tz)
    if kind == 2:
        return EmployerRecord(
            nsr=nsr, recorded_at=when, responsible_cpf=fields["responsible_cpf"], employer=_employer(fields)
        )
    if kind == 4:
        return ClockAdjustment(
            nsr=nsr,
            before=datetime.fromisoformat(fields["before"]).astimezone(tz),
            adjusted=datetime.fromisoformat(fields["adjusted"]).astimezone(tz),
            responsible_cpf=fields["responsible_cpf"],
        )
    if kind == 5:
        return EmployeeRecord(
            nsr=nsr,
            recorded_at=when,
            operation=fields["operation"],
            cpf=fields["cpf"],
            name=fields["name"],
            responsible_cpf=fields["responsible_cpf"],
        )
    if kind == 6:
        return SensitiveEvent(nsr=nsr, recorded_at=when, code=fields["code"])
    raise ValueError(f"NSR {nsr}: no AFD layout for a type-{kind} event record")


def _employer(fields: dict[str, Any]) -> Employer:
    return Employer(
        id_type=fields["id_type"],
        id=fields["id"],
        cno_caepf=fields["cno_caepf"],
        name=fields["name"],
        site=fields["site"],
    )


def _punch(row: Any) -> PunchRecord:
    nsr, marked, cpf, recorded, zone, collector, offline, digest, marked_dh, recorded_dh = row
    tz = ZoneInfo(zone)
    return PunchRecord(
        nsr=nsr,
        marked_at=marked.astimezone(tz),
        cpf=cpf,
        recorded_at=recorded.astimezone(tz),
        collector=collector,
        offline=offline,
        hash=digest,
        marked_dh=marked_dh or "",  # rows recorded before version 3 are rendered from their instants
        recorded_dh=recorded_dh or "",
    )
