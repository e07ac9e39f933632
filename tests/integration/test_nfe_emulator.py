"""The local SEFAZ emulator, as a real process on 127.0.0.1, driven over HTTP(S) like SEFAZ would be.

One emulator process serves the module (reset before each test); another, with mutual TLS,
serves the TLS tests. Every answer is unwrapped with :mod:`tornado_tasks.nfe.soap` and checked
against the official XSD before the test looks at it. Signed documents come from the project's
builder and signer, with A1 certificates of a throwaway :class:`TestAuthority`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from tornado_tasks.nfe import soap
from tornado_tasks.nfe.certificates import A1Certificate, TestAuthority
from tornado_tasks.nfe.xsd import schema_errors

from tests import nfe_requests as rq
from tests.nfe_samples import ISSUER_CNPJ, new_a1

pytestmark = pytest.mark.integration

N = {"n": soap.NFE_NS}
OTHER_CNPJ = "11222333000181"
START_TIMEOUT = 60.0


# --- the emulator process and its client -------------------------------------------------------


@dataclass
class Reply:
    """An HTTP answer."""

    status: int
    content_type: str
    body: bytes


class Emulator:
    """Talks to a running emulator: SOAP calls, raw posts and the admin API."""

    def __init__(self, info: dict[str, Any], context: ssl.SSLContext | None = None) -> None:
        self.info = info
        self.context = context

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection(
                "127.0.0.1", self.info["port"], timeout=timeout, context=self.context
            )
        return http.client.HTTPConnection("127.0.0.1", self.info["port"], timeout=timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None, *,
        timeout: float = 30.0,
    ) -> Reply:  # fmt: skip
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.getheader("Content-Type", ""), response.read())
        finally:
            conn.close()

    def post(self, service: str, payload: bytes, *, timeout: float = 30.0) -> Reply:
        """POST ``payload`` to ``service`` as the transmission client does."""
        headers = {"Content-Type": soap.content_type(service)}
        return self.request(
            "POST", soap.SERVICES[service].path, soap.wrap(service, payload), headers, timeout=timeout
        )

    def call(self, service: str, payload: bytes) -> Any:
        """The ``ret*`` answer of ``service`` to ``payload``, checked: HTTP 200, SOAP 1.2, valid XSD."""
        reply = self.post(service, payload)
        assert reply.status == 200, reply.body
        assert reply.content_type.startswith("application/soap+xml")
        answer = soap.unwrap_response(reply.body, expect=service)
        assert schema_errors(answer) == [], answer
        root = etree.fromstring(answer)
        assert etree.QName(root).localname == soap.SERVICES[service].response
        return root

    def admin(self, method: str, path: str, data: dict[str, Any] | None = None) -> tuple[int, Any]:
        body = None if data is None else json.dumps(data).encode()
        reply = self.request(method, f"/emulator/{path}", body, {"Content-Type": "application/json"})
        return reply.status, json.loads(reply.body)

    def ok(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        status, answer = self.admin(method, path, data)
        assert status in (200, 201), answer
        return answer

    def script(self, scenario: str, count: int = 1, **target: Any) -> None:
        self.ok("POST", "scripts", {"scenario": scenario, "count": count, **target})

    def requests(self, service: str | None = None) -> list[dict[str, Any]]:
        return list(self.ok("GET", "requests" + (f"?service={service}" if service else ""))["requests"])

    def wait_for(self, seq: int, outcome: str) -> dict[str, Any]:
        """The request ``seq`` once its outcome is ``outcome`` (polled, bounded)."""
        deadline = time.monotonic() + 30
        while True:
            found = [r for r in self.requests() if r["seq"] == seq]
            if found and found[0]["outcome"] == outcome:
                return found[0]
            assert time.monotonic() < deadline, f"request {seq} never became {outcome}: {found}"
            time.sleep(0.02)


@contextlib.contextmanager
def emulator_process(folder: Path, *arguments: str) -> Iterator[dict[str, Any]]:
    """``python -m tornado_tasks.nfe.emulator --port 0`` until the block ends; yields its ready file."""
    ready = folder / "ready.json"
    log = folder / "emulator.log"
    command = [sys.executable, "-m", "tornado_tasks.nfe.emulator", "--port", "0", "--ready-file", str(ready)]
    with log.open("wb") as output:
        process = subprocess.Popen([*command, *arguments], stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.exists():
            assert process.poll() is None, f"the emulator exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the emulator did not start:\n{log.read_text()}"
            time.sleep(0.05)
        yield json.loads(ready.read_text())
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority.create()


@pytest.fixture(scope="module")
def a1(authority: TestAuthority) -> A1Certificate:
    return new_a1(authority)


@pytest.fixture(scope="module")
def other_a1(authority: TestAuthority) -> A1Certificate:
    return new_a1(authority, OTHER_CNPJ)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with emulator_process(tmp_path_factory.mktemp("emulator")) as info:
        yield Emulator(info)


@pytest.fixture(name="sefaz")
def sefaz_fixture(running: Emulator) -> Emulator:
    """The module's emulator, reset."""
    running.ok("POST", "reset")
    return running


