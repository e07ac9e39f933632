"""The AEJ (Arquivo Eletrônico de Jornada) of Portaria MTP 671/2021: record layout and rendering.

Pure functions, no I/O. The AEJ is the treatment program's (PTRP) file: the employer and period
(``01``), the REPs (``02``), the vínculos (``03``), the contractual work schedules (``04``), the
marcações with their direction and pair number (``05``), eSocial matrículas (``06``), absences and
hour bank (``07``), the PTRP (``08``) and a trailer counting each type (``99``), then the signature
marker line and a detached ``.p7s``. Fields are separated by ``|`` (none after the last one), text
is ISO-8859-1 with CRLF line ends. Choices where sources disagree or say nothing, marked
[verify] (to confirm against the gov.br "Leiaute do AEJ"; see docs/ponto.md):

* layout version ``002`` in the header [verify: implementations write ``001`` or ``002``];
* header CAEPF (14 digits) and CNO (12 digits) are two fields, either filled from the
  establishment's one CNO/CAEPF by its length;
* ``nrRep`` is the INPI number's digits, left-padded with zeros to 17 [verify];
* ``seqEntSaida`` is written with three digits (``001``) [verify: some write ``1``];
* a ``04`` record has as many entry/exit pairs as the journey (at least one) [verify];
* DH fields are the AFD's: ``AAAA-MM-ddThh:mm:00ZZZZZ``, seconds always ``00``;
* the PTRP's developer name and e-mail (record ``08``) are this program's constants [verify
  against the INPI registration]; its CNPJ/CPF is the REP-P developer's, as in the AFD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from .afd import CRLF, ENCODING, SIGNATURE_LINE, Employer, format_dh
from .identity import digits_only
from .work_schedule import WorkSchedule

#: Layout version written in the header (field 10) [verify].
LAYOUT_VERSION = "002"
#: ``tpRep`` of a REP-P (1 REP-C, 2 REP-A).
REP_P = 3
#: Number of fields of each record type (``04``: three plus two per entry/exit pair).
FIELD_COUNTS = {"01": 10, "02": 4, "03": 4, "05": 9, "06": 3, "07": 6, "08": 7, "99": 9}
#: The record types the trailer counts, in file order.
COUNTED_TYPES = ("01", "02", "03", "04", "05", "06", "07", "08")
#: ``tpMarc``: entry, exit, disregarded.
MARK_KINDS = frozenset("ESD")
#: ``fonteMarc``: original (from the REP), included, pre-assigned, exception, other.
MARK_SOURCES = frozenset("OIPXT")
ORIGINAL = "O"
#: The PTRP (record 08): this program [verify the developer's name and e-mail].
PTRP_NAME = "Tornado Ponto"
PTRP_DEVELOPER_NAME = "Tornado Ponto REP-P"
PTRP_DEVELOPER_EMAIL = "ponto@tornado.invalid"


@dataclass(frozen=True, kw_only=True)
class AejHeader:
    """Record 01: the employer and the period (local dates, inclusive)."""

    employer: Employer
    start: date
    end: date
    generated_at: datetime


@dataclass(frozen=True)
class AejRep:
    """Record 02: a REP the file's marcações come from (``id`` is its ``idRepAej``)."""

    id: int
    inpi: str
    kind: int = REP_P


@dataclass(frozen=True)
class Vinculo:
    """Record 03: an employee (``id`` is its ``idtVinculoAej``)."""

    id: int
    cpf: str
    name: str


@dataclass(frozen=True, kw_only=True)
class Marcacao:
    """Record 05: one treated marcação.

    Attributes:
        vinculo: The employee's ``idtVinculoAej``.
        marked_at: Marcação, aware, in the establishment's zone.
        rep: The REP's ``idRepAej`` (``None`` for a marcação that did not come from a REP).
        kind: ``E`` entry, ``S`` exit, ``D`` disregarded.
        seq: The entry/exit pair's number in the journey (1, 2, ...).
        source: ``O`` original, ``I`` included, ``P`` pre-assigned, ``X`` exception, ``T`` other.
        schedule: The work schedule's code (required on the journey's first entry).
        reason: Why (required for ``D`` and ``I``).
    """

    vinculo: int
    marked_at: datetime
    rep: int | None
    kind: str
    seq: int
    source: str = ORIGINAL
    schedule: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Ptrp:
    """Record 08: the treatment program and its developer."""

    name: str
    version: str
    developer_type: int
    developer_id: str
    developer_name: str
    email: str


@dataclass(frozen=True, kw_only=True)
class Aej:
    """Everything an AEJ says, in file order."""

    header: AejHeader
    reps: Sequence[AejRep]
    vinculos: Sequence[Vinculo]
    schedules: Sequence[WorkSchedule]
    marcacoes: Sequence[Marcacao]
    ptrp: Ptrp


def text(value: str, size: int) -> str:
    """A free-text field: no ``|`` nor line breaks, spaces collapsed, ISO-8859-1, at most ``size``."""
    clean = " ".join(value.replace("|", " ").split())
    return clean.encode(ENCODING, errors="replace").decode(ENCODING)[:size]


