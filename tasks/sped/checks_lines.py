"""Physical checks of one line: CR LF ending, the ``|`` at both ends, ISO-8859-1 bytes.

A SPED file is ISO-8859-1 (Latin-1): every byte is a character, so decoding never fails. What
goes wrong in practice is a file written as UTF-8: a ``ç`` becomes the two bytes ``C3 A7``. Any
valid UTF-8 multi-byte sequence is therefore reported as "UTF-8 bytes". A Latin-1 text can
contain such a pair by accident (``Ã`` followed by ``§``), which is rare enough to accept.
Control characters (C0, DEL and the C1 range 0x80-0x9F) are refused as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .model import Problem

CRLF = b"\r\n"
_UTF8_SEQUENCE = re.compile(
    rb"[\xC2-\xDF][\x80-\xBF]"
    rb"|\xE0[\xA0-\xBF][\x80-\xBF]|[\xE1-\xEC\xEE\xEF][\x80-\xBF]{2}|\xED[\x80-\x9F][\x80-\xBF]"
    rb"|\xF0[\x90-\xBF][\x80-\xBF]{2}|[\xF1-\xF3][\x80-\xBF]{3}|\xF4[\x80-\x8F][\x80-\xBF]{2}"
)
_CONTROL = re.compile(rb"[\x00-\x1F\x7F-\x9F]")
_C0_CONTROL = re.compile(rb"[\x00-\x1F\x7F]")


@dataclass(frozen=True)
class RawLine:
    """A line cut into its fields, decoded as Latin-1 (which never fails).

    Attributes:
        number: 1-based line number.
        record: The first field decoded (``"C100"``), ``""`` for an empty line.
        text: What is between the outer pipes, decoded as Latin-1.
        fields: ``text`` cut at the pipes, ``REG`` first.
        body: The line without its ending.
        problems: What is wrong with the ending or the pipes.
    """

    number: int
    record: str
    text: str
    fields: list[str]
    body: bytes
    problems: tuple[Problem, ...]


def _ending(raw: bytes) -> tuple[bytes, str | None]:
    if raw.endswith(CRLF):
        return raw[:-2], None
    if raw.endswith(b"\n"):
        return raw[:-1], "ends with LF only: lines end with CR LF"
    return raw, "does not end with CR LF"


def split_line(number: int, raw: bytes) -> RawLine:
    """Cut ``raw`` (one line with its ending, as binary file iteration gives it) into fields."""
    body, ending = _ending(raw)
    if not body:
        return RawLine(number, "", "", [], body, (Problem(number, "", None, "empty line"),))
    inner = body[1:] if body.startswith(b"|") else body
    inner = inner[:-1] if inner.endswith(b"|") and len(body) > 1 else inner
    text = inner.decode("latin-1")
    fields = text.split("|")
    record = fields[0]
    problems = []
    if ending is not None:
        problems.append(Problem(number, record, None, ending))
    if not (body.startswith(b"|") and body.endswith(b"|") and len(body) > 1):
        problems.append(Problem(number, record, None, "a line starts and ends with |"))
    return RawLine(number, record, text, fields, body, tuple(problems))


def byte_problems(line: RawLine, names: Sequence[str]) -> Iterator[Problem]:
    """UTF-8 sequences and control characters, one problem per field at most.

    Args:
        line: The split line.
        names: The record's field names, to say which field is at fault.
    """
    if line.body.isascii() and not _C0_CONTROL.search(line.body):
        return
    inner = line.body[1:] if line.body.startswith(b"|") else line.body
    inner = inner[:-1] if inner.endswith(b"|") and len(line.body) > 1 else inner
    for index, raw in enumerate(inner.split(b"|")):
        name = names[index] if index < len(names) else None
        message = _field_bytes_problem(raw)
        if message is not None:
            yield Problem(line.number, line.record, name, message)


def _field_bytes_problem(raw: bytes) -> str | None:
    utf8 = _UTF8_SEQUENCE.search(raw)
    if utf8 is not None:
        sequence = utf8.group(0)
        return (
            f"UTF-8 bytes {sequence.hex(' ')} ({sequence.decode('utf-8')!r}):"
            " the file must be ISO-8859-1 (Latin-1)"
        )
    control = _CONTROL.search(raw)
    if control is not None:
        return f"control character 0x{control.group(0).hex()} at position {control.start() + 1}"
    return None
