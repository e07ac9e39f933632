"""The AFD of Portaria 671: CRC-16/KERMIT, the type-7 hash chain, the golden file and verify-afd."""

from __future__ import annotations

import shutil
import subprocess
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from tornado_tasks.ponto.afd import (
    EmployeeRecord,
    Employer,
    EmployerRecord,
    Header,
    PunchRecord,
    Record,
    chain_hash,
    crc16_kermit,
    local_dh,
    punch_fields,
    render_afd,
)
from tornado_tasks.ponto.identity import cnpj_problem, cpf_problem
from tornado_tasks.ponto.signing import SignatureInvalid, load_signer, sign_detached, verify_detached
from tornado_tasks.ponto.verify import verify_afd

from tornado_core.devstack.certs import make_test_signer_pem

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "ponto" / "AFDBR51202100000111222333000181REP_P.txt"
ACRE = ZoneInfo("America/Rio_Branco")


def at(hour: int, minute: int, day: int = 10) -> datetime:
    return datetime(2025, 3, day, hour, minute, 27, tzinfo=ACRE)


def golden_records() -> tuple[Header, list[Record]]:
    """A REP in Acre (UTC-5): employer, one employee, two online punches and a late offline one."""
    employer = Employer(
        id_type=1,
        id="11222333000181",
        cno_caepf="",
        name="ACME Indústria e Comércio LTDA",
        site="Rua das Flores, 100 - Rio Branco/AC",
    )
    records: list[Record] = [
        EmployerRecord(nsr=1, recorded_at=at(7, 0), responsible_cpf="52998224725", employer=employer),
        EmployeeRecord(
            nsr=2,
            recorded_at=at(7, 5),
            operation="I",
            cpf="12345678909",
            name="José da Conceição",
            responsible_cpf="52998224725",
        ),
    ]
    previous = ""
    for nsr, marked, recorded, offline in (
        (3, at(8, 0), at(8, 0), False),
        (4, at(12, 1), at(12, 1), False),
        (5, at(11, 58), at(12, 40), True),
    ):
        fields = punch_fields(
            nsr=nsr, marked_at=marked, cpf="12345678909", recorded_at=recorded, collector=1, offline=offline
        )
        previous = chain_hash(fields, previous)
        records.append(
            PunchRecord(
                nsr=nsr,
                marked_at=marked,
                cpf="12345678909",
                recorded_at=recorded,
                collector=1,
                offline=offline,
                hash=previous,
            )
        )
    header = Header(
        employer=employer,
        inpi="BR512021000001",
        start=date(2025, 3, 10),
        end=date(2025, 3, 10),
        generated_at=at(9, 0, day=11),
        developer_type=1,
        developer_id="11222333000181",
    )
    return header, records


def golden_bytes() -> bytes:
    header, records = golden_records()
    return render_afd(header, records)


def test_crc16_kermit_check_value() -> None:
    assert crc16_kermit(b"123456789") == 0x2189


def test_type_7_chain_matches_the_reference_vectors() -> None:
    brt = ZoneInfo("America/Sao_Paulo")
    first = punch_fields(
        nsr=1,
        marked_at=datetime(2025, 3, 10, 8, 0, tzinfo=brt),
        cpf="12345678909",
        recorded_at=datetime(2025, 3, 10, 8, 0, tzinfo=brt),
        collector=1,
        offline=False,
    )
    assert first == "00000000172025-03-10T08:00:00-030012345678909 2025-03-10T08:00:00-0300010"
    h1 = chain_hash(first, "")
    assert h1 == "e62e2b13452de8e51e7b7e1962f2e8d1cc61928c8d9ab13da09afe595cb04081"
    second = punch_fields(
        nsr=2,
        marked_at=datetime(2025, 3, 10, 12, 1, tzinfo=brt),
        cpf="12345678909",
        recorded_at=datetime(2025, 3, 10, 12, 40, tzinfo=brt),
        collector=1,
        offline=True,
    )
    assert chain_hash(second, h1) == "c8a5ec111b8b3716de9a17fefcff3033cba03a55b55f749fe456b5e025131397"


def test_offsets_come_from_the_establishments_zone_never_a_fixed_minus_three() -> None:
    instant = datetime(2025, 3, 10, 12, 0, tzinfo=ZoneInfo("UTC"))
    assert local_dh(instant, "America/Sao_Paulo") == "2025-03-10T09:00:00-0300"
    assert local_dh(instant, "America/Rio_Branco") == "2025-03-10T07:00:00-0500"
    assert local_dh(instant, "America/Noronha") == "2025-03-10T10:00:00-0200"


