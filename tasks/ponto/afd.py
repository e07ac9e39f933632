"""The AFD (Arquivo Fonte de Dados) of Portaria MTP 671/2021 for a REP-P: layout and rendering.

Pure functions, no I/O. Choices where the layout text is ambiguous (see docs/ponto.md):

* DH fields are ``AAAA-MM-ddThh:mm:00ZZZZZ``: seconds are always ``00`` and the
  offset is the establishment's at that instant (from its IANA zone). A punch's two DH are
  rendered once, at insertion, and kept as text (``marked_dh``, ``recorded_dh``): the AFD
  writes those, so a later time-zone database cannot change a hashed line.
* Header fields 8 and 9 are the annex's "data inicial / final dos registros no arquivo":
  the local dates of the earliest and latest gravação in the file (:func:`records_period`);
  an AFD without records states the period asked for.
* Records of types 1 to 5 end with CRC-16/KERMIT of the characters before it,
  written as four upper-case hex digits.
* The type-7 hash is the lower-case hex SHA-256 of fields 1 to 7 exactly as
  written, followed by the previous type-7 hash of the same REP ("" for the first).
* Text is ISO-8859-1 with CRLF line ends; the last line is the signature marker.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

#: Layout version written in the header (field 11).
LAYOUT_VERSION = "003"
SIGNATURE_LINE = "ASSINATURA_DIGITAL_EM_ARQUIVO_P7S".ljust(100)
CRLF = "\r\n"
ENCODING = "iso-8859-1"
#: Line length of every record type (the signature line is 100).
LINE_LENGTHS = {"1": 302, "2": 331, "3": 50, "4": 73, "5": 118, "6": 36, "7": 137, "9": 64}
#: Record types that end with a CRC-16.
CRC_TYPES = frozenset("12345")
#: Collector codes of type-7 field 6 (annex table: 01 aplicativo mobile, 02 browser, 03 aplicativo
#: desktop, 04 dispositivo eletrônico, 05 outro dispositivo eletrônico não especificado).
COLLECTORS = {"mobile": 1, "browser": 2, "desktop": 3, "device": 4, "other": 5}
#: Characters of fields 1 to 7 of a type-7 record (the hashed part).
PUNCH_FIELDS_LENGTH = 73
#: Type-6 event codes a REP-P writes: 07 disponibilidade de serviço, 08 indisponibilidade de serviço.
#: A transcription of Anexo V lists 02 (retorno de energia), 07 and 08 for a REP-P; a server-side
#: REP-P has no power-return event apart from an outage window, so it writes 07/08 only (see events.py).
EVENT_SERVICE_AVAILABLE = "07"
EVENT_SERVICE_UNAVAILABLE = "08"
EVENT_CODES = frozenset({EVENT_SERVICE_AVAILABLE, EVENT_SERVICE_UNAVAILABLE})


def crc16_kermit(data: bytes) -> int:
    """CRC-16/KERMIT (CCITT, reflected, init 0): ``b"123456789"`` gives ``0x2189``."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def with_crc(text: str) -> str:
    """``text`` followed by its CRC-16/KERMIT as four upper-case hex digits."""
    return text + f"{crc16_kermit(text.encode(ENCODING)):04X}"


