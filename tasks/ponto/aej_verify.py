"""Checking an AEJ file: each record's fields, the record order, references, the period, counts, signature.

A 05 record must name a vínculo declared in 03 and a REP declared in 02 (an original ``O`` must
name one), and its work schedule code, required on a journey's first entry, must be declared in a
04 record; every date falls within the header's period. Layout versions ``001`` and ``002`` are
both accepted (implementations disagree; see :mod:`.aej`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from .aej import COUNTED_TYPES, FIELD_COUNTS, MARK_KINDS, MARK_SOURCES, ORIGINAL
from .afd import SIGNATURE_LINE
from .identity import cpf_problem, employer_id_problem
from .rep_signer import icp_brasil_problem
from .signing import SignatureInvalid, verify_detached
from .verify import FileReport, parse_dh, split_lines
from .work_schedule import CODE_PATTERN

LAYOUT_VERSIONS = frozenset({"001", "002"})
_HHMM = re.compile(r"^([01]\d|2[0-3])[0-5]\d$")
_ID = re.compile(r"^[1-9]\d{0,8}$")
_ORDER = (*COUNTED_TYPES, "99")


@dataclass
class AejReport(FileReport):
    """What :func:`verify_aej` found (see :class:`~.verify.FileReport`).

    Attributes:
        counts: Records of each type.
        reps, vinculos, schedules: The ids and codes declared by the 02, 03 and 04 records.
    """

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED_TYPES, 0))
    reps: set[str] = field(default_factory=set)
    vinculos: set[str] = field(default_factory=set)
    schedules: set[str] = field(default_factory=set)


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def _in_period(line: int, day: date | None, report: AejReport, what: str) -> None:
    if day is None:
        report.add(line, f"{what} is not a valid date")
    elif report.period is not None and not report.period[0] <= day <= report.period[1]:
        report.add(line, f"{what} {day} is outside the period {report.period[0]}..{report.period[1]}")


def _text(line: int, value: str, size: int, what: str, report: AejReport) -> None:
    if not 1 <= len(value) <= size or value != value.strip():
        report.add(line, f"{what} must have 1 to {size} characters, no edge spaces")


def _id(line: int, value: str, what: str, known: set[str], report: AejReport) -> None:
    if not _ID.match(value):
        report.add(line, f"{what} {value!r} is not a number of 1 to 9 digits")
    elif value in known:
        report.add(line, f"{what} {value} is declared twice")
    known.add(value)


def _header(n: int, f: list[str], report: AejReport) -> None:
    problem = employer_id_problem(int(f[1]) if f[1] in ("1", "2") else 0, f[2])
    if problem:
        report.add(n, f"employer id {problem}")
    if (f[3] and not (len(f[3]) == 14 and f[3].isdigit())) or (
        f[4] and not (len(f[4]) == 12 and f[4].isdigit())
    ):
        report.add(n, "CAEPF must have 14 digits and CNO 12, or be empty")
    _text(n, f[5], 150, "razão social", report)
    start, end = _date(f[6]), _date(f[7])
    if start is None or end is None or end < start:
        report.add(n, f"period {f[6]!r}..{f[7]!r} is not two dates in order")
    else:
        report.period = (start, end)
    if parse_dh(f[8]) is None:
        report.add(n, f"generation DH {f[8]!r} is malformed")
    if f[9] not in LAYOUT_VERSIONS:
        report.add(n, f"layout version {f[9]!r} is not one of {sorted(LAYOUT_VERSIONS)}")


def _rep(n: int, f: list[str], report: AejReport) -> None:
    _id(n, f[1], "idRepAej", report.reps, report)
    if f[2] not in ("1", "2", "3"):
        report.add(n, f"tpRep {f[2]!r} is not 1, 2 or 3")
    if not (len(f[3]) == 17 and f[3].isdigit()):
        report.add(n, f"nrRep {f[3]!r} must have 17 digits")


def _vinculo(n: int, f: list[str], report: AejReport) -> None:
    _id(n, f[1], "idtVinculoAej", report.vinculos, report)
    if cpf_problem(f[2]) or len(f[2]) != 11:
        report.add(n, f"CPF {f[2]!r} is not valid")
    _text(n, f[3], 150, "employee name", report)


def _schedule(n: int, f: list[str], report: AejReport) -> None:
    if not CODE_PATTERN.match(f[1]) or f[1] in report.schedules:
        report.add(n, f"work schedule code {f[1]!r} is malformed or declared twice")
    report.schedules.add(f[1])
    if not (f[2].isdigit() and 1 <= len(f[2]) <= 12 and int(f[2]) > 0):
        report.add(n, f"durJornada {f[2]!r} is not a number of minutes")
    if len(f) < 5 or len(f) % 2 == 0 or not all(_HHMM.match(t) for t in f[3:]):
        report.add(n, "entry and exit times must come in hhmm pairs, at least one")


def _known(n: int, value: str, known: set[str], what: str, report: AejReport) -> None:
    if value not in known:
        report.add(n, f"{what} {value!r} is not declared")


def _marcacao(n: int, f: list[str], report: AejReport) -> None:
    _known(n, f[1], report.vinculos, "vínculo", report)
    moment = parse_dh(f[2])
    _in_period(n, moment.date() if moment else None, report, f"marcação {f[2]!r}")
    if f[3] or f[6] == ORIGINAL:
        _known(n, f[3], report.reps, "REP", report)
    if f[4] not in MARK_KINDS or f[6] not in MARK_SOURCES:
        report.add(n, f"tpMarc {f[4]!r} / fonteMarc {f[6]!r} is not E, S or D / O, I, P, X or T")
    if not (len(f[5]) == 3 and f[5].isdigit()):
        report.add(n, f"seqEntSaida {f[5]!r} must have three digits")
    if f[7]:
        _known(n, f[7], report.schedules, "work schedule", report)
    elif f[4] == "E" and f[5] == "001":
        report.add(n, "the journey's first entry names no work schedule")
    if (f[4] == "D" or f[6] == "I") and not f[8].strip():
        report.add(n, "a disregarded or included marcação needs a reason")
    if len(f[8]) > 150:
        report.add(n, "motivo is longer than 150 characters")


def _matricula(n: int, f: list[str], report: AejReport) -> None:
    _known(n, f[1], report.vinculos, "vínculo", report)
    _text(n, f[2], 30, "eSocial matrícula", report)


def _absence(n: int, f: list[str], report: AejReport) -> None:
    _known(n, f[1], report.vinculos, "vínculo", report)
    if f[2] not in ("1", "2", "3", "4"):
        report.add(n, f"tipoAusenOuComp {f[2]!r} is not 1 to 4")
    _in_period(n, _date(f[3]), report, f"date {f[3]!r}")
    if f[2] == "3" and not (f[4].isdigit() and f[5] in ("1", "2")):
        report.add(n, "an hour-bank movement needs its minutes and tipoMovBH 1 or 2")


def _ptrp(n: int, f: list[str], report: AejReport) -> None:
    _text(n, f[1], 150, "program name", report)
    _text(n, f[2], 8, "program version", report)
    problem = employer_id_problem(int(f[3]) if f[3] in ("1", "2") else 0, f[4])
    if problem:
        report.add(n, f"developer id {problem}")
    _text(n, f[5], 150, "developer name", report)
    _text(n, f[6], 50, "developer e-mail", report)
    if "@" not in f[6]:
        report.add(n, f"developer e-mail {f[6]!r} has no @")


def _trailer(n: int, f: list[str], report: AejReport) -> None:
    for kind, written in zip(COUNTED_TYPES, f[1:], strict=True):
        if not written.isdigit() or int(written) != report.counts[kind]:
            report.add(n, f"trailer counts {written!r} records {kind}, the file has {report.counts[kind]}")


_CHECKS: dict[str, Callable[[int, list[str], AejReport], None]] = {
    "01": _header,
    "02": _rep,
    "03": _vinculo,
    "04": _schedule,
    "05": _marcacao,
    "06": _matricula,
    "07": _absence,
    "08": _ptrp,
    "99": _trailer,
}


def _check_order(kinds: list[str], report: AejReport) -> None:
    if kinds[:1] != ["01"] or kinds.count("01") != 1:
        report.add(1, "the file must start with one 01 header")
    if kinds[-1:] != ["99"] or kinds.count("99") != 1:
        report.add(len(kinds), "the last record before the signature must be the one 99 trailer")
    if kinds.count("08") != 1 or not kinds.count("02"):
        report.add(0, "an AEJ has one 08 record and at least one 02")
    ranks = [_ORDER.index(k) for k in kinds if k in _ORDER]
    if ranks != sorted(ranks):
        report.add(0, "records are out of order (01, 02, 03, 04, 05, 06, 07, 08, 99)")


def _check_record(number: int, line: str, report: AejReport) -> str | None:
    fields = line.split("|")
    kind = fields[0]
    expected = FIELD_COUNTS.get(kind)
    if kind not in _CHECKS:
        report.add(number, f"unknown record type {kind!r}")
        return None
    if (expected is not None and len(fields) != expected) or (kind == "04" and len(fields) < 5):
        report.add(number, f"record {kind} must have {expected or '5 or more'} fields, not {len(fields)}")
        return kind
    _CHECKS[kind](number, fields, report)
    return kind


def verify_aej(data: bytes, p7s: bytes | None = None) -> AejReport:
    """Check an AEJ (and its detached signature when given).

    Args:
        data: The AEJ file's bytes.
        p7s: Its ``.p7s`` signature, if it is to be checked.
    """
    report = AejReport()
    lines = split_lines(data, report)
    if len(lines) < 4 or lines[-1] != SIGNATURE_LINE:
        report.add(len(lines), "the last line must be ASSINATURA_DIGITAL_EM_ARQUIVO_P7S padded to 100")
    kinds: list[str] = []
    for number, line in enumerate(lines[:-1], 1):
        kind = _check_record(number, line, report)
        if kind is not None:
            kinds.append(kind)
        if kind in report.counts:
            report.counts[kind] += 1
    _check_order(kinds, report)
    if p7s is not None:
        _check_signature(data, p7s, report)
    return report


def _check_signature(data: bytes, p7s: bytes, report: AejReport) -> None:
    try:
        report.signature = verify_detached(data, p7s)
    except SignatureInvalid as exc:
        report.add(0, f"signature: {exc}")
        return
    certificate = report.signature.certificate
    report.test_certificate = None if certificate is None else icp_brasil_problem(certificate)
    if report.test_certificate is not None:
        report.warnings.append(
            f"TEST certificate, not ICP-Brasil ({report.test_certificate}): no legal value"
        )