def rep_number(inpi: str) -> str:
    """``nrRep``: the registration's digits, zero-padded to 17 [verify].

    Raises:
        ValueError: No digits, or more than 17.
    """
    digits = "".join(c for c in inpi if c.isdigit())
    if not 1 <= len(digits) <= 17:
        raise ValueError(f"REP number {inpi!r} must have 1 to 17 digits")
    return digits.zfill(17)


def _cno_caepf(value: str) -> tuple[str, str]:
    digits = digits_only(value)
    return (digits if len(digits) == 14 else "", digits if len(digits) == 12 else "")


def header_line(header: AejHeader) -> str:
    """Record 01."""
    employer = header.employer
    caepf, cno = _cno_caepf(employer.cno_caepf)
    return "|".join(
        [
            "01",
            str(employer.id_type),
            digits_only(employer.id),
            caepf,
            cno,
            text(employer.name, 150),
            header.start.isoformat(),
            header.end.isoformat(),
            format_dh(header.generated_at),
            LAYOUT_VERSION,
        ]
    )


def schedule_line(schedule: WorkSchedule) -> str:
    """Record 04: code, duration in minutes, then each entry and exit as ``hhmm``."""
    return "|".join(["04", schedule.code, str(schedule.duration), *schedule.hhmm()])


def marcacao_line(mark: Marcacao) -> str:
    """Record 05.

    Raises:
        ValueError: An unknown kind or source, a pair number outside 1..999, a first entry
            without its work schedule, or a disregarded or included marcação without a reason.
    """
    if mark.kind not in MARK_KINDS or mark.source not in MARK_SOURCES or not 0 < mark.seq < 1000:
        raise ValueError(f"marcação {mark.kind}/{mark.source}/{mark.seq} is not E, S or D / O, I, P, X or T")
    if mark.kind == "E" and mark.seq == 1 and not mark.schedule:
        raise ValueError("the journey's first entry needs its work schedule code")
    if (mark.kind == "D" or mark.source == "I") and not mark.reason.strip():
        raise ValueError("a disregarded or included marcação needs a reason")
    return "|".join(
        [
            "05",
            str(mark.vinculo),
            format_dh(mark.marked_at),
            "" if mark.rep is None else str(mark.rep),
            mark.kind,
            f"{mark.seq:03d}",
            mark.source,
            mark.schedule,
            text(mark.reason, 150),
        ]
    )


def ptrp_line(ptrp: Ptrp) -> str:
    """Record 08."""
    return "|".join(
        [
            "08",
            text(ptrp.name, 150),
            text(ptrp.version, 8),
            str(ptrp.developer_type),
            digits_only(ptrp.developer_id),
            text(ptrp.developer_name, 150),
            text(ptrp.email, 50),
        ]
    )


def _check_references(aej: Aej) -> None:
    vinculos, reps = {v.id for v in aej.vinculos}, {r.id for r in aej.reps}
    codes = {s.code for s in aej.schedules}
    for mark in aej.marcacoes:
        if mark.vinculo not in vinculos or (mark.rep is not None and mark.rep not in reps):
            raise ValueError(f"marcação of vínculo {mark.vinculo} / REP {mark.rep}: not declared in 03 / 02")
        if mark.schedule and mark.schedule not in codes:
            raise ValueError(f"work schedule {mark.schedule!r} is not declared in a 04 record")
        if not aej.header.start <= mark.marked_at.date() <= aej.header.end:
            raise ValueError(f"marcação {mark.marked_at.isoformat()} is outside the period")


def aej_lines(aej: Aej) -> list[str]:
    """The records of the file, in order, trailer included (not the signature line).

    Raises:
        ValueError: A marcação naming an undeclared vínculo, REP or work schedule, or outside
            the period, or a record the layout does not allow (see :func:`marcacao_line`).
    """
    _check_references(aej)
    records = [header_line(aej.header)]
    records += ["|".join(["02", str(r.id), str(r.kind), rep_number(r.inpi)]) for r in aej.reps]
    records += ["|".join(["03", str(v.id), digits_only(v.cpf), text(v.name, 150)]) for v in aej.vinculos]
    records += [schedule_line(s) for s in aej.schedules]
    records += [marcacao_line(m) for m in aej.marcacoes]
    records.append(ptrp_line(aej.ptrp))
    kinds = [line[:2] for line in records]
    records.append("|".join(["99", *(str(kinds.count(kind)) for kind in COUNTED_TYPES)]))
    return records


def render_aej(aej: Aej) -> bytes:
    """The whole AEJ: records, trailer and the signature marker, ISO-8859-1 with CRLF."""
    return "".join(line + CRLF for line in [*aej_lines(aej), SIGNATURE_LINE]).encode(ENCODING)


def aej_file_name(employer_id: str, start: date, end: date) -> str:
    """``AEJ_<employer CNPJ/CPF>_<start>_<end>.txt`` [verify: the layout names no file]."""
    return f"AEJ_{digits_only(employer_id)}_{start.isoformat()}_{end.isoformat()}.txt"