def format_dh(moment: datetime) -> str:
    """An aware datetime as an AFD DH field: ``2025-03-10T08:00:00-0300`` (seconds always 00)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("DH needs an aware datetime")
    return moment.strftime("%Y-%m-%dT%H:%M:00%z")


def local_dh(moment: datetime, zone: str) -> str:
    """The DH of an aware instant in the IANA ``zone`` (e.g. ``America/Rio_Branco`` gives -0500)."""
    return format_dh(moment.astimezone(ZoneInfo(zone)))


def text_field(value: str, size: int) -> str:
    """An alphanumeric field: ISO-8859-1, filled from the left, padded with spaces, cut to ``size``."""
    clean = " ".join(value.split())
    clean = clean.encode(ENCODING, errors="replace").decode(ENCODING)
    return clean[:size].ljust(size)


def nsr_field(nsr: int) -> str:
    """NSR as nine digits."""
    if not 0 <= nsr <= 999_999_999:
        raise ValueError(f"NSR {nsr} does not fit in nine digits")
    return f"{nsr:09d}"


@dataclass(frozen=True, kw_only=True)
class Employer:
    """The employer as types 1 and 2 write it.

    Attributes:
        id_type: 1 CNPJ, 2 CPF.
        id: 14 (CNPJ) or 11 (CPF) digits.
        cno_caepf: CNO or CAEPF, or "".
        name: Razão social.
        site: Local de prestação de serviços (type 2 only).
    """

    id_type: int
    id: str
    cno_caepf: str
    name: str
    site: str


@dataclass(frozen=True, kw_only=True)
class Header:
    """Type 1: who, which REP and which period the file covers."""

    employer: Employer
    inpi: str
    start: date
    end: date
    generated_at: datetime
    developer_type: int
    developer_id: str


@dataclass(frozen=True, kw_only=True)
class EmployerRecord:
    """Type 2: inclusion or change of the employer on the REP."""

    nsr: int
    recorded_at: datetime
    responsible_cpf: str
    employer: Employer


@dataclass(frozen=True, kw_only=True)
class EmployeeRecord:
    """Type 5: an employee included (``I``), changed (``A``) or excluded (``E``)."""

    nsr: int
    recorded_at: datetime
    operation: str
    cpf: str
    name: str
    responsible_cpf: str
    other: str = ""


@dataclass(frozen=True, kw_only=True)
class PunchRecord:
    """Type 7: a punch on a REP-P, with its chained hash.

    Attributes:
        marked_dh: The marcação DH as rendered at insertion ("" for rows older than it:
            rendered from ``marked_at`` then).
        recorded_dh: The gravação DH likewise.
    """

    nsr: int
    marked_at: datetime
    cpf: str
    recorded_at: datetime
    collector: int
    offline: bool
    hash: str
    marked_dh: str = ""
    recorded_dh: str = ""

    @property
    def marked_text(self) -> str:
        """The marcação DH as the AFD writes it."""
        return self.marked_dh or format_dh(self.marked_at)

    @property
    def recorded_text(self) -> str:
        """The gravação DH as the AFD writes it."""
        return self.recorded_dh or format_dh(self.recorded_at)


@dataclass(frozen=True, kw_only=True)
class ClockAdjustment:
    """Type 4: the REP's clock moved from ``before`` to ``adjusted`` by ``responsible_cpf``."""

    nsr: int
    before: datetime
    adjusted: datetime
    responsible_cpf: str


@dataclass(frozen=True, kw_only=True)
class SensitiveEvent:
    """Type 6: a sensitive event of the REP (for a REP-P: service unavailable / available again).

    Attributes:
        nsr: Its NSR in the REP's sequence.
        recorded_at: When the event happened (an outage window's start or end).
        code: Two-digit event code, one of :data:`EVENT_CODES`.
    """

    nsr: int
    recorded_at: datetime
    code: str


Record = EmployerRecord | ClockAdjustment | EmployeeRecord | SensitiveEvent | PunchRecord
_RECORD_TYPES: dict[type, str] = {
    EmployerRecord: "2",
    ClockAdjustment: "4",
    EmployeeRecord: "5",
    SensitiveEvent: "6",
    PunchRecord: "7",
}


def punch_fields(
    *, nsr: int, marked_at: datetime, cpf: str, recorded_at: datetime, collector: int, offline: bool
) -> str:
    """Fields 1 to 7 of a type-7 record, exactly as written (and hashed)."""
    return punch_fields_text(
        nsr=nsr,
        marked_dh=format_dh(marked_at),
        cpf=cpf,
        recorded_dh=format_dh(recorded_at),
        collector=collector,
        offline=offline,
    )


def punch_fields_text(
    *, nsr: int, marked_dh: str, cpf: str, recorded_dh: str, collector: int, offline: bool
) -> str:
    """Fields 1 to 7 of a type-7 record from its two DH already rendered (:func:`format_dh`)."""
    return (
        nsr_field(nsr)
        + "7"
        + marked_dh
        + text_field(cpf, 12)
        + recorded_dh
        + f"{collector:02d}"
        + ("1" if offline else "0")
    )


def chain_hash(fields: str, previous: str) -> str:
    """SHA-256 (lower-case hex) of a type-7 record's fields 1-7 and the previous type-7 hash."""
    return hashlib.sha256((fields + previous).encode(ENCODING)).hexdigest()


