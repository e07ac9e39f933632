"""The NF-e access key (chave de acesso): 44 characters built from the ``ide`` fields.

Layout (MOC 4.00 item 5.4; positions are 1-based)::

    cUF 1-2 | AAMM 3-6 | CNPJ/CPF 7-20 | mod 21-22 | serie 23-25 | nNF 26-34 | tpEmis 35 | cNF 36-43 | cDV 44

The issuer's CNPJ may be alphanumeric (12 ``[0-9A-Z]`` then 2 digits); a CPF issuer is
zero-padded to 14. ``cDV`` is the modulo-11 digit of the first 43 characters, each worth
``ord(char) - 48`` (:func:`~.documents.mod11_digit`). The XML carries the key as
``infNFe/@Id = "NFe" + key``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from tornado_core import NonRetryable

from .documents import CNPJ_BODY_CHARACTERS, cnpj_problem, cpf_problem, mod11_digit, normalize_document

KEY_LENGTH = 44
#: IBGE codes of the 27 federative units (cUF).
UF_CODES: Mapping[str, int] = MappingProxyType({
    "RO": 11, "AC": 12, "AM": 13, "RR": 14, "PA": 15, "AP": 16, "TO": 17,
    "MA": 21, "PI": 22, "CE": 23, "RN": 24, "PB": 25, "PE": 26, "AL": 27, "SE": 28, "BA": 29,
    "MG": 31, "ES": 32, "RJ": 33, "SP": 35,
    "PR": 41, "SC": 42, "RS": 43,
    "MS": 50, "MT": 51, "GO": 52, "DF": 53,
})  # fmt: skip
#: Models a key may carry: 55 NF-e, 65 NFC-e.
MODELS = frozenset({55, 65})
#: tpEmis: 1 normal, 2 FS, 3 NFF, 4 EPEC, 5 FS-DA, 6 SVC-AN, 7 SVC-RS, 9 offline NFC-e.
EMISSION_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9})
MAX_NUMBER = 999_999_999
MAX_RANDOM_CODE = 99_999_999


class AccessKeyInvalid(NonRetryable):
    """An access key, or the fields to build one, break the layout's rules.

    It is a :class:`~tornado_core.errors.NonRetryable`: a bad key never becomes valid on retry.

    Attributes:
        problems: One entry per problem, ``{"field": "number", "message": "..."}``, the field
            named as on :class:`AccessKey`.
    """

    def __init__(self, problems: list[dict[str, str]]) -> None:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        super().__init__(f"invalid access key: {summary}")
        self.problems = problems


@dataclass(frozen=True, kw_only=True)
class AccessKey:
    """A valid access key, field by field (an invalid one cannot be constructed).

    Attributes:
        uf_code: cUF, the IBGE code of the issuer's UF (35 for SP).
        year: Year of ``dhEmi``, 2000-2099 (the key keeps its last two digits).
        month: Month of ``dhEmi``, 1-12.
        issuer: The issuer's CNPJ (numeric or alphanumeric) or zero-padded CPF, 14 characters.
        model: mod, 55 (NF-e) or 65 (NFC-e).
        series: serie, 0-999.
        number: nNF, 1-999999999.
        emission_type: tpEmis (1 normal; 2-7 and 9 contingencies).
        random_code: cNF, 0-99999999, different from ``number``.
        check_digit: cDV, the modulo-11 digit of the first 43 characters.

    Raises:
        AccessKeyInvalid: On construction, with every problem found.
    """

    uf_code: int
    year: int
    month: int
    issuer: str
    model: int
    series: int
    number: int
    emission_type: int
    random_code: int
    check_digit: int

    def __post_init__(self) -> None:
        problems = _value_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise AccessKeyInvalid(problems)

    @property
    def text(self) -> str:
        """The 44 characters."""
        return f"{_base(vars(self))}{self.check_digit}"

    @property
    def xml_id(self) -> str:
        """The ``infNFe/@Id`` attribute: ``"NFe"`` and the key."""
        return f"NFe{self.text}"

    def __str__(self) -> str:
        return self.text


def build_access_key(
    *,
    uf_code: int,
    year: int,
    month: int,
    issuer: str,
    model: int,
    series: int,
    number: int,
    emission_type: int,
    random_code: int,
) -> AccessKey:
    """The key of these ``ide`` fields, its check digit computed.

    Args:
        uf_code: cUF (IBGE code of the issuer's UF; :data:`UF_CODES` maps the letters).
        year: Year of ``dhEmi`` (four digits).
        month: Month of ``dhEmi``.
        issuer: The issuer's CNPJ (numeric or alphanumeric) or CPF, masked or not.
        model: 55 or 65.
        series: serie.
        number: nNF.
        emission_type: tpEmis.
        random_code: cNF (see :func:`random_code_for` for a deterministic one).

    Raises:
        AccessKeyInvalid: With every field that breaks the layout.
    """
    document = normalize_document(issuer)
    values: dict[str, Any] = {
        "uf_code": uf_code,
        "year": year,
        "month": month,
        "issuer": document.zfill(14) if len(document) == 11 else document,
        "model": model,
        "series": series,
        "number": number,
        "emission_type": emission_type,
        "random_code": random_code,
    }
    problems = _value_problems(values)
    if problems:
        raise AccessKeyInvalid(problems)
    return AccessKey(**values, check_digit=mod11_digit(_base(values)))


def parse_access_key(text: str) -> AccessKey:
    """The fields of a key written as 44 characters (spaces, as printed on a DANFE, are ignored).

    Raises:
        AccessKeyInvalid: With one entry per field that is malformed or out of range, and the
            check digit if it does not match.
    """
    problems = access_key_problems(text)
    if problems:
        raise AccessKeyInvalid(problems)
    key = _compact(text)
    return AccessKey(**{name: _chunk_value(name, key[start:end]) for name, start, end, _ in _LAYOUT})


def access_key_problems(text: str) -> list[dict[str, str]]:
    """Every problem of a key written as 44 characters, in layout order; empty for a valid key.

    The check digit is compared only when every other field is valid.
    """
    key = _compact(text)
    if len(key) != KEY_LENGTH:
        return [{"field": "key", "message": f"must have {KEY_LENGTH} characters, has {len(key)}"}]
    problems: list[dict[str, str]] = []
    values: dict[str, Any] = {}
    for name, start, end, label in _LAYOUT:
        problem = _chunk_problem(key, name, start, end, label)
        if problem:
            problems.append(problem)
        else:
            values[name] = _chunk_value(name, key[start:end])
    problems += _value_problems(values)
    order = [name for name, *_ in _LAYOUT]
    return sorted(problems, key=lambda problem: order.index(problem["field"]))


def _chunk_problem(key: str, name: str, start: int, end: int, label: str) -> dict[str, str] | None:
    """The first character of ``key[start:end]`` the layout does not allow there."""
    for position in range(start, end):
        letters_allowed = name == "issuer" and position < start + 12
        allowed = _ISSUER_BODY if letters_allowed else _DIGIT_SET
        if key[position] not in allowed:
            kind = "a digit or a letter A-Z" if letters_allowed else "a digit"
            message = f"{label}: position {position + 1} must be {kind}, found {key[position]!r}"
            return {"field": name, "message": message}
    return None


def _value_problems(values: Mapping[str, Any]) -> list[dict[str, str]]:
    """The problems of the key fields in ``values`` (those absent are not checked).

    ``check_digit`` is checked only when every other field is present and valid.
    """
    problems: list[dict[str, str]] = []
    for name, check in _CHECKS:
        if name in values:
            message = check(values[name])
            if message:
                problems.append({"field": name, "message": message})
    if "random_code" in values and "number" in values and values["random_code"] == values["number"]:
        message = f"cNF must differ from nNF (both are {values['number']})"
        problems.append({"field": "random_code", "message": message})
    complete = all(f.name in values for f in fields(AccessKey))
    if complete and not problems:
        expected = mod11_digit(_base(values))
        if values["check_digit"] != expected:
            problems.append({
                "field": "check_digit",
                "message": f"cDV (position 44) is {values['check_digit']}, but the check digit "
                f"of the first 43 characters is {expected}",
            })  # fmt: skip
    return problems


def random_code_for(seed: str | bytes, *, number: int) -> int:
    """A cNF derived from ``seed``: the same seed always gives the same code.

    Pass something stable across redeliveries of the job (its id, or a hash of it), so a job
    that runs twice builds the same key. The code never equals ``number`` (nNF), which SEFAZ
    refuses.

    Args:
        seed: Stable per document (e.g. the job id).
        number: The document's nNF.
    """
    material = seed.encode() if isinstance(seed, str) else seed
    counter = 0
    while True:
        digest = hashlib.sha256(b"nfe-cNF\x00" + counter.to_bytes(4, "big") + material).digest()
        code = int.from_bytes(digest[:8], "big") % (MAX_RANDOM_CODE + 1)
        if code != number:
            return code
        counter += 1


# --- layout and field rules --------------------------------------------------------------------

_Check = Callable[[Any], str | None]
_DIGIT_SET = frozenset("0123456789")
_ISSUER_BODY = CNPJ_BODY_CHARACTERS
#: (field, start, end, name in the manual) with 0-based slice bounds; check_digit last.
_LAYOUT = (
    ("uf_code", 0, 2, "cUF"),
    ("year", 2, 4, "AA"),
    ("month", 4, 6, "MM"),
    ("issuer", 6, 20, "CNPJ/CPF"),
    ("model", 20, 22, "mod"),
    ("series", 22, 25, "serie"),
    ("number", 25, 34, "nNF"),
    ("emission_type", 34, 35, "tpEmis"),
    ("random_code", 35, 43, "cNF"),
    ("check_digit", 43, 44, "cDV"),
)


def _compact(text: str) -> str:
    return "".join(text.split())


def _chunk_value(name: str, chunk: str) -> Any:
    """The typed value of a well-formed field of a key."""
    if name == "issuer":
        return chunk
    return 2000 + int(chunk) if name == "year" else int(chunk)


def _base(values: Mapping[str, Any]) -> str:
    """The first 43 characters."""
    return (
        f"{values['uf_code']:02d}{values['year'] % 100:02d}{values['month']:02d}{values['issuer']}"
        f"{values['model']:02d}{values['series']:03d}{values['number']:09d}{values['emission_type']}"
        f"{values['random_code']:08d}"
    )


def _between(label: str, low: int, high: int) -> _Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return f"{label} must be an integer from {low} to {high}, got {value!r}"
        return None

    return check


def _one_of(label: str, allowed: frozenset[int]) -> _Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            return f"{label} must be one of {sorted(allowed)}, got {value!r}"
        return None

    return check


def _issuer_problem(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) != 14 or normalize_document(value) != value:
        return f"CNPJ/CPF must be 14 characters 0-9 or A-Z (a CPF zero-padded), got {value!r}"
    cnpj = cnpj_problem(value)
    if cnpj is None:
        return None
    if value.startswith("000") and cpf_problem(value[3:]) is None:
        return None
    return f"CNPJ/CPF is not a valid CNPJ ({cnpj})" + (
        f" nor a zero-padded CPF ({cpf_problem(value[3:])})" if value.startswith("000") else ""
    )


_CHECKS: tuple[tuple[str, _Check], ...] = (
    ("uf_code", _one_of("cUF", frozenset(UF_CODES.values()))),
    ("year", _between("year of AAMM", 2000, 2099)),
    ("month", _between("month of AAMM", 1, 12)),
    ("issuer", _issuer_problem),
    ("model", _one_of("mod", MODELS)),
    ("series", _between("serie", 0, 999)),
    ("number", _between("nNF", 1, MAX_NUMBER)),
    ("emission_type", _one_of("tpEmis", EMISSION_TYPES)),
    ("random_code", _between("cNF", 0, MAX_RANDOM_CODE)),
    ("check_digit", _between("cDV", 0, 9)),
)