def text(root: Any, path: str) -> str:
    found = root.findtext(path, None, N)
    assert found is not None, f"no {path} in {etree.tostring(root)!r}"
    return str(found)


def authorize(sefaz: Emulator, nfe: bytes) -> Any:
    """Send one NF-e synchronously; the retEnviNFe (104 asserted)."""
    answer = sefaz.call("NFeAutorizacao4", rq.envi_nfe([nfe]))
    assert text(answer, "n:cStat") == "104"
    return answer


# --- status and the SOAP layer ----------------------------------------------------------------------


def test_status_is_107_and_the_process_announced_itself(sefaz: Emulator) -> None:
    answer = sefaz.call("NFeStatusServico4", rq.cons_stat_serv(41))
    assert (text(answer, "n:cStat"), text(answer, "n:cUF"), text(answer, "n:tMed")) == ("107", "41", "1")
    assert sefaz.info["url"] == f"http://127.0.0.1:{sefaz.info['port']}" and not sefaz.info["tls"]
    assert sefaz.ok("GET", "health")["services"]["NFeRecepcaoEvento4"] == "/ws/nferecepcaoevento4.asmx"


@pytest.mark.parametrize(
    ("content_type", "envelope", "status", "message"),
    [
        ("text/xml; charset=utf-8", None, 415, "application/soap+xml"),
        (soap.content_type("NFeAutorizacao4"), None, 400, "SOAP action"),
        (None, soap.wrap("NFeAutorizacao4", rq.cons_stat_serv()), 400, "this endpoint is NFeStatusServico4"),
        (None, b"<not-soap/>", 400, "not a SOAP envelope"),
        (None, b"<broken", 400, "not well-formed"),
    ],
    ids=["soap11-content-type", "other-action", "other-service", "not-soap", "not-xml"],
)
def test_a_malformed_request_gets_a_sender_fault(
    sefaz: Emulator, content_type: str | None, envelope: bytes | None, status: int, message: str
) -> None:
    headers = {"Content-Type": content_type or soap.content_type("NFeStatusServico4")}
    body = envelope or soap.wrap("NFeStatusServico4", rq.cons_stat_serv())
    reply = sefaz.request("POST", "/ws/nfestatusservico4.asmx", body, headers)
    assert reply.status == status
    with pytest.raises(soap.SoapFault, match=re.escape(message)) as caught:
        soap.unwrap_response(reply.body)
    assert caught.value.code == "Sender"
    (logged,) = sefaz.requests()
    assert (logged["outcome"], logged["http_status"]) == ("fault", status)


def test_unknown_paths_and_methods_are_refused(sefaz: Emulator) -> None:
    assert sefaz.request("POST", "/ws/nfedistribuicaodfe.asmx", b"<x/>").status == 404
    assert sefaz.request("GET", "/ws/nfeautorizacao4.asmx").status == 405


def test_a_message_of_the_wrong_kind_fails_the_schema(sefaz: Emulator) -> None:
    answer = sefaz.call("NFeInutilizacao4", rq.cons_stat_serv())
    assert text(answer, "n:infInut/n:cStat") == "215"
    assert "takes inutNFe" in text(answer, "n:infInut/n:xMotivo")


# --- authorisation -------------------------------------------------------------------------------


