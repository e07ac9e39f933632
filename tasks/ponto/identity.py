"""Brazilian tax ids: CPF (employees) and CNPJ (employers), with their check digits."""

from __future__ import annotations

_CPF_LENGTH = 11
_CNPJ_LENGTH = 14
_CNPJ_WEIGHTS = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_PUNCTUATION = str.maketrans("", "", ".-/ ")


def digits_only(text: str) -> str:
    """``text`` without the usual punctuation (``.``, ``-``, ``/`` and spaces)."""
    return text.translate(_PUNCTUATION)


def _cpf_digit(digits: str) -> int:
    total, weight = 0, len(digits) + 1
    for digit in digits:
        total += (ord(digit) - 48) * weight
        weight -= 1
    remainder = (total * 10) % 11
    return 0 if remainder == 10 else remainder


def cpf_problem(text: str) -> str | None:
    """Why ``text`` is not a valid CPF, or ``None`` if it is.

    Accepts ``12345678909`` and ``123.456.789-09``. Sequences of one repeated
    digit pass the check-digit arithmetic but are not issued, so they are refused.
    """
    cpf = digits_only(text)
    if len(cpf) != _CPF_LENGTH or not cpf.isascii() or not cpf.isdigit():
        return "must have 11 digits"
    if cpf == cpf[0] * _CPF_LENGTH:
        return "is not an issued CPF (one repeated digit)"
    if _cpf_digit(cpf[:9]) != int(cpf[9]) or _cpf_digit(cpf[:10]) != int(cpf[10]):
        return "check digits do not match"
    return None


def normalize_cpf(text: str) -> str:
    """The 11 digits of a valid CPF.

    Raises:
        ValueError: The CPF is malformed or its check digits are wrong.
    """
    problem = cpf_problem(text)
    if problem is not None:
        raise ValueError(f"CPF {problem}")
    return digits_only(text)


def _cnpj_digit(digits: str) -> int:
    weights = _CNPJ_WEIGHTS[-len(digits) :]
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def cnpj_problem(text: str) -> str | None:
    """Why ``text`` is not a valid (numeric) CNPJ, or ``None`` if it is."""
    cnpj = digits_only(text)
    if len(cnpj) != _CNPJ_LENGTH or not cnpj.isascii() or not cnpj.isdigit():
        return "must have 14 digits"
    if _cnpj_digit(cnpj[:12]) != int(cnpj[12]) or _cnpj_digit(cnpj[:13]) != int(cnpj[13]):
        return "check digits do not match"
    return None


def employer_id_problem(kind: int, text: str) -> str | None:
    """Why an employer id of ``kind`` (1 CNPJ, 2 CPF) is invalid, or ``None``."""
    if kind == 1:
        return cnpj_problem(text)
    if kind == 2:
        return cpf_problem(text)
    return "employer id type must be 1 (CNPJ) or 2 (CPF)"


#: Prefix of an INPI software registration: country ``BR`` and nature ``51`` (programa de computador).
INPI_SOFTWARE_PREFIX = "BR51"
_INPI_PUNCTUATION = str.maketrans("", "", ".- ")


def _inpi_digit(digits: str) -> int:
    total = sum(int(d) * (2 + i % 8) for i, d in enumerate(reversed(digits)))
    digit = 11 - total % 11
    return 0 if digit >= 10 else digit


def inpi_problem(text: str) -> str | None:
    """Why ``text`` is not an INPI software registration number, or ``None`` if it is.

    The number is ``BR 51 AAAA NNNNNN-D``: ``51`` the nature (programa de computador), the
    year, a six-digit sequence and a check digit, mod 11 of the twelve digits with weights
    2 to 9 from the right (11 - remainder; 10 and 11 give 0). The rule of the check digit is
    not published with the number; it was derived from public registrations
    (``BR 51 2022 002733-0``, ``BR 51 2017 000290-8``, ...) and holds for all of them
    [verify with INPI]. Spaces, dots and the hyphen are ignored.
    """
    number = text.strip().upper().translate(_INPI_PUNCTUATION)
    digits = number[2:]
    if not number.startswith(INPI_SOFTWARE_PREFIX) or len(digits) != 13 or not digits.isdigit():
        return "must be an INPI software registration, BR 51 AAAA NNNNNN-D (BR, 13 digits)"
    if _inpi_digit(digits[:12]) != int(digits[12]):
        return "check digit does not match"
    return None


def normalize_inpi(text: str) -> str:
    """The registration as written in the AFD and its file name: ``BR`` and 13 digits.

    Raises:
        ValueError: Not a valid INPI software registration (:func:`inpi_problem`).
    """
    problem = inpi_problem(text)
    if problem is not None:
        raise ValueError(f"INPI number {problem}")
    return text.strip().upper().translate(_INPI_PUNCTUATION)
