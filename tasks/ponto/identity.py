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