def test_a_sync_lote_is_authorised_with_protocol_and_digest(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, key = rq.signed_nfe(a1, number=10)
    answer = authorize(sefaz, nfe)
    protocol = answer.find("n:protNFe/n:infProt", N)
    assert (text(protocol, "n:cStat"), text(protocol, "n:chNFe")) == ("100", key)
    number = text(protocol, "n:nProt")
    assert len(number) == 15 and number.isdigit() and protocol.get("Id") == f"ID{number}"
    assert text(protocol, "n:digVal") == rq.digest_of(nfe)
    assert text(protocol, "n:dhRecbto").endswith("-03:00")
    (authorized,) = sefaz.ok("GET", "documents")["authorized"]
    assert (authorized["chNFe"], authorized["nProt"], authorized["number"]) == (key, number, 10)


def test_the_same_key_again_is_204_naming_the_first_protocol(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, _ = rq.signed_nfe(a1, number=11)
    first = text(authorize(sefaz, nfe), "n:protNFe/n:infProt/n:nProt")
    again = authorize(sefaz, nfe).find("n:protNFe/n:infProt", N)
    assert text(again, "n:cStat") == "204"
    assert f"[nProt:{first}]" in text(again, "n:xMotivo")
    assert again.find("n:nProt", N) is None


def test_the_same_number_under_another_key_is_539(sefaz: Emulator, a1: A1Certificate) -> None:
    first, first_key = rq.signed_nfe(a1, number=12)
    second, second_key = rq.signed_nfe(a1, number=12, random_code=12345678)
    assert first_key != second_key
    authorize(sefaz, first)
    rejected = authorize(sefaz, second).find("n:protNFe/n:infProt", N)
    assert text(rejected, "n:cStat") == "539"
    assert first_key in text(rejected, "n:xMotivo")


def test_an_xsd_failure_rejects_the_whole_lote_with_225(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, _ = rq.signed_nfe(a1, number=13)
    broken = nfe.replace(b"<natOp>Venda de mercadoria</natOp>", b"", 1)
    answer = sefaz.call("NFeAutorizacao4", rq.envi_nfe([broken]))
    assert text(answer, "n:cStat") == "225"
    assert answer.find("n:protNFe", N) is None
    assert sefaz.ok("GET", "documents")["authorized"] == []


def test_a_lote_above_500_kb_is_214(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, _ = rq.signed_nfe(a1, number=49)
    padded = rq.envi_nfe([nfe]).replace(b"<idLote>", b"<!--" + b"x" * 520_000 + b"--><idLote>", 1)
    answer = sefaz.call("NFeAutorizacao4", padded)
    assert (text(answer, "n:cStat"), answer.find("n:protNFe", N)) == ("214", None)


def test_a_bad_signature_is_297_in_the_protocol(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, key = rq.signed_nfe(a1, number=14)
    protocol = authorize(sefaz, rq.tampered(nfe)).find("n:protNFe/n:infProt", N)
    assert (text(protocol, "n:cStat"), text(protocol, "n:chNFe")) == ("297", key)
    assert text(sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key)), "n:cStat") == "217"


def test_the_reject_scenario_refuses_a_valid_nfe_with_the_scripted_code(
    sefaz: Emulator, a1: A1Certificate
) -> None:
    sefaz.script("reject", 1, cnpj=ISSUER_CNPJ, status=297)
    sefaz.script("reject", 1, cnpj=ISSUER_CNPJ, status=225)
    nfe, key = rq.signed_nfe(a1, number=31)
    protocol = authorize(sefaz, nfe).find("n:protNFe/n:infProt", N)
    assert (text(protocol, "n:cStat"), text(protocol, "n:chNFe")) == ("297", key)
    lote = sefaz.call("NFeAutorizacao4", rq.envi_nfe([nfe]))
    assert text(lote, "n:cStat") == "225" and lote.find("n:protNFe", N) is None
    assert text(sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key)), "n:cStat") == "217"
    wrong = {"scenario": "reject", "status": 100, "cnpj": ISSUER_CNPJ}
    status, answer = sefaz.admin("POST", "scripts", wrong)
    assert status == 400 and "status of reject" in answer["error"]


def test_a_key_that_disagrees_with_ide_is_502(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, _ = rq.signed_nfe(a1, number=15)
    protocol = authorize(sefaz, rq.resigned(nfe, a1, nNF="16")).find("n:protNFe/n:infProt", N)
    assert text(protocol, "n:cStat") == "502"
    assert "nNF" in text(protocol, "n:xMotivo")


def test_a_sync_lote_of_two_is_452_and_an_async_lote_judges_each(sefaz: Emulator, a1: A1Certificate) -> None:
    (one, key_one), (two, key_two) = rq.signed_nfe(a1, number=17), rq.signed_nfe(a1, number=18)
    assert text(sefaz.call("NFeAutorizacao4", rq.envi_nfe([one, two])), "n:cStat") == "452"
    authorize(sefaz, one)
    receipt = sefaz.call("NFeAutorizacao4", rq.envi_nfe([one, two], synchronous=False))
    assert (text(receipt, "n:cStat"), text(receipt, "n:infRec/n:tMed")) == ("103", "1")
    number = text(receipt, "n:infRec/n:nRec")
    assert len(number) == 15 and number.isdigit()
    assert text(sefaz.call("NFeRetAutorizacao4", rq.cons_reci_nfe(number)), "n:cStat") == "105"
    done = sefaz.call("NFeRetAutorizacao4", rq.cons_reci_nfe(number))
    assert (text(done, "n:cStat"), text(done, "n:nRec")) == ("104", number)
    verdicts = [(text(p, "n:chNFe"), text(p, "n:cStat")) for p in done.iterfind("n:protNFe/n:infProt", N)]
    assert verdicts == [(key_one, "204"), (key_two, "100")]


def test_the_async_scenario_answers_105_for_n_polls_then_104(sefaz: Emulator, a1: A1Certificate) -> None:
    sefaz.script("async", polls=3, service="NFeAutorizacao4")
    (nfe, key), (other, other_key) = rq.signed_nfe(a1, number=19), rq.signed_nfe(a1, number=20)
    receipt = sefaz.call("NFeAutorizacao4", rq.envi_nfe([nfe, other], synchronous=True))
    assert text(receipt, "n:cStat") == "103"
    query = rq.cons_reci_nfe(text(receipt, "n:infRec/n:nRec"))
    answers = [text(sefaz.call("NFeRetAutorizacao4", query), "n:cStat") for _ in range(4)]
    assert answers == ["105", "105", "105", "104"]
    logged = sefaz.requests("NFeRetAutorizacao4")
    assert [r["document_cStats"] for r in logged] == [[], [], [], ["100", "100"]]
    assert all(r["keys"] == [key, other_key] and r["cnpj"] == ISSUER_CNPJ for r in logged)
    assert text(sefaz.call("NFeRetAutorizacao4", rq.cons_reci_nfe("351999999999999")), "n:cStat") == "106"


# --- consultation, events, inutilização ---------------------------------------------------------


def test_consult_is_217_then_100_then_101_with_the_event(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, key = rq.signed_nfe(a1, number=20)
    assert text(sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key)), "n:cStat") == "217"
    protocol = text(authorize(sefaz, nfe), "n:protNFe/n:infProt/n:nProt")
    found = sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key))
    assert (text(found, "n:cStat"), text(found, "n:protNFe/n:infProt/n:nProt")) == ("100", protocol)
    events = sefaz.call("NFeRecepcaoEvento4", rq.env_evento([rq.cancellation(a1, key, protocol)]))
    assert (text(events, "n:cStat"), text(events, "n:retEvento/n:infEvento/n:cStat")) == ("128", "135")
    cancelled = sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key))
    assert text(cancelled, "n:cStat") == "101"
    assert text(cancelled, "n:procEventoNFe/n:evento/n:infEvento/n:tpEvento") == "110111"
    registered = text(events, "n:retEvento/n:infEvento/n:nProt")
    assert text(cancelled, "n:procEventoNFe/n:retEvento/n:infEvento/n:nProt") == registered != protocol
    bad_key = key[:-1] + str((int(key[-1]) + 1) % 10)
    assert text(sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(bad_key)), "n:cStat") == "236"