def header_line(header: Header) -> str:
    """The type-1 line (302 characters)."""
    employer = header.employer
    return with_crc(
        nsr_field(0)
        + "1"
        + str(employer.id_type)
        + text_field(employer.id, 14)
        + text_field(employer.cno_caepf, 14)
        + text_field(employer.name, 150)
        + text_field(header.inpi, 17)
        + header.start.isoformat()
        + header.end.isoformat()
        + format_dh(header.generated_at)
        + LAYOUT_VERSION
        + str(header.developer_type)
        + text_field(header.developer_id, 14)
        + text_field("", 30)
    )


def record_line(record: Record) -> str:
    """The line of a type 2, 4, 5, 6 or 7 record."""
    if isinstance(record, SensitiveEvent):
        if record.code not in EVENT_CODES:
            raise ValueError(f"unknown type-6 event code {record.code!r}")
        return nsr_field(record.nsr) + "6" + format_dh(record.recorded_at) + record.code
    if isinstance(record, ClockAdjustment):
        return with_crc(
            nsr_field(record.nsr)
            + "4"
            + format_dh(record.before)
            + format_dh(record.adjusted)
            + text_field(record.responsible_cpf, 11)
        )
    if isinstance(record, PunchRecord):
        fields = punch_fields_text(
            nsr=record.nsr,
            marked_dh=record.marked_text,
            cpf=record.cpf,
            recorded_dh=record.recorded_text,
            collector=record.collector,
            offline=record.offline,
        )
        return fields + record.hash
    if isinstance(record, EmployerRecord):
        employer = record.employer
        return with_crc(
            nsr_field(record.nsr)
            + "2"
            + format_dh(record.recorded_at)
            + text_field(record.responsible_cpf, 14)
            + str(employer.id_type)
            + text_field(employer.id, 14)
            + text_field(employer.cno_caepf, 14)
            + text_field(employer.name, 150)
            + text_field(employer.site, 100)
        )
    return with_crc(
        nsr_field(record.nsr)
        + "5"
        + format_dh(record.recorded_at)
        + text_field(record.operation, 1)
        + text_field(record.cpf, 12)
        + text_field(record.name, 52)
        + text_field(record.other, 4)
        + text_field(record.responsible_cpf, 11)
    )


def record_day(record: Record) -> date:
    """The local date of a record's gravação (for a type 4, of the adjusted time), as its line writes it."""
    if isinstance(record, PunchRecord):
        return date.fromisoformat(record.recorded_text[:10])
    if isinstance(record, ClockAdjustment):
        return record.adjusted.date()
    return record.recorded_at.date()


def records_period(records: Sequence[Record]) -> tuple[date, date] | None:
    """Header fields 8 and 9: the dates of the first and last records in the file (``None``: no record)."""
    days = [record_day(r) for r in records]
    return (min(days), max(days)) if days else None


def record_type(record: Record) -> str:
    """The type digit of a record."""
    return _RECORD_TYPES[type(record)]


def trailer_line(records: Sequence[Record]) -> str:
    """Type 9: the counts of types 2, 3, 4, 5, 6 and 7."""
    types = [record_type(r) for r in records]
    counts = "".join(f"{types.count(t):09d}" for t in "234567")
    return "999999999" + counts + "9"


def render_afd(header: Header, records: Sequence[Record]) -> bytes:
    """The whole AFD: header, records in NSR order, trailer and signature marker.

    Raises:
        ValueError: Records out of NSR order, or a line of the wrong length.
    """
    ordered = list(records)
    if any(b.nsr <= a.nsr for a, b in itertools.pairwise(ordered)):
        raise ValueError("AFD records must be in increasing NSR order")
    lines = [header_line(header), *(record_line(r) for r in ordered), trailer_line(ordered)]
    for line in lines:
        if len(line) != LINE_LENGTHS[line[9] if line[:9] != "999999999" else "9"]:
            raise ValueError(f"AFD line of wrong length {len(line)}: {line[:20]}...")
    lines.append(SIGNATURE_LINE)
    return "".join(line + CRLF for line in lines).encode(ENCODING)


def afd_file_name(inpi: str, employer_id: str) -> str:
    """``AFD`` + REP-P INPI number + employer CNPJ/CPF + ``REP_P.txt``."""
    return f"AFD{inpi.strip()}{employer_id.strip()}REP_P.txt"
