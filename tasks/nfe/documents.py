"""Brazilian tax ids: CPF and CNPJ (numeric and alphanumeric), with their modulo-11 check digits.

The alphanumeric CNPJ (Receita Federal, IN RFB 2.229/2024, in use from July 2026) keeps 14
characters: 12 letters ``A-Z`` or digits, then two numeric check digits. Each character counts as
its ASCII code minus 48 (``"0"``..``"9"`` are 0..9, ``"A"`` is 17, ``"Z"`` is 42), so a
digits-only CNPJ keeps exactly the check digits it always had.

The ``*_problem`` functions say what is wrong, with 1-based positions counted on the
characters left after :func:`normalize_document`, or return ``None`` for a valid id.
"""

from __future__ import annotations

import string

CPF_LENGTH = 11
CNPJ_LENGTH = 14
#: Characters allowed in the first 12 positions of a CNPJ.
CNPJ_BODY_CHARACTERS = frozenset(string.digits + string.ascii_uppercase)
_DIGITS = frozenset(string.digits)
_PUNCTUATION = str.maketrans("", "", "./-")


def normalize_document(text: str) -> str:
    """``text`` without the ``.``, ``/`` and ``-`` of the usual masks, trimmed and upper-cased.

    ``"12.abc.345/01de-35"`` gives ``"12ABC34501DE35"``; inner spaces are kept (and then refused
    by the checks, with their position).
    """
    return text.translate(_PUNCTUATION).strip().upper()


def mod11_digit(body: str) -> int:
    """The modulo-11 check digit of ``body``: weights 2..9 from the right, cycling.

    Each character is worth ``ord(char) - 48``. A remainder of 0 or 1 gives 0, any other
    remainder ``r`` gives ``11 - r``. This is the rule of the CNPJ (both forms) and of the NF-e
    access key.
    """
    total, weight = 0, 2
    for char in reversed(body):
        total += (ord(char) - 48) * weight
        weight = 2 if weight == 9 else weight + 1
    remainder = total % 11
    return 0 if remainder < 2 else 11 - remainder


def cnpj_check_digits(body: str) -> str:
    """The two check digits of a CNPJ whose first 12 characters are ``body``.

    Raises:
        ValueError: ``body`` is not 12 characters of ``0-9``/``A-Z``.
    """
    if len(body) != CNPJ_LENGTH - 2 or not set(body) <= CNPJ_BODY_CHARACTERS:
        raise ValueError(f"a CNPJ body is 12 characters 0-9 or A-Z, not {body!r}")
    first = mod11_digit(body)
    return f"{first}{mod11_digit(body + str(first))}"


def cpf_check_digits(body: str) -> str:
    """The two check digits of a CPF whose first 9 digits are ``body``.

    Raises:
        ValueError: ``body`` is not 9 digits.
    """
    if len(body) != CPF_LENGTH - 2 or not set(body) <= _DIGITS:
        raise ValueError(f"a CPF body is 9 digits, not {body!r}")
    first = _cpf_digit(body)
    return f"{first}{_cpf_digit(body + str(first))}"


def _cpf_digit(digits: str) -> int:
    # Weights 2, 3, ... from the right (10..2 for the first digit, 11..2 for the second).
    total = sum(int(d) * w for d, w in zip(reversed(digits), range(2, len(digits) + 2), strict=True))
    remainder = total % 11
    return 0 if remainder < 2 else 11 - remainder


def cpf_problem(text: str) -> str | None:
    """Why ``text`` is not a valid CPF, or ``None`` if it is.

    Accepts ``"52998224725"`` and ``"529.982.247-25"``. CPFs of one repeated digit pass the
    arithmetic but are never issued, so they are refused.
    """
    cpf = normalize_document(text)
    if len(cpf) != CPF_LENGTH:
        return f"must have 11 digits, has {len(cpf)} characters"
    for position, char in enumerate(cpf, start=1):
        if char not in _DIGITS:
            return f"position {position} must be a digit, found {char!r}"
    if cpf == cpf[0] * CPF_LENGTH:
        return "is not an issued CPF (one repeated digit)"
    return _check_digits_problem(cpf, cpf_check_digits(cpf[:-2]))


def cnpj_problem(text: str) -> str | None:
    """Why ``text`` is not a valid CNPJ (numeric or alphanumeric), or ``None`` if it is.

    Accepts ``"11222333000181"``, ``"11.222.333/0001-81"`` and ``"12.ABC.345/01DE-35"``.
    ``00000000000000`` passes the arithmetic but is never issued, so it is refused.
    """
    cnpj = normalize_document(text)
    if len(cnpj) != CNPJ_LENGTH:
        return f"must have 14 characters, has {len(cnpj)}"
    for position, char in enumerate(cnpj[:-2], start=1):
        if char not in CNPJ_BODY_CHARACTERS:
            return f"position {position} must be a digit or a letter A-Z, found {char!r}"
    for position, char in enumerate(cnpj[-2:], start=CNPJ_LENGTH - 1):
        if char not in _DIGITS:
            return f"position {position} is a check digit and must be a digit, found {char!r}"
    if cnpj == "0" * CNPJ_LENGTH:
        return "is not an issued CNPJ (all zeros)"
    return _check_digits_problem(cnpj, cnpj_check_digits(cnpj[:-2]))


def _check_digits_problem(document: str, expected: str) -> str | None:
    length = len(document)
    for index, (found, wanted) in enumerate(zip(document[-2:], expected, strict=True)):
        if found != wanted:
            position = length - 1 + index
            return f"check digit {index + 1} (position {position}) should be {wanted}, found {found}"
    return None


def is_alphanumeric_cnpj(cnpj: str) -> bool:
    """Whether a (normalised) CNPJ has a letter in its body: the new form, never purely numeric."""
    return any(char in string.ascii_uppercase for char in cnpj[: CNPJ_LENGTH - 2])
