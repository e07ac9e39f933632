"""The SPED EFD ICMS/IPI layouts and the streaming validator: valid files pass, each planted defect is found.

Every defect test starts from a VALID file of ``tests/sped_samples.py`` and plants one defect,
either in the records before the builder counts them (the counts follow) or in the encoded lines
after (they do not); the test then expects exactly that problem, at its line and field.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from tornado_tasks.nfe.access_key import build_access_key
from tornado_tasks.nfe.documents import cnpj_problem, cpf_problem
from tornado_tasks.sped import cli as sped_cli
from tornado_tasks.sped.layouts import Layout, LayoutRegistry, LayoutUnknown
from tornado_tasks.sped.validator import Problem, validate, validate_file

from tests.sped_samples import (
    ACCOUNTANT_CPF,
    CARRIER,
    CLIENT,
    COMPANY_CNPJ,
    DT_FIN,
    DT_INI,
    FIELDS,
    ONE_TIME,
    SUPPLIER,
    Company,
    body,
    empty_company,
    encode,
    finish,
    index_of,
    large_file,
    line_of,
    movement_company,
    sample_lines,
)
from tornado_core import ConfigError

Records = list[list[str]]
Check = Callable[[Iterable[bytes]], list[Problem]]


@pytest.fixture(scope="module")
def registry() -> LayoutRegistry:
    return LayoutRegistry.bundled()


@pytest.fixture
def check(registry: LayoutRegistry) -> Check:
    return lambda lines: list(validate(lines, registry))


def build(mutate: Callable[[Records], object], company: Company | None = None) -> list[bytes]:
    """The sample file with ``mutate`` applied to its records before the counts are made."""
    records = list(body(company or movement_company()))
    mutate(records)
    return encode(finish(records))


def set_field(records: Records, record: str, name: str, value: str, nth: int = 0) -> None:
    records[index_of(records, record, nth)][FIELDS[record].index(name) + 1] = value


def replace_in_line(lines: list[bytes], record: str, old: bytes, new: bytes, nth: int = 0) -> int:
    number = line_of(lines, record, nth)
    assert old in lines[number - 1]
    lines[number - 1] = lines[number - 1].replace(old, new)
    return number


# --- valid files -------------------------------------------------------------------------------


def test_a_company_with_movement_gives_no_problem(check: Check) -> None:
    assert check(sample_lines()) == []


def test_the_empty_movement_file_is_valid_with_the_reference_counts(
    check: Check,
) -> None:
    lines = sample_lines(empty_company())
    assert check(lines) == []
    closings = {
        line[1:5].decode(): int(line.split(b"|")[2]) for line in lines if line[2:5] in (b"990", b"999")
    }
    assert closings == {"0990": 5, "B990": 2, "C990": 2, "D990": 2, "E990": 4, "G990": 2, "H990": 2,
                        "K990": 2, "1990": 3, "9990": 31, "9999": 55}  # fmt: skip
    assert len(lines) == 55


def test_zero_written_as_0_and_latin1_accents_are_accepted(check: Check) -> None:
    empty = sample_lines(empty_company())
    empty[line_of(empty, "E110") - 1] = ("|E110|" + "0,00|" * 13 + "0|\r\n").encode()  # the prototype's line
    assert check(empty) == []
    assert "AÇÚCAR".encode("latin-1") in b"".join(sample_lines())


def test_a_cancelled_nfe_carries_only_its_identification_and_no_child(
    check: Check,
) -> None:
    fields = {"year": 2025, "month": 1, "issuer": COMPANY_CNPJ, "model": 55, "series": 1, "number": 3}
    key = build_access_key(uf_code=35, emission_type=1, random_code=12345678, **fields).text  # fmt: skip
    cancelled = ["C100", "1", "0", "", "55", "02", "1", "3", key, *([""] * 20)]
    assert check(build(lambda records: records.insert(index_of(records, "D001"), cancelled))) == []


# --- each planted defect, at its line and field ------------------------------------------------


def test_wrong_x990_count(check: Check) -> None:
    lines = sample_lines()
    number = replace_in_line(lines, "C990", b"|18|", b"|17|")
    assert check(lines) == [Problem(number, "C990", "QTD_LIN_C", "is 17, block C has 18 lines")]


def test_c170_without_its_c100(check: Check) -> None:
    lines = build(lambda records: records.pop(index_of(records, "C100")))
    first = line_of(lines, "C170")
    expected = [Problem(first + n, "C170", None, "C170 without its parent C100") for n in range(3)]
    expected += [Problem(first + n, "C190", None, "C190 without its parent C100") for n in (3, 4)]
    assert check(lines) == expected


def test_bad_date(check: Check) -> None:
    lines = build(lambda records: set_field(records, "C100", "DT_DOC", "31022025"))
    assert check(lines) == [
        Problem(line_of(lines, "C100"), "C100", "DT_DOC", "31022025 is not a date written ddmmaaaa")
    ]


def test_dot_decimal(check: Check) -> None:
    lines = build(lambda records: set_field(records, "C170", "QTD", "10.50"))
    message = "10.50 uses a dot: the decimal separator is a comma, with no thousands separator (10,50)"
    assert check(lines) == [Problem(line_of(lines, "C170"), "C170", "QTD", message)]


def test_a_missing_block(check: Check) -> None:
    company = movement_company()
    company.freights, company.participants = (), (CLIENT, SUPPLIER, ONE_TIME)
    lines = build(lambda records: records.pop(index_of(records, "D001")), company)
    assert not any(line.startswith(b"|D") for line in lines)
    message = "block D is missing: blocks 0 to 9 are all required (D001...D990)"
    assert check(lines) == [Problem(line_of(lines, "E001"), "E001", None, message)]


@pytest.mark.parametrize(
    ("record", "field", "good"),
    [("0000", "CNPJ", COMPANY_CNPJ), ("0150", "CNPJ", CLIENT.cnpj), ("0100", "CPF", ACCOUNTANT_CPF)],
)
def test_bad_check_digit(check: Check, record: str, field: str, good: str) -> None:
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    lines = sample_lines()
    number = replace_in_line(lines, record, f"|{good}|".encode(), f"|{bad}|".encode())
    problem = cnpj_problem(bad) if field == "CNPJ" else cpf_problem(bad)
    assert check(lines) == [Problem(number, record, field, f"{field} {bad}: {problem}")]


def test_c190_not_matching_its_c170(check: Check) -> None:
    lines = sample_lines()
    replace_in_line(lines, "C170", b"|270,00|", b"|260,00|")
    message = "is 288,00, the C170 with CST_ICMS 000, CFOP 5102, ALIQ_ICMS 18,00 add up to 278,00"
    assert check(lines) == [Problem(line_of(lines, "C190"), "C190", "VL_ICMS", message)]


def test_utf8_bytes(check: Check) -> None:
    lines = sample_lines()
    number = replace_in_line(lines, "0150", "AÇÚCAR".encode("latin-1"), "AÇÚCAR".encode(), nth=1)
    message = "UTF-8 bytes c3 87 ('Ç'): the file must be ISO-8859-1 (Latin-1)"
    assert check(lines) == [Problem(number, "0150", "NOME", message)]


def test_lf_only_line_ending(check: Check) -> None:
    lines = sample_lines()
    lines[5] = lines[5].removesuffix(b"\r\n") + b"\n"
    assert check(lines) == [Problem(6, "0150", None, "ends with LF only: lines end with CR LF")]


def test_wrong_9900_count(check: Check) -> None:
    lines = sample_lines()
    number = replace_in_line(lines, "9900", b"|C170|7|", b"|C170|8|", nth=index_of_9900(lines, "C170"))
    assert check(lines) == [Problem(number, "9900", "QTD_REG_BLC", "says 8 C170 line(s), the file has 7")]


def index_of_9900(lines: list[bytes], record: str) -> int:
    registers = [line for line in lines if line.startswith(b"|9900|")]
    return next(n for n, line in enumerate(registers) if line.startswith(f"|9900|{record}|".encode()))


def test_wrong_9999(check: Check) -> None:
    lines = sample_lines()
    lines[-1] = b"|9999|93|\r\n"
    assert check(lines) == [Problem(len(lines), "9999", "QTD_LIN", f"is 93, the file has {len(lines)} lines")]


def test_unknown_record(check: Check) -> None:
    lines = build(lambda records: records.insert(index_of(records, "C190") + 1, ["C999", "X"]))
    message = "unknown record 'C999': not in layout 019"
    assert check(lines) == [Problem(line_of(lines, "C999"), "C999", None, message)]


def test_wrong_field_count(check: Check) -> None:
    lines = build(lambda records: records[index_of(records, "0005")].append("EXTRA"))
    assert check(lines) == [Problem(3, "0005", None, "has 11 fields, the layout has 10 (REG included)")]


def test_a_participant_used_in_c100_but_not_listed_in_0150(check: Check) -> None:
    lines = build(lambda records: records.pop(index_of(records, "0150", 3)))
    message = "'P004' is not listed in a 0150 record"
    assert check(lines) == [Problem(line_of(lines, "C100", 3), "C100", "COD_PART", message)]


def test_a_listed_participant_no_record_uses(check: Check) -> None:
    company = movement_company()
    company.freights = ()
    lines = build(lambda records: None, company)
    number = line_of(lines, "0150", 2)
    assert check(lines) == [Problem(number, "0150", "COD_PART", f"'{CARRIER.code}' is listed but never used")]


# --- more structure and totals -------------------------------------------------------------


def test_e110_debits_against_the_exits_and_its_own_arithmetic(check: Check) -> None:
    lines = sample_lines()
    number = replace_in_line(lines, "E110", b"|E110|297,00|", b"|E110|300,00|")
    exits = "is 300,00, the C190/D190 ICMS of the exits dated 01/01/2025 to 31/01/2025 adds up to 297,00"
    assert check(lines) == [
        Problem(number, "E110", "VL_TOT_DEBITOS", exits),
        Problem(number, "E110", "VL_SLD_APURADO", "is 193,20, the E110 arithmetic gives 196,20"),
    ]


def test_an_industrial_filer_without_its_ipi_apuracao(check: Check) -> None:
    def industrial(records: Records) -> None:
        records[0][-1] = "0"  # 0000 IND_ATIV: industrial

    lines = build(industrial)
    e001 = line_of(lines, "E001")
    assert check(lines) == [Problem(e001, "E001", None, "E001 must have a E500 (0000 IND_ATIV is 0)")]

    def with_e500(records: Records) -> None:
        industrial(records)
        at = index_of(records, "G001")
        records[at:at] = [
            ["E500", "0", DT_INI, DT_FIN],
            ["E510", "5101", "50", "1000,00", "1000,00", "100,00"],
            ["E520", "0", "100,00", "0", "0", "0", "0", "100,00"],
        ]

    assert check(build(with_e500)) == []


def test_a_child_after_a_later_sibling(check: Check) -> None:
    def swap(records: Records) -> None:
        c190 = index_of(records, "C190")
        records.insert(c190 + 1, records.pop(c190 - 1))  # the third C170 after the first C190

    lines = build(swap)
    c170 = line_of(lines, "C170", 2)
    assert check(lines) == [
        Problem(c170 - 1, "C190", None, "no C170 of this C100 has CST_ICMS 040, CFOP 5102, ALIQ_ICMS 0,00"),
        Problem(c170, "C170", None, "C170 must come before C190 in its C100"),
    ]


def test_the_layout_must_match_the_period(check: Check) -> None:
    lines = sample_lines()
    lines[0] = lines[0].replace(b"|019|", b"|018|")
    message = "layout 018 is for periods 2024-01 to 2024-12, not for DT_FIN 31012025 (use 019)"
    assert check(lines) == [Problem(1, "0000", "COD_VER", message)]


def test_control_characters_and_missing_pipes(check: Check) -> None:
    lines = sample_lines()
    lines[1] = b"0001|0|\r\n"
    lines[2] = lines[2].replace(b"TESTE", b"TE\tSTE")
    assert check(lines) == [
        Problem(2, "0001", None, "a line starts and ends with |"),
        Problem(3, "0005", "FANTASIA", "control character 0x09 at position 3"),
    ]


def test_an_empty_file_and_a_file_without_0000(check: Check) -> None:
    assert check([]) == [Problem(0, "", None, "the file is empty")]
    assert check(sample_lines()[1:]) == [
        Problem(
            1, "0001", None, "the file must start with 0000 (it names the layout): nothing else is checked"
        )
    ]


def test_problems_print_as_line_record_field() -> None:
    assert str(Problem(12, "C170", "QTD", "bad")) == "line 12, C170.QTD: bad"
    assert str(Problem(3, "0005", None, "bad")) == "line 3, 0005: bad"


# --- flat memory -------------------------------------------------------------------------------


def test_validate_holds_flat_memory_on_a_file_larger_than_its_memory_bound(registry: LayoutRegistry) -> None:
    counted = [0, 0]  # lines, bytes
    bound = 2 * 1024 * 1024

    def lines() -> Iterator[bytes]:
        for line in large_file(20_000):
            counted[0] += 1
            counted[1] += len(line)
            yield line

    tracemalloc.start()
    try:
        problems = list(validate(lines(), registry))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problems == []
    assert counted[0] >= 60_000 and counted[1] > 2 * bound  # the file could not fit in the bound
    assert peak < bound, f"peak {peak} bytes"


# --- the layouts -------------------------------------------------------------------------------


def test_the_registry_finds_a_layout_by_version_and_by_period(registry: LayoutRegistry) -> None:
    assert registry.versions == ("018", "019")
    assert registry.for_period(date(2025, 1, 31)).cod_ver == "019"
    assert registry.for_period(date(2024, 12, 31)) is registry.for_version("018")
    with pytest.raises(LayoutUnknown, match="COD_VER '017'") as unknown:
        registry.for_version("017")
    assert isinstance(unknown.value, ConfigError)
    with pytest.raises(LayoutUnknown, match="period ending 31/01/2023"):
        registry.for_period(date(2023, 1, 31))


def test_the_layouts_have_the_records_and_field_counts_of_the_guia(registry: LayoutRegistry) -> None:
    layout = registry.for_version("019")
    counts = {"0000": 15, "0005": 10, "0100": 14, "0150": 13, "0200": 13, "C100": 29, "C170": 38, "C190": 12,
              "D100": 25, "D190": 9, "E110": 15, "E116": 10, "H010": 11, "1010": 14, "9900": 3}  # fmt: skip
    assert {name: len(layout.records[name].fields) for name in counts} == counts
    for name, names in FIELDS.items():
        assert layout.records[name].names == ("REG", *names), name
    assert layout.records["C170"].parent == "C100" and layout.records["E110"].parent == "E100"
    assert layout.blocks == ("0", "B", "C", "D", "E", "G", "H", "K", "1", "9")


def test_a_new_layout_year_is_a_new_json_file(registry: LayoutRegistry) -> None:
    import json
    from importlib import resources

    data = json.loads(
        resources.files("tornado_tasks.sped").joinpath("layouts/efd_icms_ipi_019.json").read_text()
    )
    data.update(cod_ver="020", valid_from="2026-01", valid_to=None)
    data_019 = {**data, "cod_ver": "019", "valid_from": "2025-01", "valid_to": "2025-12"}
    extended = LayoutRegistry([Layout.from_json(data_019), Layout.from_json(data)])
    assert extended.for_period(date(2026, 2, 28)).cod_ver == "020"


# --- files and the command ---------------------------------------------------------------------


def test_validate_file_reads_a_file_in_binary(tmp_path: Path) -> None:
    path = tmp_path / "efd.txt"
    path.write_bytes(b"".join(sample_lines()))
    report = validate_file(path)
    assert report.ok and report.line_count == 92 and report.problems == ()


def test_the_command_prints_the_problems_and_exits_1(tmp_path: Path) -> None:
    lines = sample_lines()
    replace_in_line(lines, "C990", b"|18|", b"|17|")
    lines[-1] = b"|9999|93|\r\n"
    path = tmp_path / "efd.txt"
    path.write_bytes(b"".join(lines))
    result = CliRunner().invoke(sped_cli.sped, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "line 34, C990.QTD_LIN_C: is 17, block C has 18 lines",
        "line 92, 9999.QTD_LIN: is 93, the file has 92 lines",
        "efd.txt: 2 problem(s) in 92 lines",
    ]
    limited = CliRunner().invoke(sped_cli.sped, ["validate", "--max-problems", "1", str(path)])
    assert limited.exit_code == 1
    assert limited.output.splitlines()[1:] == [
        "... and 1 more problem(s)",
        "efd.txt: 2 problem(s) in 92 lines",
    ]


def test_the_command_exits_0_on_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "efd.txt"
    path.write_bytes(b"".join(sample_lines(empty_company())))
    result = CliRunner().invoke(sped_cli.sped, ["validate", str(path)])
    assert (result.exit_code, result.output) == (0, "efd.txt: valid, 55 lines\n")


def test_a_missing_or_unreadable_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    missing = runner.invoke(sped_cli.sped, ["validate", str(tmp_path / "nope.txt")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    folder = runner.invoke(sped_cli.sped, ["validate", str(tmp_path)])
    assert folder.exit_code == 2 and "is a directory" in folder.output
    path = tmp_path / "efd.txt"
    path.write_bytes(b"")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tornado_tasks.sped.validator.validate_file", refuse)
    unreadable = runner.invoke(sped_cli.sped, ["validate", str(path)])
    assert (
        unreadable.exit_code == 2
        and "cannot read" in unreadable.output
        and "Permission denied" in unreadable.output
    )
