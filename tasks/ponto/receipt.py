"""The comprovante de registro de ponto: what a punch's receipt says, read from the ARP ledger.

A receipt is a deterministic function of one type-7 row and the records before it on its REP:
the employer as the REP's last type-2 record before the punch registered it, the employee's name
from their last type-5 inclusion or change before it, the marcação and gravação in the
establishment's zone, the REP's INPI number and the type-7 SHA-256 hash exactly as stored
(Portaria MTP 671/2021, arts. 79-80). :class:`ReceiptFields` is that content; ``receipt_pdf``
renders and signs it, and compares a signed receipt's fields with the ledger's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from .afd_source import period_bounds

#: Names of the AFD collector codes (type-7 field 6), as the receipt prints them.
COLLECTOR_NAMES = {1: "aplicativo móvel", 2: "navegador", 3: "aplicativo desktop", 4: "dispositivo"}
#: What a receipt's embedded JSON says it is (``kind``), and its layout version.
RECEIPT_KIND = "comprovante-registro-ponto"
RECEIPT_VERSION = 1

_SELECT = """
SELECT p.punch_id::text, p.rep_id, p.nsr, p.cpf, p.marked_at, p.marked_dh, p.recorded_at, p.recorded_dh,
       p.time_zone, p.collector, p.offline, p.hash, r.inpi_number, r.registered, r.establishment_id,
       e.employer_type, e.employer_id, e.cno_caepf, e.company_name, e.work_site, emp.fields AS employer,
       who.fields AS employee
FROM ponto_punch p
JOIN ponto_rep r ON r.rep_id = p.rep_id
JOIN ponto_establishment e ON e.establishment_id = r.establishment_id
LEFT JOIN LATERAL (
    SELECT fields FROM ponto_event
    WHERE rep_id = p.rep_id AND nsr < p.nsr AND record_type = 2
    ORDER BY nsr DESC LIMIT 1
) emp ON true
LEFT JOIN LATERAL (
    SELECT fields FROM ponto_event
    WHERE rep_id = p.rep_id AND nsr < p.nsr AND record_type = 5 AND fields->>'cpf' = p.cpf
        AND fields->>'operation' IN ('I', 'A')
    ORDER BY nsr DESC LIMIT 1
) who ON true
"""

_BY_PUNCH = _SELECT + "WHERE p.tenant = %(tenant)s AND p.punch_id = %(punch)s::uuid"
_BY_EMPLOYEE = _BY_PUNCH + " AND p.cpf = %(cpf)s"
_BY_RECORD = _SELECT + "WHERE p.rep_id = %(rep)s AND p.nsr = %(nsr)s"
_BY_PERIOD = (
    _SELECT
    + "WHERE p.tenant = %(tenant)s AND p.rep_id = %(rep)s AND p.recorded_at >= %(start)s"
    + " AND p.recorded_at < %(end)s ORDER BY p.nsr"
)
_ZONE = "SELECT e.time_zone FROM ponto_rep r JOIN ponto_establishment e USING (establishment_id)"


@dataclass(frozen=True, kw_only=True)
class ReceiptFields:
    """What one punch's receipt shows (every field the regulation lists, as the ledger keeps it).

    Attributes:
        punch_id: The collector's UUID of the punch.
        nsr: Its NSR on the REP.
        rep_id: The REP.
        inpi: The REP-P's INPI registration number, as entered.
        registered: Whether that registration is real; a receipt of an unregistered REP is a test.
        employer_name: Razão social.
        employer_id_type: 1 CNPJ, 2 CPF.
        employer_id: Its digits.
        cno_caepf: CNO or CAEPF, or "".
        establishment_id: The establishment.
        site: Local de prestação de serviços.
        employee_name: As included on the REP ("" if the REP has no type-5 record of the CPF).
        cpf: The employee's 11 digits.
        marked_at: Marcação, in the establishment's zone, to the second.
        recorded_at: Gravação, likewise.
        time_zone: The establishment's IANA zone at gravação.
        collector: AFD collector code (1 mobile app ... 4 device).
        offline: Marked while the collector was offline.
        hash: The type-7 SHA-256 hash, lower-case hex.
    """

    punch_id: str
    nsr: int
    rep_id: str
    inpi: str
    registered: bool
    employer_name: str
    employer_id_type: int
    employer_id: str
    cno_caepf: str
    establishment_id: str
    site: str
    employee_name: str
    cpf: str
    marked_at: datetime
    recorded_at: datetime
    time_zone: str
    collector: int
    offline: bool
    hash: str

    @property
    def test(self) -> bool:
        """A test receipt: its REP is not registered at INPI (dev, demo, homologation)."""
        return not self.registered

    def to_json(self) -> dict[str, Any]:
        """The receipt's machine-readable content (embedded in the PDF and signed with it)."""
        return {
            "kind": RECEIPT_KIND,
            "version": RECEIPT_VERSION,
            "test": self.test,
            "punch_id": self.punch_id,
            "nsr": self.nsr,
            "employer": {
                "name": self.employer_name,
                "id_type": "CNPJ" if self.employer_id_type == 1 else "CPF",
                "id": self.employer_id,
                "cno_caepf": self.cno_caepf,
            },
            "establishment": {"id": self.establishment_id, "site": self.site},
            "employee": {"name": self.employee_name, "cpf": self.cpf},
            "marked_at": self.marked_at.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "time_zone": self.time_zone,
            "rep": {"id": self.rep_id, "inpi": self.inpi, "registered": self.registered},
            "collector": {"code": f"{self.collector:02d}", "name": collector_name(self.collector)},
            "offline": self.offline,
            "hash": self.hash,
        }


