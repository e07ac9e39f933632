"""Registering establishments, REPs and employees in the ERP database (setup, not the hot path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .identity import cpf_problem, digits_only, employer_id_problem, normalize_cpf, normalize_inpi
from .ledger import append_events
from .schema import ensure_schema


@dataclass(frozen=True, kw_only=True)
class Establishment:
    """An employer's workplace: the AFD's employer data and the IANA zone of its punches."""

    establishment_id: str
    tenant: str
    employer_type: int
    employer_id: str
    company_name: str
    work_site: str
    time_zone: str
    cno_caepf: str = ""


#: The INPI number of the demo REP: not a registration (no check digit), so it can never be registered.
DEMO_INPI_NUMBER = "BR512021000001"


@dataclass(frozen=True, kw_only=True)
class Rep:
    """A REP-P installation of an establishment (its NSR sequence and hash chain).

    Attributes:
        inpi_number: The REP-P's registration at INPI as written in the AFD (17 characters at most).
        registered: Production: the number is a valid INPI software registration and the REP's
            files are signed with the developer's ICP-Brasil certificate. Otherwise (demo,
            development, homologation) its signatures are test ones.
    """

    rep_id: str
    establishment_id: str
    inpi_number: str
    developer_type: int
    developer_id: str
    responsible_cpf: str
    registered: bool = False


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name like America/Sao_Paulo)") from exc


def add_establishment(conn: Any, est: Establishment) -> None:
    """Create an establishment (idempotent for the same id).

    Raises:
        ValueError: Invalid employer id or time zone.
    """
    problem = employer_id_problem(est.employer_type, est.employer_id)
    if problem:
        raise ValueError(f"employer id {problem}")
    _check_zone(est.time_zone)
    ensure_schema(conn)
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ponto_establishment (establishment_id, tenant, employer_type, employer_id,"
            " cno_caepf, company_name, work_site, time_zone) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (establishment_id) DO NOTHING",
            (
                est.establishment_id,
                est.tenant,
                est.employer_type,
                digits_only(est.employer_id),
                digits_only(est.cno_caepf),
                est.company_name,
                est.work_site,
                est.time_zone,
            ),
        )


def add_rep(conn: Any, rep: Rep) -> bool:
    """Create a REP with its counter, and record the employer on it (type 2, NSR 1).

    Returns:
        True if created, False if it existed already.

    Raises:
        ValueError: Invalid responsible CPF or developer id, an INPI number longer than its field,
            or a REP said registered whose number is not a valid INPI registration.
        LookupError: The establishment does not exist.
    """
    normalize_cpf(rep.responsible_cpf)
    problem = employer_id_problem(rep.developer_type, rep.developer_id)
    if problem:
        raise ValueError(f"developer id {problem}")
    inpi = normalize_inpi(rep.inpi_number) if rep.registered else rep.inpi_number.strip()
    if not 0 < len(inpi) <= 17:
        raise ValueError("the INPI number must have 1 to 17 characters (AFD header field 7)")
    ensure_schema(conn)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT tenant, employer_type, employer_id, cno_caepf, company_name, work_site"
            " FROM ponto_establishment WHERE establishment_id = %s",
            (rep.establishment_id,),
        )
        est = cur.fetchone()
        if est is None:
            raise LookupError(f"no establishment {rep.establishment_id!r}")
        cur.execute(
            "INSERT INTO ponto_rep (rep_id, tenant, establishment_id, inpi_number, developer_type,"
            " developer_id, registered) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (rep_id) DO NOTHING RETURNING 1",
            (
                rep.rep_id,
                est[0],
                rep.establishment_id,
                inpi,
                rep.developer_type,
                digits_only(rep.developer_id),
                rep.registered,
            ),
        )
        if cur.fetchone() is None:
            return False
        cur.execute("INSERT INTO ponto_rep_counter (rep_id) VALUES (%s)", (rep.rep_id,))
    employer = {
        "responsible_cpf": digits_only(rep.responsible_cpf),
        "id_type": est[1],
        "id": est[2],
        "cno_caepf": est[3],
        "name": est[4],
        "site": est[5],
    }
    append_events(conn, rep.rep_id, [(2, employer)])
    return True


def add_employee(conn: Any, *, rep_id: str, cpf: str, name: str, responsible_cpf: str) -> int:
    """Include an employee on a REP (type 5, operation ``I``); returns its NSR.

    Raises:
        ValueError: Invalid CPF.
        LookupError: The REP does not exist.
    """
    for label, value in (("employee", cpf), ("responsible", responsible_cpf)):
        problem = cpf_problem(value)
        if problem:
            raise ValueError(f"{label} CPF {problem}")
    fields = {
        "operation": "I",
        "cpf": digits_only(cpf),
        "name": name,
        "responsible_cpf": digits_only(responsible_cpf),
    }
    return append_events(conn, rep_id, [(5, fields)])[0]


def add_demo_establishment(
    conn: Any,
    *,
    tenant: str,
    reps: int,
    time_zone: str = "America/Sao_Paulo",
    employee_cpf: str | None = None,
) -> list[str]:
    """One establishment of ``tenant`` with ``reps`` REPs (tests, benchmarks, demos); returns the REP ids.

    The REPs are not registered at INPI (their number, :data:`DEMO_INPI_NUMBER`, is no registration):
    what they sign is a test signature.

    Args:
        conn: DB-API connection to the ERP database.
        tenant: The tenant owning them.
        reps: How many REPs.
        time_zone: The establishment's IANA zone.
        employee_cpf: Include this employee on every REP (type 5), if given.
    """
    establishment = f"{tenant}-est"
    add_establishment(
        conn,
        Establishment(
            establishment_id=establishment,
            tenant=tenant,
            employer_type=1,
            employer_id="11222333000181",
            company_name="ACME Indústria LTDA",
            work_site="Av. Paulista, 1000",
            time_zone=time_zone,
        ),
    )
    rep_ids = [f"{tenant}-rep{n:02d}" for n in range(reps)]
    for rep in rep_ids:
        add_rep(
            conn,
            Rep(
                rep_id=rep,
                establishment_id=establishment,
                inpi_number=DEMO_INPI_NUMBER,
                developer_type=1,
                developer_id="11222333000181",
                responsible_cpf="52998224725",
                registered=False,
            ),
        )
        if employee_cpf:
            add_employee(
                conn, rep_id=rep, cpf=employee_cpf, name="José da Conceição", responsible_cpf="52998224725"
            )
    return rep_ids
