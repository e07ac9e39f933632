"""CPF and CNPJ check digits, the alphanumeric CNPJ included (tornado_tasks.nfe.documents)."""

from __future__ import annotations

import random
import string

import pytest
from tornado_tasks.nfe.documents import (
    cnpj_check_digits,
    cnpj_problem,
    cpf_check_digits,
    cpf_problem,
    is_alphanumeric_cnpj,
    mod11_digit,
    normalize_document,
)

#: Values of the alphanumeric CNPJ's characters as the Receita Federal lists them (ASCII - 48).
RFB_VALUES = {**{d: int(d) for d in string.digits}, **{c: ord(c) - 48 for c in string.ascii_uppercase}}


def rfb_check_digits(body: str) -> str:
    """The two DVs the way the Receita Federal's leaflet spells them: fixed weights, left to right."""
    first_weights = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
    second_weights = (6, *first_weights)

    def digit(chars: str, weights: tuple[int, ...]) -> int:
        remainder = sum(RFB_VALUES[c] * w for c, w in zip(chars, weights, strict=True)) % 11
        return 0 if remainder < 2 else 11 - remainder

    first = digit(body, first_weights)
    return f"{first}{digit(body + str(first), second_weights)}"


def classic_cnpj_check_digits(body: str) -> str:
    """The numeric CNPJ's DVs as every ERP computes them today (int(digit), no ASCII)."""
    weights = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
    first_sum = sum(int(d) * w for d, w in zip(body, weights[1:], strict=True)) % 11
    first = 0 if first_sum < 2 else 11 - first_sum
    second_sum = sum(int(d) * w for d, w in zip(body + str(first), weights, strict=True)) % 11
    return f"{first}{0 if second_sum < 2 else 11 - second_sum}"


#: 529.982.247-25 written with Arabic-Indic digits (U+0660..U+0669).
ARABIC_INDIC_CPF = "".join(chr(0x0660 + int(d)) for d in "52998224725")


# --- normalising --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("11.222.333/0001-81", "11222333000181"),
        (" 12.abc.345/01de-35 ", "12ABC34501DE35"),
        ("529.982.247-25", "52998224725"),
        ("12 345", "12 345"),  # inner spaces are kept, then refused with their position
    ],
)
def test_normalising_strips_the_mask_and_upper_cases(text: str, normalised: str) -> None:
    assert normalize_document(text) == normalised


# --- CPF --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cpf", ["529.982.247-25", "52998224725", "123.456.789-09", "111.444.777-35"])
def test_well_known_valid_cpfs_pass(cpf: str) -> None:
    assert cpf_problem(cpf) is None


def test_cpf_check_digits_of_a_known_cpf() -> None:
    assert cpf_check_digits("529982247") == "25"


@pytest.mark.parametrize(
    ("cpf", "reason"),
    [
        ("529.982.247-26", "check digit 2 (position 11) should be 5, found 6"),
        ("529.982.247-15", "check digit 1 (position 10) should be 2, found 1"),
        ("5299822472", "must have 11 digits, has 10 characters"),
        ("5299822472A", "position 11 must be a digit, found 'A'"),
        ("529 982 247 25", "must have 11 digits, has 14 characters"),
        ("111.111.111-11", "is not an issued CPF (one repeated digit)"),
        (ARABIC_INDIC_CPF, "position 1 must be a digit, found '\u0665'"),  # str.isdigit() would say yes
    ],
)
def test_invalid_cpfs_say_what_is_wrong(cpf: str, reason: str) -> None:
    assert cpf_problem(cpf) == reason


# --- CNPJ, numeric --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cnpj",
    [
        "11.222.333/0001-81",  # the textbook example
        "59594315000157",  # the issuer of the domain doc's sample NF-e
        "00.000.000/0001-91",  # Banco do Brasil: a real CNPJ starting with zeros
        "33.000.167/0001-01",  # Petrobras
    ],
)
def test_well_known_numeric_cnpjs_pass(cnpj: str) -> None:
    assert cnpj_problem(cnpj) is None
    assert not is_alphanumeric_cnpj(normalize_document(cnpj))


