"""Checking an AFD file: layout, CRCs, NSR order, dates, the type-7 hash chain, counts and the signature.

Beyond the layout: every record's gravação date lies in the header's period (fields 8 and 9,
the dates of the first and last records), a type-7 marcação is never after its gravação, and
the signature's certificate is reported as ICP-Brasil or as a test one, with the signature
policy it names.
"""

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
from .rep_signer import AD_RB_POLICY, icp_brasil_problem
from .signing import SignatureInfo, SignatureInvalid, verify_detached

_DH = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00[+-]\d{4}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")
#: Where the DH fields of each record type start (0-based).
_DH_AT = {"2": (10,), "4": (10, 34), "5": (10,), "6": (10,), "7": (10, 46)}
#: Where each type's gravação DH starts (type 4: the adjusted time; type 3 has none).
_RECORDED_AT = {"2": 10, "4": 34, "5": 10, "6": 10, "7": 46}


@dataclass
class FileReport:
    """What a verifier of a signed file (AFD, AEJ) found.

    Attributes:
        problems: What fails the file, each naming its line.
        signature: The detached signature's signer and policy, when one was checked.
        period: The header's dates, when readable.
        test_certificate: Why the signer's certificate is not ICP-Brasil (a test signature), if it is not.
        warnings: What does not fail the file but a reader must know (a test signature, no policy).
    """

    problems: list[str] = field(default_factory=list)
    signature: SignatureInfo | None = None
    period: tuple[date, date] | None = None
    test_certificate: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    def add(self, line_no: int, message: str) -> None:
        """Note a problem of line ``line_no`` (1-based; 0 for the whole file)."""
        self.problems.append(f"line {line_no}: {message}" if line_no else message)


@dataclass
class Report(FileReport):
    """What :func:`verify_afd` found (see :class:`FileReport`), with the AFD's counts and chain."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys("234567", 0))
    first_nsr: int | None = None
    last_nsr: int | None = None
    chain_checked: int = 0
    chain_anchor: str | None = None


def parse_dh(text: str) -> datetime | None:
    """A DH field (``AAAA-MM-ddThh:mm:00ZZZZZ``) as an aware datetime; ``None`` if it is not one."""
    if not _DH.match(text):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def _valid_dh(text: str) -> bool:
    return parse_dh(text) is not None


def split_lines(data: bytes, report: FileReport) -> list[str]:
    """The lines of an ISO-8859-1, CRLF file (AFD, AEJ); a blank line or a stray CR or LF is a problem."""
    text = data.decode(ENCODING)
    if not text.endswith(CRLF):
        report.add(0, "the file does not end with CRLF")
    lines = text.split(CRLF)
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if "\r" in line or "\n" in line or not line.strip():
            report.add(number, "blank line or stray CR/LF (lines end with CRLF)")
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
    report.period = (start, end)
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
    if kind == "7":
        _check_marcacao(number, line, report)
    _check_in_period(number, line, kind, report)
    if kind == "6" and line[34:36] not in EVENT_CODES:
        codes = "/".join(sorted(EVENT_CODES))
        report.add(number, f"type-6 event code {line[34:36]!r} is not a REP-P event ({codes})")
    return kind


def _check_marcacao(number: int, line: str, report: Report) -> None:
    marked, recorded = parse_dh(line[10:34]), parse_dh(line[46:70])
    if marked is not None and recorded is not None and marked > recorded:
        report.add(number, f"marcação {line[10:34]} is after its gravação {line[46:70]}")


def _check_in_period(number: int, line: str, kind: str, report: Report) -> None:
    at = _RECORDED_AT.get(kind)
    if at is None or report.period is None or parse_dh(line[at : at + 24]) is None:
        return
    day = date.fromisoformat(line[at : at + 10])
    start, end = report.period
    if not start <= day <= end:
        report.add(number, f"recorded on {day}, outside the header's period {start}..{end}")


def _check_signature(data: bytes, p7s: bytes, report: Report) -> None:
    try:
        report.signature = info = verify_detached(data, p7s)
    except SignatureInvalid as exc:
        report.add(0, f"signature: {exc}")
        return
    if info.certificate is not None:
        report.test_certificate = icp_brasil_problem(info.certificate)
    if report.test_certificate is not None:
        report.warnings.append(
            f"TEST certificate, not ICP-Brasil ({report.test_certificate}): a test signature, no legal value"
        )
    if info.policy is None:
        report.warnings.append("the signature names no signature policy (ICP-Brasil expects AD-RB)")
    elif info.policy.oid == AD_RB_POLICY.oid and info.policy.sha256 != AD_RB_POLICY.sha256:
        report.add(0, f"signature: policy {info.policy.oid} is named with a hash not {AD_RB_POLICY.name}'s")


def policy_name(info: SignatureInfo) -> str:
    """The signature policy a signature names, for a report line."""
    if info.policy is None:
        return "none"
    known = f" ({AD_RB_POLICY.name})" if info.policy.oid == AD_RB_POLICY.oid else " (not an ICP-Brasil AD-RB)"
    return info.policy.oid + known


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
    lines = split_lines(data, report)
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
        _check_signature(data, p7s, report)
    return report