def cancel(sefaz: Emulator, event: bytes) -> tuple[str, str]:
    answer = sefaz.call("NFeRecepcaoEvento4", rq.env_evento([event]))
    info = answer.find("n:retEvento/n:infEvento", N)
    return text(info, "n:cStat"), text(info, "n:xMotivo")


def test_cancellation_rules(sefaz: Emulator, a1: A1Certificate, other_a1: A1Certificate) -> None:
    nfe, key = rq.signed_nfe(a1, number=21)
    assert cancel(sefaz, rq.cancellation(a1, key, "135260000000999"))[0] == "494"  # not authorised here
    protocol = text(authorize(sefaz, nfe), "n:protNFe/n:infProt/n:nProt")
    wrong = str(int(protocol) + 1)
    assert cancel(sefaz, rq.cancellation(a1, key, wrong))[0] == "222"
    assert cancel(sefaz, rq.cancellation(other_a1, key, protocol, cnpj=OTHER_CNPJ))[0] == "574"
    assert cancel(sefaz, rq.tampered_event(rq.cancellation(a1, key, protocol)))[0] == "297"
    assert cancel(sefaz, rq.cancellation(a1, key, protocol))[0] == "135"
    assert cancel(sefaz, rq.cancellation(a1, key, protocol))[0] == "573"


