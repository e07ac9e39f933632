"""SOAP 1.2 envelopes of the NF-e web services: the shape SEFAZ takes, round trips, hostile input."""

from __future__ import annotations

from pathlib import Path

import nfelib
import pytest
from lxml import etree
from tornado_tasks.nfe import soap

from tornado_core.errors import TornadoError

STATUS = b'<consStatServ xmlns="http://www.portalfiscal.inf.br/nfe" versao="4.00"><tpAmb>2</tpAmb><cUF>35</cUF><xServ>STATUS</xServ></consStatServ>'  # noqa: E501
#: The envelope of the SEFAZ-SP capture in the domain reference (§1.4), on one line.
CAPTURED = (
    b'<soap-env:Envelope xmlns:soap-env="http://www.w3.org/2003/05/soap-envelope"><soap-env:Body>'
    b'<ns0:nfeDadosMsg xmlns:ns0="http://www.portalfiscal.inf.br/nfe/wsdl/NFeStatusServico4">'
    + STATUS
    + b"</ns0:nfeDadosMsg></soap-env:Body></soap-env:Envelope>"
)
WSDL_DIR = Path(nfelib.__file__).parent / "nfe" / "wsdl" / "v4_0"
WSDL_FILES = {
    "NFeAutorizacao4": "nfeautorizacao4.wsdl",
    "NFeRetAutorizacao4": "nferetautorizacao4.wsdl",
    "NFeConsultaProtocolo4": "nfeconsulta4.wsdl",
    "NFeStatusServico4": "nfestatusservico4.wsdl",
    "NFeRecepcaoEvento4": "recepcaoevento4.wsdl",
    "NFeInutilizacao4": "nfeinutilizacao4.wsdl",
}
WSDL_NS = {"w": "http://schemas.xmlsoap.org/wsdl/", "s12": "http://schemas.xmlsoap.org/wsdl/soap12/"}


def test_the_request_envelope_is_the_captured_one_byte_for_byte() -> None:
    assert soap.wrap("NFeStatusServico4", STATUS) == CAPTURED


def test_the_content_type_carries_the_soap_action() -> None:
    assert soap.content_type("NFeStatusServico4") == (
        'application/soap+xml; charset=utf-8; action="http://www.portalfiscal.inf.br/nfe/wsdl/'
        'NFeStatusServico4/nfeStatusServicoNF"'
    )
    assert soap.action_of(soap.content_type("NFeAutorizacao4")) == soap.SERVICES["NFeAutorizacao4"].action
    assert soap.action_of("application/soap+xml; charset=utf-8") is None


@pytest.mark.parametrize("name", sorted(WSDL_FILES))
def test_services_agree_with_the_wsdls_nfelib_ships(name: str) -> None:
    wsdl = etree.parse(str(WSDL_DIR / WSDL_FILES[name])).getroot()
    service = soap.SERVICES[name]
    assert (
        wsdl.get("targetNamespace") == service.namespace == f"http://www.portalfiscal.inf.br/nfe/wsdl/{name}"
    )
    operations = {op.get("name") for op in wsdl.iterfind("w:portType/w:operation", WSDL_NS)}
    assert service.operation in operations
    actions = {op.get("soapAction") for op in wsdl.iterfind(".//s12:operation", WSDL_NS)}
    assert service.action in actions
    assert service.path == f"/ws/{name.lower()}.asmx"


def test_every_service_is_known_and_nothing_else() -> None:
    assert set(soap.SERVICES) == set(WSDL_FILES)
    with pytest.raises(soap.SoapError, match="unknown NF-e service"):
        soap.wrap("NFeDistribuicaoDFe", STATUS)


@pytest.mark.parametrize("name", sorted(WSDL_FILES))
def test_a_request_round_trips(name: str) -> None:
    assert soap.unwrap_request(soap.wrap(name, STATUS)) == (name, STATUS)


def test_the_payload_keeps_its_bytes_and_loses_its_declaration() -> None:
    payload = b'<?xml version="1.0" encoding="UTF-8"?>\n' + STATUS.replace(b"<tpAmb>", b"<tpAmb >")
    envelope = soap.wrap("NFeStatusServico4", payload)
    assert b"<?xml" not in envelope
    assert b"<tpAmb >2</tpAmb>" in envelope


def test_a_latin1_payload_is_sent_as_utf8() -> None:
    payload = '<?xml version="1.0" encoding="ISO-8859-1"?><x xmlns="urn:x">ação</x>'.encode("latin-1")
    envelope = soap.wrap("NFeStatusServico4", payload)
    assert "ação".encode() in envelope
    assert soap.unwrap_request(envelope)[1] == '<x xmlns="urn:x">ação</x>'.encode()


def test_unwrapping_drops_the_envelopes_namespaces_so_signatures_still_verify() -> None:
    envelope = CAPTURED.replace(b"<soap-env:Envelope ", b'<soap-env:Envelope xmlns:xsi="urn:xsi" ')
    _, payload = soap.unwrap_request(envelope)
    assert payload == STATUS
    assert b"soap-env" not in payload and b"xsi" not in payload