def collector_name(code: int) -> str:
    """The collector's name in Portuguese (``dispositivo`` for 5, the annex's second device code)."""
    return COLLECTOR_NAMES.get(code, "dispositivo")


def receipt_key(tenant: str, rep_id: str, nsr: int) -> str:
    """Object-store key of a punch's signed receipt: one per tenant, REP and NSR."""
    return f"ponto/receipts/{tenant}/{rep_id}/{nsr:09d}.pdf"


def _fields(row: dict[str, Any]) -> ReceiptFields:
    employer = row["employer"]
    if employer is None:  # a REP always starts with its type-2 record; the establishment, just in case
        keys = {"id_type": "employer_type", "id": "employer_id", "cno_caepf": "cno_caepf"}
        employer = {k: row[v] for k, v in keys.items()} | {
            "name": row["company_name"],
            "site": row["work_site"],
        }
    tz = ZoneInfo(row["time_zone"])
    return ReceiptFields(
        punch_id=row["punch_id"],
        nsr=int(row["nsr"]),
        rep_id=row["rep_id"],
        inpi=row["inpi_number"].strip(),
        registered=bool(row["registered"]),
        employer_name=employer["name"],
        employer_id_type=int(employer["id_type"]),
        employer_id=employer["id"],
        cno_caepf=employer.get("cno_caepf") or "",
        establishment_id=row["establishment_id"],
        site=employer["site"],
        employee_name=(row["employee"] or {}).get("name", ""),
        cpf=row["cpf"].strip(),
        marked_at=_local(row["marked_at"], row["marked_dh"], tz),
        recorded_at=_local(row["recorded_at"], row["recorded_dh"], tz),
        time_zone=row["time_zone"],
        collector=int(row["collector"]),
        offline=bool(row["offline"]),
        hash=row["hash"].strip(),
    )


def _local(moment: datetime, dh: str | None, zone: ZoneInfo) -> datetime:
    """``moment`` to the second, at the offset of its DH as the ledger wrote and hashed it, else in ``zone``.

    The DH is kept since schema 3, so a later time-zone database cannot make a receipt disagree
    with its AFD line.
    """
    if dh:
        minutes = int(dh[-4:-2]) * 60 + int(dh[-2:])
        offset = timezone(timedelta(minutes=-minutes if dh[-5] == "-" else minutes))
        return moment.astimezone(offset).replace(microsecond=0)
    return moment.astimezone(zone).replace(microsecond=0)


def _ready(cur: Any) -> bool:
    cur.execute("SELECT to_regclass('ponto_punch') IS NOT NULL")
    row = cur.fetchone()
    return bool(row and row[0])


def _one(conn: Any, sql: str, params: dict[str, Any]) -> ReceiptFields | None:
    with conn.cursor() as cur:
        if not _ready(cur):
            return None
        cur.execute(sql, params)
        row = cur.fetchone()
        names = [d[0] for d in cur.description]
    return None if row is None else _fields(dict(zip(names, row, strict=True)))


def receipt_of_punch(
    conn: Any, tenant: str, punch_id: str, *, cpf: str | None = None
) -> ReceiptFields | None:
    """The receipt of ``tenant``'s punch ``punch_id`` (a UUID), or ``None`` if there is none.

    Args:
        conn: DB-API connection to the ERP database.
        tenant: Whose punch.
        punch_id: The collector's UUID.
        cpf: Only if the punch is this employee's (the employee's own access); else ``None``.
    """
    params = {"tenant": tenant, "punch": punch_id, "cpf": cpf}
    return _one(conn, _BY_PUNCH if cpf is None else _BY_EMPLOYEE, params)


def receipt_of_record(conn: Any, rep_id: str, nsr: int) -> ReceiptFields | None:
    """The receipt of the type-7 record ``nsr`` of REP ``rep_id`` (REP ids are unique), or ``None``."""
    return _one(conn, _BY_RECORD, {"rep": rep_id, "nsr": nsr})


def receipts_of_period(
    conn: Any, tenant: str, rep_id: str, start: date, end: date
) -> Iterator[ReceiptFields]:
    """The receipts of a REP's punches whose gravação falls in ``[start, end]`` (local dates), by NSR.

    Raises:
        LookupError: ``tenant`` has no REP ``rep_id``.
    """
    with conn.cursor() as cur:
        cur.execute(_ZONE + " WHERE r.rep_id = %s AND r.tenant = %s", (rep_id, tenant))
        row = cur.fetchone()
        if row is None:
            raise LookupError(f"no REP {rep_id!r} for this tenant")
        first, after = period_bounds(start, end, row[0])
        cur.execute(_BY_PERIOD, {"tenant": tenant, "rep": rep_id, "start": first, "end": after})
        rows = cur.fetchall()
        names = [d[0] for d in cur.description]
    return (_fields(dict(zip(names, r, strict=True))) for r in rows)


def field_differences(found: dict[str, Any], expected: dict[str, Any], path: str = "") -> list[str]:
    """Where a receipt's content differs from what it should say (``"nsr: 4 != 3"``), depth first."""
    problems: list[str] = []
    for name in sorted(set(found) | set(expected)):
        here = f"{path}{name}"
        mine, theirs = found.get(name), expected.get(name)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            problems.extend(field_differences(mine, theirs, here + "."))
        elif mine != theirs:
            problems.append(f"{here}: receipt says {mine!r}, the ledger {theirs!r}")
    return problems