def test_cancelling_after_the_window_is_501(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, key = rq.signed_nfe(a1, number=22)
    protocol = text(authorize(sefaz, nfe), "n:protNFe/n:infProt/n:nProt")
    assert sefaz.ok("PUT", "clock", {"offset_seconds": 25 * 3600})["offset_seconds"] == 25 * 3600
    assert cancel(sefaz, rq.cancellation(a1, key, protocol))[0] == "501"
    sefaz.ok("PUT", "settings", {"cancel_window_seconds": 48 * 3600})
    assert cancel(sefaz, rq.cancellation(a1, key, protocol))[0] == "135"


def test_a_too_short_justification_fails_the_event_schema(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, key = rq.signed_nfe(a1, number=23)
    protocol = text(authorize(sefaz, nfe), "n:protNFe/n:infProt/n:nProt")
    answer = sefaz.call(
        "NFeRecepcaoEvento4", rq.env_evento([rq.cancellation(a1, key, protocol, reason="curta")])
    )
    assert text(answer, "n:cStat") == "215"


def test_correction_letters_need_an_increasing_sequence(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, key = rq.signed_nfe(a1, number=24)
    protocol = text(authorize(sefaz, nfe), "n:protNFe/n:infProt/n:nProt")
    letters = [
        (1, "Corrige o endereco de entrega"),
        (2, "Corrige o complemento do endereco"),
        (2, "Repetida!!!!!!!!"),
    ]
    outcomes = []
    for sequence, wording in letters:
        answer = sefaz.call(
            "NFeRecepcaoEvento4", rq.env_evento([rq.correction(a1, key, sequence=sequence, text=wording)])
        )
        info = answer.find("n:retEvento/n:infEvento", N)
        outcomes.append((text(info, "n:cStat"), text(info, "n:nSeqEvento")))
    assert outcomes == [("135", "1"), ("135", "2"), ("573", "2")]
    found = sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key))
    assert text(found, "n:cStat") == "100"
    assert len(found.findall("n:procEventoNFe", N)) == 2
    assert cancel(sefaz, rq.cancellation(a1, key, protocol))[0] == "135"
    late = rq.env_evento([rq.correction(a1, key, sequence=3, text="Depois do cancelamento")])
    assert text(sefaz.call("NFeRecepcaoEvento4", late), "n:retEvento/n:infEvento/n:cStat") == "580"


def inutilize(sefaz: Emulator, a1: A1Certificate, first: int, last: int) -> Any:
    answer = sefaz.call("NFeInutilizacao4", rq.inut_nfe(a1, cnpj=ISSUER_CNPJ, first=first, last=last))
    return answer.find("n:infInut", N)


def test_inutilizacao_rules(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, _ = rq.signed_nfe(a1, number=30)
    authorize(sefaz, nfe)
    assert text(inutilize(sefaz, a1, 28, 31), "n:cStat") == "241"
    done = inutilize(sefaz, a1, 31, 35)
    assert (text(done, "n:cStat"), text(done, "n:nNFIni"), text(done, "n:nNFFin")) == ("102", "31", "35")
    assert len(text(done, "n:nProt")) == 15
    assert text(inutilize(sefaz, a1, 31, 35), "n:cStat") == "563"
    assert text(inutilize(sefaz, a1, 35, 40), "n:cStat") == "256"
    assert text(inutilize(sefaz, a1, 41, 40), "n:cStat") == "224"
    assert sefaz.ok("GET", "documents")["inutilized"][0]["first"] == 31
    burned, _ = rq.signed_nfe(a1, number=33)
    assert text(authorize(sefaz, burned), "n:protNFe/n:infProt/n:cStat") == "206"


# --- scenarios -------------------------------------------------------------------------------------


def test_throttle_and_unavailable_answer_every_service(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, key = rq.signed_nfe(a1, number=40)
    sefaz.ok("PUT", "scenario", {"scenario": "throttle"})
    assert text(sefaz.call("NFeAutorizacao4", rq.envi_nfe([nfe])), "n:cStat") == "656"
    assert text(sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key)), "n:cStat") == "656"
    sefaz.ok("PUT", "scenario", {"scenario": "unavailable", "status": 109})
    assert text(sefaz.call("NFeStatusServico4", rq.cons_stat_serv()), "n:cStat") == "109"
    assert text(sefaz.call("NFeRetAutorizacao4", rq.cons_reci_nfe("351000000000001")), "n:cStat") == "109"
    assert (
        text(sefaz.call("NFeRecepcaoEvento4", rq.env_evento([rq.cancellation(a1, key, "1" * 15)])), "n:cStat")
        == "109"
    )
    inut = sefaz.call("NFeInutilizacao4", rq.inut_nfe(a1, cnpj=ISSUER_CNPJ, first=1, last=2))
    assert text(inut, "n:infInut/n:cStat") == "109"
    sefaz.ok("PUT", "scenario", {"scenario": "unavailable"})
    assert text(sefaz.call("NFeStatusServico4", rq.cons_stat_serv()), "n:cStat") == "108"
    assert sefaz.ok("GET", "documents")["authorized"] == []


def test_scripts_are_consumed_in_order_then_the_default_applies(
    sefaz: Emulator, a1: A1Certificate, other_a1: A1Certificate
) -> None:
    sefaz.script("throttle", 2, cnpj=ISSUER_CNPJ)
    sefaz.script("unavailable", 1, service="NFeAutorizacao4")
    mine, _ = rq.signed_nfe(a1, number=41)
    theirs, _ = rq.signed_nfe(other_a1, number=41, cnpj=OTHER_CNPJ)
    statuses = [
        text(sefaz.call("NFeAutorizacao4", rq.envi_nfe([mine])), "n:cStat"),  # CNPJ script 1/2, first
        text(sefaz.call("NFeAutorizacao4", rq.envi_nfe([theirs])), "n:cStat"),  # the service script
        text(sefaz.call("NFeStatusServico4", rq.cons_stat_serv()), "n:cStat"),  # no CNPJ: default
        text(sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe("3" * 44)), "n:cStat"),  # another CNPJ
        text(sefaz.call("NFeAutorizacao4", rq.envi_nfe([mine])), "n:cStat"),  # CNPJ script 2/2
        text(sefaz.call("NFeAutorizacao4", rq.envi_nfe([mine])), "n:cStat"),  # default again
    ]
    assert statuses == ["656", "108", "107", "236", "656", "104"]
    assert [r["scenario"] for r in sefaz.requests()] == [
        "throttle", "unavailable", "authorize", "authorize", "throttle", "authorize",
    ]  # fmt: skip
    assert sefaz.ok("GET", "scenario")["scripts"] == []