@pytest.mark.parametrize(
    ("cpf", "ok"),
    [("123.456.789-09", True), ("12345678900", False), ("111.111.111-11", False), ("1234567890", False)],
)
def test_cpf_check_digits(cpf: str, ok: bool) -> None:
    assert (cpf_problem(cpf) is None) is ok


def test_cnpj_check_digits() -> None:
    assert cnpj_problem("11.222.333/0001-81") is None
    assert cnpj_problem("11222333000182") == "check digits do not match"


def test_afd_matches_the_golden_file_byte_for_byte() -> None:
    data = golden_bytes()
    assert data == GOLDEN.read_bytes()
    lines = data.decode("iso-8859-1").split("\r\n")
    assert [len(line) for line in lines[:-1]] == [302, 331, 118, 137, 137, 137, 64, 100]
    assert "Indústria".encode("iso-8859-1") in data


def test_golden_file_verifies() -> None:
    report = verify_afd(GOLDEN.read_bytes())
    assert report.ok, report.problems
    assert (report.first_nsr, report.last_nsr, report.chain_checked) == (1, 5, 3)
    assert report.counts == {"2": 1, "3": 0, "4": 0, "5": 1, "6": 0, "7": 3}


def test_an_afd_starting_mid_chain_is_anchored_on_its_first_punch() -> None:
    header, records = golden_records()
    later = [r for r in records if r.nsr >= 4]
    data = render_afd(header, later)
    report = verify_afd(data)
    assert report.ok, report.problems
    assert report.chain_checked == 1 and report.chain_anchor == later[0].hash  # type: ignore[union-attr]
    previous = records[2].hash  # type: ignore[union-attr]
    full = verify_afd(data, previous_hash=previous)
    assert full.ok and full.chain_checked == 2 and full.chain_anchor is None
    assert not verify_afd(data, previous_hash="0" * 64).ok


def tamper(data: bytes, old: str, new: str) -> bytes:
    text = data.decode("iso-8859-1")
    assert old in text
    return text.replace(old, new, 1).encode("iso-8859-1")


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("2025-03-10T11:58:00-0500", "2025-03-10T10:58:00-0500", "hash does not match"),  # a punch moved
        ("José da Conceição", "José da Conceiçãx", "CRC"),  # an employee renamed
        ("0000000000000000039\r", "0000000000000000049\r", "trailer counts"),  # counts forged
        ("000000004", "000000006", "NSR 6 follows 3"),  # a renumbered record
    ],
)
def test_verify_afd_detects_tampering(old: str, new: str, complaint: str) -> None:
    report = verify_afd(tamper(GOLDEN.read_bytes(), old, new))
    assert not report.ok
    assert any(complaint in problem for problem in report.problems), report.problems


def test_verify_afd_detects_a_deleted_punch() -> None:
    lines = GOLDEN.read_bytes().split(b"\r\n")
    del lines[4]
    report = verify_afd(b"\r\n".join(lines))
    assert any("NSR 5 follows 3" in p for p in report.problems)
    assert any("trailer counts" in p for p in report.problems)


def test_detached_cades_signature_verifies_and_catches_any_change() -> None:
    signer = load_signer(make_test_signer_pem())
    data = GOLDEN.read_bytes()
    p7s = sign_detached(data, signer)
    info = verify_detached(data, p7s)
    assert info.cades and "TEST" in info.subject
    assert verify_afd(data, p7s).ok
    with pytest.raises(SignatureInvalid):
        verify_detached(data.replace(b"ACME", b"ACMF"), p7s)


def test_openssl_accepts_the_p7s(tmp_path: Path) -> None:
    assert shutil.which("openssl"), "openssl is needed (bash .ci/bootstrap installs it)"
    data = GOLDEN.read_bytes()
    (tmp_path / "afd.txt").write_bytes(data)
    (tmp_path / "afd.p7s").write_bytes(sign_detached(data, load_signer(make_test_signer_pem())))
    result = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            str(tmp_path / "afd.p7s"),
            "-content",
            str(tmp_path / "afd.txt"),
            "-noverify",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Verification successful" in result.stderr
