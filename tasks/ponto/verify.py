"""Checking an AFD file: layout, CRCs, NSR order, the type-7 hash chain, counts and the signature."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from .afd import (
    CRC_TYPES,
    CRLF,
    ENCODING,
    EVENT_CODES,
    LINE_LENGTHS,
    PUNCH_FIELDS_LENGTH,
    SIGNATURE_LINE,
    chain_hash,
    crc16_kermit,
)
from .identity import cpf_problem
from .signing import SignatureInfo, SignatureInvalid, verify_detached

_DH = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00[+-]\d{4}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
#: Where the DH fields of each record type start (0-based).
_DH_AT = {"2": (10,), "4": (10, 34), "5": (10,), "6": (10,), "7": (10, 46)}


@dataclass
class Report:
    """What :func:`verify_afd` found."""

    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys("234567", 0))
    first_nsr: int | None = None
    last_nsr: int | None = None
    chain_checked: int = 0
    chain_anchor: str | None = None
    signature: SignatureInfo | None = None

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def add(self, line_no: int, message: str) -> None:
        """Note a problem of line ``line_no`` (1-based; 0 for the whole file)."""
        self.problems.append(f"line {line_no}: {message}" if line_no else message)


def _valid_dh(text: str) -> bool:
    if not _DH.match(text):
        return False
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return False
    return True


def _split(data: bytes, report: Report) -> list[str]:
    text = data.decode(ENCODING)
    if not text.endswith(CRLF):
        report.add(0, "the file does not end with CRLF")
    lines = text.split(CRLF)
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if "\r" in line or "\n" in line:
            report.add(number, "stray CR or LF (lines must end with CRLF)")
        if not line.strip():
            report.add(number, "blank line")
    return lines


def _check_crc(number: int, line: str, report: Report) -> None:
    expected = f"{crc16_kermit(line[:-4].encode(ENCODING)):04X}"
    if line[-4:] != expected:
        report.add(number, f"CRC {line[-4:]!r} should be {expected}")


def _check_header(line: str, report: Report) -> None:
    if len(line) != LINE_LENGTHS["1"] or line[:10] != "0000000001":
        report.add(1, f"not a type-1 header of {LINE_LENGTHS['1']} characters")
        return
    _check_crc(1, line, report)
    try:
        start, end = date.fromisoformat(line[206:216]), date.fromisoformat(line[216:226])
    except ValueError:
        report.add(1, "period dates are not AAAA-MM-dd")
        return
    if end < start:
        report.add(1, "the period ends before it starts")
    if not _valid_dh(line[226:250]):
        report.add(1, f"generation DH {line[226:250]!r} is malformed")


def _check_record(number: int, line: str, report: Report) -> str | None:
    kind = line[9:10]
    if kind not in _DH_AT and kind != "3":
        report.add(number, f"unknown record type {kind!r}")
        return None
    if len(line) != LINE_LENGTHS[kind]:
        report.add(number, f"type {kind} must have {LINE_LENGTHS[kind]} characters, not {len(line)}")
        return None
    if kind in CRC_TYPES:
        _check_crc(number, line, report)
    for at in _DH_AT.get(kind, (10,)):
        if not _valid_dh(line[at : at + 24]):
            report.add(number, f"DH {line[at : at + 24]!r} is malformed")
    cpf = {"3": line[34:46], "5": line[35:47], "7": line[34:46]}.get(kind)
    if cpf is not None and (cpf[11:] != " " or cpf_problem(cpf[:11])):
        report.add(number, f"CPF {cpf.strip()!r} is not valid")
    if kind == "7" and (line[72] not in "01" or not _HASH.match(line[73:])):
        report.add(number, "type-7 flag or hash field is malformed")
    if kind == "6" and line[34:36] not in EVENT_CODES:
        codes = "/".join(sorted(EVENT_CODES))
        report.add(number, f"type-6 event code {line[34:36]!r} is not a REP-P event ({codes})")
    return kind


def _check_nsr(number: int, line: str, report: Report) -> None:
    if not line[:9].isdigit():
        report.add(number, f"NSR {line[:9]!r} is not numeric")
        return
    nsr = int(line[:9])
    if report.last_nsr is not None and nsr != report.last_nsr + 1:
        report.add(number, f"NSR {nsr} follows {report.last_nsr} (must increase by 1)")
    report.first_nsr = nsr if report.first_nsr is None else report.first_nsr
    report.last_nsr = nsr


def _check_chain(number: int, line: str, previous: str | None, report: Report) -> str:
    digest = line[PUNCH_FIELDS_LENGTH:]
    if previous is None:
        report.chain_anchor = digest  # hashed on a record before this file: cannot be recomputed here
        return digest
    expected = chain_hash(line[:PUNCH_FIELDS_LENGTH], previous)
    report.chain_checked += 1
    if digest != expected:
        report.add(number, "type-7 hash does not match its fields and the previous hash (altered record)")
    return digest


def _check_trailer(number: int, line: str, report: Report) -> None:
    if len(line) != LINE_LENGTHS["9"] or not line.startswith("999999999") or not line.endswith("9"):
        report.add(number, f"not a type-9 trailer of {LINE_LENGTHS['9']} characters")
        return
    for index, kind in enumerate("234567"):
        written = line[9 + 9 * index : 18 + 9 * index]
        if not written.isdigit() or int(written) != report.counts[kind]:
            report.add(
                number,
                f"trailer counts {written!r} records of type {kind}, the file has {report.counts[kind]}",
            )


def verify_afd(data: bytes, p7s: bytes | None = None, *, previous_hash: str | None = None) -> Report:
    """Check an AFD (and its detached signature when given).

    Args:
        data: The AFD file's bytes.
        p7s: Its ``.p7s`` signature, if it is to be checked.
        previous_hash: The type-7 hash before the file's first punch, if known; without
            it the first punch of a file that does not start at NSR 1 anchors the chain.
    """
    report = Report()
    lines = _split(data, report)
    if len(lines) < 3:
        report.add(0, "an AFD needs a header, a trailer and the signature line")
        return report
    _check_header(lines[0], report)
    if lines[-1] != SIGNATURE_LINE:
        report.add(len(lines), "the last line must be ASSINATURA_DIGITAL_EM_ARQUIVO_P7S padded to 100")
    previous = previous_hash
    for number, line in enumerate(lines[1:-2], 2):
        _check_nsr(number, line, report)
        kind = _check_record(number, line, report)
        if kind is None:
            continue
        report.counts[kind] += 1
        if kind == "7":
            if previous is None and report.first_nsr == 1:
                previous = ""  # the REP's first record: the chain starts empty
            previous = _check_chain(number, line, previous, report)
    _check_trailer(len(lines) - 1, lines[-2], report)
    if p7s is not None:
        try:
            report.signature = verify_detached(data, p7s)
        except SignatureInvalid as exc:
            report.add(0, f"signature: {exc}")
    return report