def test_a_cnpj_script_reaches_every_service_that_names_the_cnpj(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, key = rq.signed_nfe(a1, number=51)
    sefaz.script("unavailable", 3, cnpj=ISSUER_CNPJ)
    inutilization = rq.inut_nfe(a1, cnpj=ISSUER_CNPJ, first=60, last=61)
    assert text(sefaz.call("NFeStatusServico4", rq.cons_stat_serv()), "n:cStat") == "107"
    assert text(sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key)), "n:cStat") == "108"
    assert text(sefaz.call("NFeInutilizacao4", inutilization), "n:infInut/n:cStat") == "108"
    event = rq.env_evento([rq.cancellation(a1, key, "1" * 15)])
    assert text(sefaz.call("NFeRecepcaoEvento4", event), "n:cStat") == "108"
    assert [r["cnpj"] for r in sefaz.requests()] == [None, ISSUER_CNPJ, ISSUER_CNPJ, ISSUER_CNPJ]
    assert text(authorize(sefaz, nfe), "n:protNFe/n:infProt/n:cStat") == "100"


def test_slow_answers_later_without_blocking_other_requests(sefaz: Emulator, a1: A1Certificate) -> None:
    sefaz.script("slow", delay=5, service="NFeAutorizacao4")
    nfe, key = rq.signed_nfe(a1, number=42)
    replies: list[Reply] = []
    sender = threading.Thread(
        target=lambda: replies.append(sefaz.post("NFeAutorizacao4", rq.envi_nfe([nfe])))
    )
    sender.start()
    try:
        (held,) = [r for r in _poll(sefaz, lambda rs: [r for r in rs if r["service"] == "NFeAutorizacao4"])]
        assert held["outcome"] == "pending" and held["scenario"] == "slow"
        assert text(sefaz.call("NFeStatusServico4", rq.cons_stat_serv()), "n:cStat") == "107"
        assert [r["outcome"] for r in sefaz.requests("NFeAutorizacao4")] == ["pending"]
    finally:
        sender.join(timeout=60)
    answer = etree.fromstring(soap.unwrap_response(replies[0].body))
    assert (
        text(answer, "n:protNFe/n:infProt/n:cStat") == "100"
        and text(answer, "n:protNFe/n:infProt/n:chNFe") == key
    )


def test_slow_still_processes_for_a_client_that_gave_up(sefaz: Emulator, a1: A1Certificate) -> None:
    sefaz.script("slow", delay=1, service="NFeAutorizacao4")
    nfe, key = rq.signed_nfe(a1, number=48)
    with pytest.raises((TimeoutError, socket.timeout)):
        sefaz.post("NFeAutorizacao4", rq.envi_nfe([nfe]), timeout=0.2)
    (held,) = sefaz.requests("NFeAutorizacao4")
    assert sefaz.wait_for(held["seq"], "abandoned")["document_cStats"] == ["100"]
    assert text(sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key)), "n:cStat") == "100"


