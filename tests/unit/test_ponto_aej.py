"""The AEJ of Portaria 671: the golden file byte for byte, the punches' treatment, the verifier's verdicts."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from tornado_tasks.ponto import cli_aej
from tornado_tasks.ponto.aej import (
    Aej,
    AejHeader,
    AejRep,
    Marcacao,
    Vinculo,
    aej_file_name,
    render_aej,
    rep_number,
)
from tornado_tasks.ponto.aej_source import AejPayload, OriginalPunch, ptrp_of, treat
from tornado_tasks.ponto.aej_verify import verify_aej
from tornado_tasks.ponto.afd import Employer
from tornado_tasks.ponto.cli_aej import verify_aej_command
from tornado_tasks.ponto.signing import load_signer, sign_detached
from tornado_tasks.ponto.work_schedule import work_schedule

from tornado_core.devstack.certs import make_test_signer_pem

ACRE = ZoneInfo("America/Rio_Branco")  # UTC-5
JOSE, MARIA = "12345678909", "52998224725"
ADM = work_schedule("ADM", [(time(8), time(12)), (time(13), time(17))])
MEIO = work_schedule("MEIO-PERIODO", [(time(8), time(12))], duration=240)

#: The golden AEJ: every line as the layout writes it (see tasks/ponto/aej.py for the choices).
GOLDEN = [
    "01|1|11222333000181|||ACME Indústria e Comércio LTDA|2025-03-10|2025-03-11|2025-03-12T09:00:00-0500|002",
    "02|1|3|00000512021000001",
    "02|2|3|00000512021000002",
    "03|1|12345678909|José da Conceição",
    "03|2|52998224725|Maria das Dores",
    "04|ADM|480|0800|1200|1300|1700",
    "04|MEIO-PERIODO|240|0800|1200",
    "05|1|2025-03-10T07:58:00-0500|1|E|001|O|ADM|",
    "05|1|2025-03-10T12:01:00-0500|1|S|001|O||",
    "05|1|2025-03-10T13:02:00-0500|2|E|002|O||",
    "05|1|2025-03-10T17:00:00-0500|1|S|002|O||",
    "05|1|2025-03-11T08:03:00-0500|1|E|001|O|ADM|",
    "05|2|2025-03-10T08:00:00-0500|2|E|001|O|MEIO-PERIODO|",
    "05|2|2025-03-10T12:00:00-0500|2|S|001|O||",
    "08|Tornado Ponto|1.0.0|1|11222333000181|Tornado Ponto REP-P|ponto@tornado.invalid",
    "99|1|2|2|2|7|0|0|1",
    "ASSINATURA_DIGITAL_EM_ARQUIVO_P7S".ljust(100),
]


def at(day: int, hour: int, minute: int, second: int = 27) -> datetime:
    return datetime(2025, 3, day, hour, minute, second, tzinfo=ACRE)


def golden_punches() -> list[OriginalPunch]:
    """José's journey of the 10th over two REPs, his lone entry of the 11th, Maria's half day; shuffled."""
    rows = [
        (JOSE, at(10, 13, 2), "rep-b", 7),
        (MARIA, at(10, 8, 0, 5), "rep-b", 3),
        (JOSE, at(10, 7, 58), "rep-a", 3),
        (JOSE, at(11, 8, 3), "rep-a", 9),
        (JOSE, at(10, 17, 0), "rep-a", 8),
        (MARIA, at(10, 12, 0, 1), "rep-b", 9),
        (JOSE, at(10, 12, 1), "rep-a", 5),
    ]
    return [OriginalPunch(cpf, when, when, rep, nsr) for cpf, when, rep, nsr in rows]


def golden_aej() -> Aej:
    codes = {(JOSE, date(2025, 3, 10)): "ADM", (JOSE, date(2025, 3, 11)): "ADM"}
    codes[(MARIA, date(2025, 3, 10))] = "MEIO-PERIODO"
    name = "ACME  Indústria e Comércio LTDA"  # two spaces: free text is collapsed
    employer = Employer(id_type=1, id="11.222.333/0001-81", cno_caepf="", name=name, site="Rio Branco")
    header = AejHeader(
        employer=employer, start=date(2025, 3, 10), end=date(2025, 3, 11), generated_at=at(12, 9, 0)
    )
    vinculos, reps = {JOSE: 1, MARIA: 2}, {"rep-a": 1, "rep-b": 2}
    return Aej(
        header=header,
        reps=[AejRep(1, "BR512021000001"), AejRep(2, "BR512021000002")],
        vinculos=[Vinculo(1, JOSE, "José da Conceição"), Vinculo(2, MARIA, "Maria das Dores")],
        schedules=[ADM, MEIO],
        marcacoes=treat(golden_punches(), vinculos=vinculos, reps=reps, codes=codes),
        ptrp=ptrp_of(1, "11222333000181"),
    )


def golden_bytes() -> bytes:
    return render_aej(golden_aej())


def test_the_aej_matches_the_golden_file_byte_for_byte() -> None:
    data = golden_bytes()

    assert data == "".join(line + "\r\n" for line in GOLDEN).encode("iso-8859-1")
    assert "Indústria".encode("iso-8859-1") in data and b"\r\n\r\n" not in data


def test_punches_alternate_entry_and_exit_per_employee_and_day_the_first_entry_naming_the_schedule() -> None:
    marks = golden_aej().marcacoes

    jose_10 = [(m.kind, m.seq, m.rep, m.schedule) for m in marks if m.vinculo == 1 and m.marked_at.day == 10]
    assert jose_10 == [("E", 1, 1, "ADM"), ("S", 1, 1, ""), ("E", 2, 2, ""), ("S", 2, 1, "")]
    assert [(m.kind, m.seq, m.schedule) for m in marks if m.marked_at.day == 11] == [("E", 1, "ADM")]
    assert {m.source for m in marks} == {"O"}  # only originals: Tornado has no treatment yet


def test_a_journey_is_a_local_calendar_day_of_the_establishments_zone() -> None:
    late = datetime(2025, 3, 11, 4, 30, tzinfo=UTC)  # 23:30 on the 10th in Acre
    punches = [OriginalPunch(JOSE, late, late.astimezone(ACRE), "r", 1)]
    codes = {(JOSE, date(2025, 3, 10)): "NIGHT"}
    (mark,) = treat(punches, vinculos={JOSE: 1}, reps={"r": 1}, codes=codes)
    assert mark.marked_at.isoformat() == "2025-03-10T23:30:00-05:00"
    assert (mark.kind, mark.schedule) == ("E", "NIGHT")


def test_the_golden_file_verifies_and_its_signature_too() -> None:
    data = golden_bytes()
    p7s = sign_detached(data, load_signer(make_test_signer_pem()))

    report = verify_aej(data, p7s)

    assert report.ok, report.problems
    assert report.counts == {"01": 1, "02": 2, "03": 2, "04": 2, "05": 7, "06": 0, "07": 0, "08": 1}
    assert report.period == (date(2025, 3, 10), date(2025, 3, 11))
    assert report.signature is not None and report.signature.cades
    assert report.test_certificate and any("TEST certificate" in w for w in report.warnings)


def test_the_renderer_refuses_what_the_layout_forbids() -> None:
    aej = golden_aej()
    when = aej.marcacoes[0].marked_at
    cases = {
        "needs its work schedule": Marcacao(vinculo=1, marked_at=when, rep=1, kind="E", seq=1),
        "needs a reason": Marcacao(vinculo=1, marked_at=when, rep=1, kind="D", seq=1),
        "not declared in 03": Marcacao(vinculo=9, marked_at=when, rep=1, kind="S", seq=1),
        "not declared in a 04": Marcacao(vinculo=1, marked_at=when, rep=1, kind="E", seq=1, schedule="X"),
        "outside the period": Marcacao(vinculo=1, marked_at=at(12, 8, 0), rep=1, kind="S", seq=1),
    }
    for message, mark in cases.items():
        with pytest.raises(ValueError, match=message):
            render_aej(replace(aej, marcacoes=[mark]))


def test_free_text_loses_the_delimiter_and_line_breaks_and_rep_numbers_are_17_digits() -> None:
    aej = golden_aej()
    renamed = replace(aej, vinculos=[Vinculo(1, JOSE, "José |da\r\nConceição"), aej.vinculos[1]])

    assert "03|1|12345678909|José da Conceição\r\n" in render_aej(renamed).decode("iso-8859-1")
    assert rep_number("BR 51 2021 000001-0") == "00005120210000010"
    with pytest.raises(ValueError, match="1 to 17 digits"):
        rep_number("BR")
    assert aej_file_name("11.222.333/0001-81", date(2025, 3, 1), date(2025, 3, 31)) == (
        "AEJ_11222333000181_2025-03-01_2025-03-31.txt"
    )


def corrupt(old: str, new: str) -> bytes:
    text = golden_bytes().decode("iso-8859-1")
    assert old in text, old
    return text.replace(old, new, 1).encode("iso-8859-1")


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("05|1|2025-03-10T12:01", "05|7|2025-03-10T12:01", "vínculo '7' is not declared"),
        ("0500|2|E|002", "0500|5|E|002", "REP '5' is not declared"),
        (
            "|O|ADM|\r\n05|1|2025-03-10T12",
            "|O|NOPE|\r\n05|1|2025-03-10T12",
            "work schedule 'NOPE' is not declared",
        ),
        ("|O|MEIO-PERIODO|", "|O||", "first entry names no work schedule"),
        ("05|1|2025-03-11T08:03", "05|1|2025-03-12T08:03", "outside the period"),
        ("2025-03-10T17:00:00-0500", "2025-03-10T17:00:31-0500", "is not a valid date"),
        ("99|1|2|2|2|7|", "99|1|2|2|2|6|", "trailer counts '6' records 05, the file has 7"),
        ("03|2|52998224725", "03|2|52998224726", "CPF '52998224726' is not valid"),
        ("03|2|52998224725", "03|1|52998224725", "idtVinculoAej 1 is declared twice"),
        (
            "|1|S|001|O||\r\n05|1|2025-03-10T13",
            "|1|S|001|O|\r\n05|1|2025-03-10T13",
            "must have 9 fields, not 8",
        ),
        ("|1|S|001|O||\r\n05|1|2025-03-10T13", "|1|D|001|O||\r\n05|1|2025-03-10T13", "needs a reason"),
        ("04|ADM|480|0800|1200|1300|1700", "04|ADM|480|0800|1200|1300", "hhmm pairs"),
        ("04|ADM|480|0800|1200|1300|1700", "04|ADM|480|0800|1200|1300|2460", "hhmm pairs"),
        ("02|2|3|00000512021000002", "02|2|3|BR512021000002", "nrRep 'BR512021000002' must have 17 digits"),
        ("|2025-03-10|2025-03-11|", "|2025-03-11|2025-03-10|", "is not two dates in order"),
        ("T09:00:00-0500|002", "T09:00:00-0500|009", "layout version '009'"),
        (
            "08|Tornado Ponto|1.0.0|1|11222333000181|",
            "08|Tornado Ponto|1.0.0|1|11222333000182|",
            "developer id",
        ),
    ],
)
def test_the_verifier_rejects_each_kind_of_corruption(old: str, new: str, complaint: str) -> None:
    report = verify_aej(corrupt(old, new))

    assert not report.ok
    assert any(complaint in problem for problem in report.problems), report.problems


def test_the_verifier_rejects_records_out_of_order_missing_or_badly_ended() -> None:
    lines = golden_bytes().split(b"\r\n")
    swapped = lines[:]
    swapped[3], swapped[5] = swapped[5], swapped[3]  # a 04 record before the 03 records
    no_header = lines[1:]
    no_marker = [*lines[:-2], b""]

    assert any("out of order" in p for p in verify_aej(b"\r\n".join(swapped)).problems)
    assert any("start with one 01" in p for p in verify_aej(b"\r\n".join(no_header)).problems)
    assert any("ASSINATURA_DIGITAL" in p for p in verify_aej(b"\r\n".join(no_marker)).problems)
    assert any("CR/LF" in p for p in verify_aej(golden_bytes().replace(b"\r\n", b"\n", 3)).problems)


def test_the_verifier_rejects_a_signature_of_other_bytes() -> None:
    data = golden_bytes()
    p7s = sign_detached(data, load_signer(make_test_signer_pem()))

    report = verify_aej(data.replace(b"|0800|1200|1300|1700", b"|0700|1200|1300|1700"), p7s)

    assert any("signature:" in p for p in report.problems), report.problems


def test_verify_aej_command_finds_the_p7s_next_to_the_file(tmp_path: Path) -> None:
    data = golden_bytes()
    (tmp_path / "AEJ.txt").write_bytes(data)
    (tmp_path / "AEJ.p7s").write_bytes(sign_detached(data, load_signer(make_test_signer_pem())))

    ok = CliRunner().invoke(verify_aej_command, [str(tmp_path / "AEJ.txt")])
    strict = CliRunner().invoke(verify_aej_command, [str(tmp_path / "AEJ.txt"), "--require-icp-brasil"])
    (tmp_path / "AEJ.p7s").unlink()
    unsigned = CliRunner().invoke(verify_aej_command, [str(tmp_path / "AEJ.txt")])

    assert ok.exit_code == 0, ok.output
    assert "05: 7" in ok.output and "valid CAdES-BES" in ok.output and "WARNING TEST certificate" in ok.output
    assert strict.exit_code == 1 and "not ICP-Brasil" in strict.output
    assert unsigned.exit_code == 1 and "no .p7s next to AEJ.txt" in unsigned.output


def test_openssl_accepts_the_aej_p7s(tmp_path: Path) -> None:
    assert shutil.which("openssl"), "openssl is needed (bash .ci/bootstrap installs it)"
    data = golden_bytes()
    (tmp_path / "aej.txt").write_bytes(data)
    (tmp_path / "aej.p7s").write_bytes(sign_detached(data, load_signer(make_test_signer_pem())))
    result = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp_path / "aej.p7s"),
         "-content", str(tmp_path / "aej.txt"), "-noverify", "-out", "/dev/null"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


class FakeClient:
    """The API as ``tornado ponto aej`` sees it: a job queued, then finished as ``outcome`` says."""

    def __init__(self, outcome: dict[str, object]) -> None:
        self.outcome = outcome
        self.submitted: list[tuple[str, dict[str, object]]] = []

    def __call__(self, api_url: str, token: str) -> FakeClient:
        return self

    def submit(self, task: str, payload: dict[str, object]) -> dict[str, object]:
        self.submitted.append((task, payload))
        return {"id": "job-1", "status": "queued"}

    def wait(self, job_id: str, *, timeout: float) -> dict[str, object]:
        return {"id": job_id, **self.outcome}


@pytest.mark.parametrize(
    ("outcome", "exit_code", "said"),
    [
        (
            {"status": "succeeded", "result": {"key": "ponto/aej/acme/AEJ.txt"}},
            0,
            '"key": "ponto/aej/acme/AEJ.txt"',
        ),
        ({"status": "dead", "error": "CPF 123 has no work schedule"}, 1, "job-1 dead: CPF 123 has no work"),
    ],
)
def test_the_aej_command_queues_the_job_and_reports_its_end(
    monkeypatch: pytest.MonkeyPatch, outcome: dict[str, object], exit_code: int, said: str
) -> None:
    client = FakeClient(outcome)
    monkeypatch.setattr(cli_aej, "TornadoClient", client)
    arguments = ["acme-sp", "--start", "2025-03-01", "--end", "2025-03-31", "--wait", "5", "--token", "t"]

    result = CliRunner().invoke(cli_aej.request_aej, arguments)

    assert result.exit_code == exit_code, result.output
    assert "ponto.aej job job-1 (queued)" in result.output and said in result.output
    ((task, payload),) = client.submitted
    assert task == "ponto.aej"
    assert AejPayload.model_validate(payload) == AejPayload(
        establishment="acme-sp", start=date(2025, 3, 1), end=date(2025, 3, 31)
    )
