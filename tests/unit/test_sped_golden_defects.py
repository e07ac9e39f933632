"""Each kind of defect planted in a copy of the reviewed golden file is reported first, at its line.

The golden file (``tests/data/sped/efd-golden-202501.txt``) is a real output of the generator,
reviewed field by field in docs/sped-golden-review.md; its regeneration is checked byte for byte
by tests/integration/test_sped_golden.py. Here it is only read.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from tornado_tasks.sped.layouts import LayoutRegistry
from tornado_tasks.sped.model import Problem
from tornado_tasks.sped.validator import validate

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "sped" / "efd-golden-202501.txt"
Lines = list[bytes]


def golden_lines() -> Lines:
    data = GOLDEN.read_bytes()
    assert data.endswith(b"\r\n")
    return data.split(b"\r\n")[:-1]


def problems(lines: Lines) -> list[Problem]:
    return list(validate(io.BytesIO(b"".join(line + b"\r\n" for line in lines)), LayoutRegistry.bundled()))


def replace(number: int, old: bytes, new: bytes) -> Callable[[Lines], None]:
    def plant(lines: Lines) -> None:
        assert old in lines[number - 1], lines[number - 1]
        lines[number - 1] = lines[number - 1].replace(old, new, 1)

    return plant


def orphan_c170(lines: Lines) -> None:
    """A C170 right after C001, before any C100."""
    first_c170 = next(line for line in lines if line.startswith(b"|C170|"))
    lines.insert(lines.index(b"|C001|0|") + 1, first_c170)


def drop_block_g(lines: Lines) -> None:
    at = lines.index(b"|G001|1|")
    del lines[at : at + 2]


SAO_JOSE = "SÃO JOSÉ"
KEY_MESSAGE = (
    "NF-e key 35250137267633000170550010000284971383097491: cDV (position 44) is 1,"
    " but the check digit of the first 43 characters is 0"
)
DOT_MESSAGE = "1969.13 uses a dot: the decimal separator is a comma, with no thousands separator (1969,13)"
C190_MESSAGE = "is 94,21, the C170 with CST_ICMS 000, CFOP 1102, ALIQ_ICMS 18,00 add up to 94,20"
DEFECTS = {
    "wrong x990 count": (
        replace(46, b"|C990|28|", b"|C990|27|"),
        Problem(46, "C990", "QTD_LIN_C", "is 27, block C has 28 lines"),
    ),
    "child without its parent": (orphan_c170, Problem(20, "C170", None, "C170 without its parent C100")),
    "bad date": (
        replace(25, b"|04012025|04012025|", b"|32012025|04012025|"),
        Problem(25, "C100", "DT_DOC", "32012025 is not a date written ddmmaaaa"),
    ),
    "dot decimal": (
        replace(26, b"|1969,13|", b"|1969.13|"),
        Problem(26, "C190", "VL_OPR", DOT_MESSAGE),
    ),
    "missing block": (
        drop_block_g,
        Problem(71, "H001", None, "block G is missing: blocks 0 to 9 are all required (G001...G990)"),
    ),
    "bad CNPJ check digit": (
        replace(1, b"|37267633000170|", b"|37267633000171|"),
        Problem(1, "0000", "CNPJ", "CNPJ 37267633000171: check digit 2 (position 14) should be 0, found 1"),
    ),
    "bad NF-e key check digit": (
        replace(25, b"1383097490|", b"1383097491|"),
        Problem(25, "C100", "CHV_NFE", KEY_MESSAGE),
    ),
    "C190 not matching its C170": (
        replace(45, b"|94,20|", b"|94,21|"),
        Problem(45, "C190", "VL_ICMS", C190_MESSAGE),
    ),
    "UTF-8 bytes": (
        replace(3, SAO_JOSE.encode("latin-1"), SAO_JOSE.encode("utf-8")),
        Problem(3, "0005", "BAIRRO", "UTF-8 bytes c3 83 ('Ã'): the file must be ISO-8859-1 (Latin-1)"),
    ),
}


def test_the_golden_file_is_valid() -> None:
    assert problems(golden_lines()) == []


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_a_planted_defect_is_the_first_problem_reported(defect: str) -> None:
    plant, expected = DEFECTS[defect]
    lines = golden_lines()
    plant(lines)
    found = problems(lines)
    assert found and found[0] == expected, found