def _poll(sefaz: Emulator, pick: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while not (found := pick(sefaz.requests())):
        assert time.monotonic() < deadline, "the request never arrived"
        time.sleep(0.02)
    return list(found)


def test_timeout_holds_then_drops_and_processes_nothing(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, key = rq.signed_nfe(a1, number=43)
    sefaz.script("timeout", delay=0.2, service="NFeAutorizacao4")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        sefaz.post("NFeAutorizacao4", rq.envi_nfe([nfe]))
    sefaz.script("timeout", delay=600, service="NFeAutorizacao4")
    with pytest.raises((TimeoutError, socket.timeout)):
        sefaz.post("NFeAutorizacao4", rq.envi_nfe([nfe]), timeout=0.5)
    held = sefaz.requests("NFeAutorizacao4")[-1]
    assert sefaz.wait_for(held["seq"], "dropped")["cStat"] is None  # released when the client left
    assert text(sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key)), "n:cStat") == "217"


def test_server_error_is_http_500_with_a_soap_fault(sefaz: Emulator, a1: A1Certificate) -> None:
    sefaz.script("server_error", service="NFeAutorizacao4")
    nfe, key = rq.signed_nfe(a1, number=44)
    reply = sefaz.post("NFeAutorizacao4", rq.envi_nfe([nfe]))
    assert reply.status == 500
    with pytest.raises(soap.SoapFault) as caught:
        soap.unwrap_response(reply.body)
    assert caught.value.code == "Receiver"
    assert text(sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key)), "n:cStat") == "217"


@pytest.mark.parametrize("lost", ["drop", "http_502"])
def test_a_lost_answer_still_authorises_and_consult_finds_it(
    sefaz: Emulator, a1: A1Certificate, lost: str
) -> None:
    sefaz.script("lost_answer", lost=lost, cnpj=ISSUER_CNPJ, service="NFeAutorizacao4")
    nfe, key = rq.signed_nfe(a1, number=45)
    if lost == "drop":
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            sefaz.post("NFeAutorizacao4", rq.envi_nfe([nfe]))
    else:
        reply = sefaz.post("NFeAutorizacao4", rq.envi_nfe([nfe]))
        assert reply.status == 502 and b"protNFe" not in reply.body
    found = sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key))
    assert (text(found, "n:cStat"), text(found, "n:protNFe/n:infProt/n:cStat")) == ("100", "100")
    sent = [r for r in sefaz.requests() if r["service"] == "NFeAutorizacao4"]
    assert [(r["keys"], r["cStat"], r["document_cStats"], r["outcome"]) for r in sent] == [
        ([key], "104", ["100"], "dropped" if lost == "drop" else "http_502")
    ]


# --- the admin API ---------------------------------------------------------------------------------


def test_the_request_log_shows_what_was_sent_and_can_include_the_xml(
    sefaz: Emulator, a1: A1Certificate
) -> None:
    nfe, key = rq.signed_nfe(a1, number=46)
    authorize(sefaz, nfe)
    sefaz.call("NFeConsultaProtocolo4", rq.cons_sit_nfe(key))
    first, second = sefaz.requests()
    assert (first["service"], first["keys"], first["cnpj"], first["cStat"]) == (
        "NFeAutorizacao4", [key], ISSUER_CNPJ, "104",
    )  # fmt: skip
    assert (second["service"], second["keys"], second["cStat"]) == ("NFeConsultaProtocolo4", [key], "100")
    detailed = sefaz.ok("GET", f"requests?service=NFeAutorizacao4&since={first['seq'] - 1}&xml=1")["requests"]
    assert key in detailed[0]["payload"] and "<retEnviNFe" in detailed[0]["answer"]
    assert sefaz.ok("GET", f"requests?since={second['seq']}")["requests"] == []


@pytest.mark.parametrize(
    ("method", "path", "data", "message"),
    [
        ("PUT", "scenario", {"scenario": "explode"}, "unknown scenario"),
        ("PUT", "scenario", {"scenario": "slow", "delay": -1}, "delay"),
        ("PUT", "scenario", {"scenario": "throttle", "cnpj": "1"}, "scripts"),
        ("POST", "scripts", {"scenario": "throttle"}, "a cnpj, a service or both"),
        ("POST", "scripts", {"scenario": "throttle", "service": "NFeOutro4"}, "unknown service"),
        ("POST", "scripts", {"scenario": "throttle", "service": "NFeAutorizacao4", "count": 0}, "count"),
        ("PUT", "clock", {}, "offset_seconds is required"),
        ("PUT", "settings", {"tmed": 3}, "unknown setting"),
    ],
)
def test_admin_mistakes_are_400_with_a_reason(
    sefaz: Emulator, method: str, path: str, data: dict[str, Any], message: str
) -> None:
    status, answer = sefaz.admin(method, path, data)
    assert status == 400 and message in answer["error"]