def test_an_answer_round_trips_and_names_its_service() -> None:
    answer = b'<retConsStatServ xmlns="http://www.portalfiscal.inf.br/nfe" versao="4.00"><cStat>107</cStat></retConsStatServ>'  # noqa: E501
    envelope = soap.wrap_result("NFeStatusServico4", answer)
    assert envelope.startswith(b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope')
    assert b'<nfeResultMsg xmlns="http://www.portalfiscal.inf.br/nfe/wsdl/NFeStatusServico4">' in envelope
    assert soap.unwrap_response(envelope) == answer
    assert soap.unwrap_response(envelope, expect="NFeStatusServico4") == answer
    with pytest.raises(soap.SoapError, match="expected an answer of NFeAutorizacao4"):
        soap.unwrap_response(envelope, expect="NFeAutorizacao4")


def test_a_pretty_printed_answer_from_another_stack_unwraps() -> None:
    envelope = b"""<?xml version="1.0" encoding="utf-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">
  <env:Header/>
  <env:Body>
    <r:nfeResultMsg xmlns:r="http://www.portalfiscal.inf.br/nfe/wsdl/NFeAutorizacao4">
      <retEnviNFe xmlns="http://www.portalfiscal.inf.br/nfe" versao="4.00"><cStat>103</cStat></retEnviNFe>
    </r:nfeResultMsg>
  </env:Body>
</env:Envelope>"""
    expected = b'<retEnviNFe xmlns="http://www.portalfiscal.inf.br/nfe" versao="4.00"><cStat>103</cStat></retEnviNFe>'  # noqa: E501
    assert soap.unwrap_response(envelope) == expected


def test_a_fault_answer_raises_with_its_code_and_reason() -> None:
    envelope = soap.fault("Receiver", "Erro interno")
    with pytest.raises(soap.SoapFault) as caught:
        soap.unwrap_response(envelope)
    assert (caught.value.code, caught.value.reason) == ("Receiver", "Erro interno")
    assert isinstance(caught.value, soap.SoapError) and isinstance(caught.value, TornadoError)
    with pytest.raises(soap.SoapError, match=r"not a SOAP 1\.2 fault code"):
        soap.fault("Client", "SOAP 1.1 code")


SOAP11 = b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not well-formed"),
        (b"<a><b></a>", "not well-formed"),
        (b"<consStatServ/>", "not a SOAP envelope"),
        (SOAP11, "not a SOAP 1.2 envelope"),
        (CAPTURED.replace(b"<soap-env:Body>", b"<soap-env:Header/><soap-env:Body>", 1), None),
        (CAPTURED.replace(b"</soap-env:Body>", b"</soap-env:Body><soap-env:Body/>"), "exactly one Body"),
        (CAPTURED.replace(b"NFeStatusServico4", b"NFeOutro4"), "not the nfeDadosMsg"),
        (CAPTURED.replace(b"ns0:nfeDadosMsg", b"ns0:nfeDadosMsgZip"), "not the nfeDadosMsg"),
        (CAPTURED.replace(STATUS, b""), "must hold exactly one element, holds 0"),
        (CAPTURED.replace(STATUS, STATUS + STATUS), "must hold exactly one element, holds 2"),
        (CAPTURED.replace(STATUS, STATUS + b"text"), "holds text beside"),
    ],
    ids=[
        "empty",
        "broken",
        "bare",
        "soap11",
        "header-ok",
        "two-bodies",
        "namespace",
        "zip",
        "none",
        "two",
        "text",
    ],
)
def test_malformed_requests_say_what_is_wrong(body: bytes, message: str | None) -> None:
    if message is None:
        assert soap.unwrap_request(body) == ("NFeStatusServico4", STATUS)
        return
    with pytest.raises(soap.SoapError, match=message):
        soap.unwrap_request(body)


def test_entities_and_dtds_are_refused_and_never_expanded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do-not-leak")
    hostile = (
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY leak SYSTEM "file://{secret}">]><x>&leak;</x>'
    ).encode()
    with pytest.raises(soap.SoapError, match="DOCTYPE"):
        soap.parse_xml(hostile)
    with pytest.raises(soap.SoapError):
        soap.wrap("NFeStatusServico4", hostile)
    envelope = CAPTURED.replace(STATUS, b"<x>&leak;</x>")
    with pytest.raises(soap.SoapError):
        soap.unwrap_request(f'<!DOCTYPE x [<!ENTITY leak SYSTEM "file://{secret}">]>'.encode() + envelope)


def test_a_payload_that_is_not_one_element_is_refused() -> None:
    with pytest.raises(soap.SoapError, match="not well-formed"):
        soap.wrap("NFeStatusServico4", STATUS + STATUS)
    with pytest.raises(soap.SoapError, match="not well-formed"):
        soap.wrap("NFeStatusServico4", b"plain text")