def test_digits_only_cnpjs_keep_their_classic_check_digits() -> None:
    generator = random.Random(20260701)
    bodies = ["".join(generator.choice(string.digits) for _ in range(12)) for _ in range(2000)]
    assert [cnpj_check_digits(b) for b in bodies] == [classic_cnpj_check_digits(b) for b in bodies]


@pytest.mark.parametrize(
    ("cnpj", "reason"),
    [
        ("11.222.333/0001-82", "check digit 2 (position 14) should be 1, found 2"),
        ("11.222.333/0001-71", "check digit 1 (position 13) should be 8, found 7"),
        ("11.222.333/0001-8", "must have 14 characters, has 13"),
        ("11.222.333/0001-8A", "position 14 is a check digit and must be a digit, found 'A'"),
        ("11.222.3*3/0001-81", "position 7 must be a digit or a letter A-Z, found '*'"),
        ("00.000.000/0000-00", "is not an issued CNPJ (all zeros)"),
    ],
)
def test_invalid_cnpjs_say_what_is_wrong(cnpj: str, reason: str) -> None:
    assert cnpj_problem(cnpj) == reason


# --- CNPJ, alphanumeric ---------------------------------------------------------------------------


def test_the_receita_federal_example_of_an_alphanumeric_cnpj() -> None:
    # 12.ABC.345/01DE-35 is the example of the RFB's leaflet on the alphanumeric CNPJ. By hand:
    # values 1 2 17 18 19 3 4 5 0 1 20 21, weights 5 4 3 2 9 8 7 6 5 4 3 2: sum 459, 459 % 11 = 8, DV1 = 3;
    # then with the 3 and weights 6..2: sum 424, 424 % 11 = 6, DV2 = 5.
    assert rfb_check_digits("12ABC34501DE") == "35"
    assert cnpj_check_digits("12ABC34501DE") == "35"
    assert cnpj_problem("12.ABC.345/01DE-35") is None
    assert cnpj_problem("12abc34501de35") is None  # typed in lower case: normalised
    assert is_alphanumeric_cnpj("12ABC34501DE35")


def test_alphanumeric_check_digits_match_the_receita_rule_on_random_bodies() -> None:
    generator = random.Random(42)
    alphabet = string.digits + string.ascii_uppercase
    bodies = ["".join(generator.choice(alphabet) for _ in range(12)) for _ in range(2000)]
    assert [cnpj_check_digits(b) for b in bodies] == [rfb_check_digits(b) for b in bodies]
    assert all(cnpj_problem(b + rfb_check_digits(b)) is None for b in bodies if b != "0" * 12)


@pytest.mark.parametrize(
    ("cnpj", "reason"),
    [
        ("12.ABC.345/01DE-53", "check digit 1 (position 13) should be 3, found 5"),
        ("12.ABD.345/01DE-35", "check digit 1 (position 13) should be 5, found 3"),  # 459 + 9: DV1 5
        ("12.ABÇ.345/01DE-35", "position 5 must be a digit or a letter A-Z, found 'Ç'"),
    ],
)
def test_invalid_alphanumeric_cnpjs_say_what_is_wrong(cnpj: str, reason: str) -> None:
    assert cnpj_problem(cnpj) == reason


@pytest.mark.parametrize("body", ["12ABC34501D", "12ABC34501DE3", "12abc34501de", "12ABC34501D-"])
def test_check_digits_refuse_a_malformed_body(body: str) -> None:
    with pytest.raises(ValueError, match="12 characters"):
        cnpj_check_digits(body)


# --- the modulo 11 shared with the access key -----------------------------------------------------


def test_mod11_of_the_domain_doc_worked_example() -> None:
    # Domain doc 1.1: sum 582, 582 % 11 = 10, DV = 11 - 10 = 1.
    assert mod11_digit("3520015959431500015755001000000001206277716") == 1


@pytest.mark.parametrize(("body", "digit"), [("14", 0), ("6", 0), ("5", 1), ("1", 9), ("4", 3)])
def test_mod11_remainders_0_and_1_give_0(body: str, digit: int) -> None:
    # "14": 4x2 + 1x3 = 11, remainder 0 -> 0; "6": 12, remainder 1 -> 0; "5": 10 -> 11 - 10 = 1.
    assert mod11_digit(body) == digit