def test_reset_forgets_everything(sefaz: Emulator, a1: A1Certificate) -> None:
    nfe, _ = rq.signed_nfe(a1, number=47)
    authorize(sefaz, nfe)
    sefaz.ok("PUT", "clock", {"offset_seconds": 60})
    sefaz.ok("PUT", "scenario", {"scenario": "throttle"})
    sefaz.script("unavailable", cnpj=ISSUER_CNPJ)
    sefaz.ok("POST", "reset")
    assert sefaz.ok("GET", "documents") == {"authorized": [], "receipts": [], "inutilized": []}
    assert sefaz.ok("GET", "scenario") == {"default": _default(), "scripts": []}
    assert sefaz.ok("GET", "clock")["offset_seconds"] == 0
    assert sefaz.requests() == []


def _default() -> dict[str, Any]:
    return {"scenario": "authorize", "delay": 0.0, "polls": 1, "status": 108, "lost": "drop"}


# --- mutual TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory, authority: TestAuthority) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tls")
    certificate, key = authority.issue_server(["localhost", "127.0.0.1"])
    files = {"cert": folder / "server.pem", "key": folder / "server-key.pem", "ca": folder / "ca.pem"}
    files["cert"].write_bytes(certificate)
    files["key"].write_bytes(key)
    files["ca"].write_bytes(authority.certificate_pem())
    return files


@pytest.fixture(scope="module")
def mutual_tls(
    tmp_path_factory: pytest.TempPathFactory, tls_files: dict[str, Path]
) -> Iterator[dict[str, Any]]:
    arguments = ["--tls-cert", str(tls_files["cert"]), "--tls-key", str(tls_files["key"])]
    with emulator_process(
        tmp_path_factory.mktemp("mtls"), *arguments, "--client-ca", str(tls_files["ca"])
    ) as info:
        yield info


def client_context(ca: Path, a1: A1Certificate | None, folder: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if a1 is not None:
        certificate, key = a1.client_tls_files(folder)
        context.load_cert_chain(certificate, key)
    return context


def test_mutual_tls_refuses_a_client_without_a_certificate_at_the_handshake(
    mutual_tls: dict[str, Any], tls_files: dict[str, Path], tmp_path: Path
) -> None:
    assert mutual_tls["url"].startswith("https://127.0.0.1:") and mutual_tls["mutual_tls"]
    context = client_context(tls_files["ca"], None, tmp_path)
    with (
        socket.create_connection(("127.0.0.1", mutual_tls["port"]), timeout=30) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_mutual_tls_refuses_a_certificate_of_another_authority(
    mutual_tls: dict[str, Any], tls_files: dict[str, Path], tmp_path: Path
) -> None:
    stranger = new_a1(TestAuthority.create())
    sefaz = Emulator(mutual_tls, client_context(tls_files["ca"], stranger, tmp_path))
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        sefaz.call("NFeStatusServico4", rq.cons_stat_serv())


def test_mutual_tls_serves_a_client_with_an_a1_of_the_configured_authority(
    mutual_tls: dict[str, Any], tls_files: dict[str, Path], tmp_path: Path, a1: A1Certificate
) -> None:
    sefaz = Emulator(mutual_tls, client_context(tls_files["ca"], a1, tmp_path))
    assert text(sefaz.call("NFeStatusServico4", rq.cons_stat_serv()), "n:cStat") == "107"
    nfe, _ = rq.signed_nfe(a1, number=50)
    assert text(authorize(sefaz, nfe), "n:protNFe/n:infProt/n:cStat") == "100"


def test_the_process_stops_on_sigterm_and_removes_its_ready_file(tmp_path: Path) -> None:
    with emulator_process(tmp_path, "--scenario", "unavailable") as info:
        sefaz = Emulator(info)
        assert text(sefaz.call("NFeStatusServico4", rq.cons_stat_serv()), "n:cStat") == "108"
        sefaz.ok("POST", "reset")
        assert sefaz.ok("GET", "scenario")["default"]["scenario"] == "unavailable"
    assert not (tmp_path / "ready.json").exists()
    assert "nfe-emulator ready http://127.0.0.1:" in (tmp_path / "emulator.log").read_text()
