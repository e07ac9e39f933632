"""SOAP 1.2 for the NF-e 4.00 web services: the envelope SEFAZ expects and answers, nothing more.

Each service has one WSDL (bundled with nfelib under ``nfelib/nfe/wsdl/v4_0/``) whose target
namespace is ``http://www.portalfiscal.inf.br/nfe/wsdl/<Service>``. A request carries the NF-e
message (``enviNFe``, ``consStatServ``...) as the only child of ``nfeDadosMsg`` in that
namespace, with no SOAP header (layout 4.00 dropped ``nfeCabecMsg``); the answer carries the
``ret*`` message inside ``nfeResultMsg``. :func:`wrap` writes the envelope exactly as zeep did in
the capture against SEFAZ-SP (``soap-env``/``ns0`` prefixes, no XML declaration), and
``Content-Type: application/soap+xml; charset=utf-8; action="<namespace>/<operation>"``.

Everything parsed here may come from the network, so the parser resolves no entity, loads no
DTD and fetches nothing; a document with a DOCTYPE is refused (SOAP 1.2 forbids DTDs).

The transmission client and the local SEFAZ emulator (:mod:`tornado_tasks.nfe.emulator`) both
use this module, so they cannot drift apart.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lxml import etree

from tornado_core.errors import TornadoError

SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"
NFE_NS = "http://www.portalfiscal.inf.br/nfe"
WSDL_BASE = "http://www.portalfiscal.inf.br/nfe/wsdl/"
CONTENT_TYPE = "application/soap+xml"
#: The SOAP 1.2 fault codes a Fault may carry (``env:Code/env:Value``).
FAULT_CODES = frozenset({"VersionMismatch", "MustUnderstand", "DataEncodingUnknown", "Sender", "Receiver"})


@dataclass(frozen=True, kw_only=True)
class Service:
    """One NF-e 4.00 web service, as its WSDL names it.

    Attributes:
        name: The service (``NFeAutorizacao4``), also the last segment of its namespace.
        operation: The WSDL operation (``nfeAutorizacaoLote``).
        request: Local name of the NF-e message it takes (``enviNFe``).
        response: Local name of the NF-e message it answers (``retEnviNFe``).
    """

    name: str
    operation: str
    request: str
    response: str

    @property
    def namespace(self) -> str:
        """The WSDL target namespace, also the namespace of ``nfeDadosMsg``/``nfeResultMsg``."""
        return WSDL_BASE + self.name

    @property
    def action(self) -> str:
        """The SOAP action (``soapAction`` in the WSDL)."""
        return f"{self.namespace}/{self.operation}"

    @property
    def path(self) -> str:
        """The URL path SEFAZ-SP serves it on: ``/ws/<name lowercased>.asmx``."""
        return f"/ws/{self.name.lower()}.asmx"


def _services(*rows: tuple[str, str, str, str]) -> Mapping[str, Service]:
    table = {
        name: Service(name=name, operation=op, request=req, response=resp) for name, op, req, resp in rows
    }
    return MappingProxyType(table)


#: The services of NF-e 4.00 by name; operations checked against nfelib's bundled WSDLs.
SERVICES: Mapping[str, Service] = _services(
    ("NFeAutorizacao4", "nfeAutorizacaoLote", "enviNFe", "retEnviNFe"),
    ("NFeRetAutorizacao4", "nfeRetAutorizacaoLote", "consReciNFe", "retConsReciNFe"),
    ("NFeConsultaProtocolo4", "nfeConsultaNF", "consSitNFe", "retConsSitNFe"),
    ("NFeStatusServico4", "nfeStatusServicoNF", "consStatServ", "retConsStatServ"),
    ("NFeRecepcaoEvento4", "nfeRecepcaoEvento", "envEvento", "retEnvEvento"),
    ("NFeInutilizacao4", "nfeInutilizacaoNF", "inutNFe", "retInutNFe"),
)
_BY_NAMESPACE: Mapping[str, Service] = MappingProxyType({s.namespace: s for s in SERVICES.values()})


class SoapError(TornadoError):
    """A SOAP message is malformed: not XML, not a SOAP 1.2 envelope, or not the expected body."""


class SoapFault(SoapError):
    """The peer answered with a SOAP 1.2 Fault instead of a result.

    Attributes:
        code: The fault code (``Sender``, ``Receiver``...), without its prefix.
        reason: The fault's reason text.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"SOAP fault {code}: {reason}")
        self.code = code
        self.reason = reason


def service(name: str) -> Service:
    """The service called ``name``.

    Raises:
        SoapError: No NF-e 4.00 service has that name.
    """
    try:
        return SERVICES[name]
    except KeyError:
        raise SoapError(f"unknown NF-e service {name!r}; known: {', '.join(SERVICES)}") from None


def content_type(name: str) -> str:
    """The ``Content-Type`` of a request to service ``name``, its SOAP action included.

    Raises:
        SoapError: Unknown service.
    """
    return f'{CONTENT_TYPE}; charset=utf-8; action="{service(name).action}"'


def action_of(content_type_header: str) -> str | None:
    """The ``action`` parameter of a ``Content-Type`` header, or ``None`` if it has none."""
    match = re.search(r';\s*action\s*=\s*"?([^";]+)"?', content_type_header, flags=re.IGNORECASE)
    return match.group(1).strip() if match else None


def parse_xml(data: bytes) -> Any:
    """The root element of untrusted XML, parsed with entities, DTDs and the network off.

    Returns:
        An lxml element (typed ``Any``: lxml ships no type information).

    Raises:
        SoapError: Not well-formed, or has a DOCTYPE.
    """
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise SoapError(f"not well-formed XML: {exc}") from None
    if root is None:
        raise SoapError("empty XML document")
    if root.getroottree().docinfo.doctype:
        raise SoapError("XML with a DOCTYPE is refused")
    return root


def serialize(element: Any) -> bytes:
    """``element`` as a standalone UTF-8 document without XML declaration (nor the text after it).

    Namespace declarations it inherited but does not use (the envelope's) are dropped, so a
    signature computed on the standalone message still verifies.
    """
    standalone = copy.deepcopy(element)
    standalone.tail = None
    etree.cleanup_namespaces(standalone)
    data: bytes = etree.tostring(standalone, encoding="utf-8", xml_declaration=False)
    return data


def wrap(name: str, payload: bytes) -> bytes:
    """The SOAP 1.2 request envelope for service ``name`` around ``payload``.

    The payload's bytes are kept as they are (its XML declaration dropped), so what was signed
    is what is sent.

    Args:
        name: A key of :data:`SERVICES`.
        payload: One NF-e message (``enviNFe``...), well-formed UTF-8 XML.

    Raises:
        SoapError: Unknown service, or a payload that is not one well-formed element.
    """
    return _envelope("soap-env", f'<ns0:nfeDadosMsg xmlns:ns0="{service(name).namespace}">', _inner(payload))


def wrap_result(name: str, payload: bytes) -> bytes:
    """The SOAP 1.2 answer envelope of service ``name`` around ``payload`` (``nfeResultMsg``).

    Shaped like SEFAZ's own answers: ``soap`` prefix, XML declaration, ``nfeResultMsg`` with the
    service namespace as default namespace.

    Raises:
        SoapError: Unknown service, or a payload that is not one well-formed element.
    """
    body = _envelope("soap", f'<nfeResultMsg xmlns="{service(name).namespace}">', _inner(payload))
    return b'<?xml version="1.0" encoding="utf-8"?>' + body


def fault(code: str, reason: str) -> bytes:
    """A SOAP 1.2 Fault envelope.

    Args:
        code: One of :data:`FAULT_CODES` (``Sender`` for the client's mistakes, ``Receiver`` for
            the server's).
        reason: Human-readable reason (``xml:lang="pt-BR"``).

    Raises:
        SoapError: ``code`` is not a SOAP 1.2 fault code.
    """
    if code not in FAULT_CODES:
        raise SoapError(f"{code!r} is not a SOAP 1.2 fault code")
    envelope = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soap": SOAP_NS})
    body = etree.SubElement(envelope, f"{{{SOAP_NS}}}Body")
    fault_element = etree.SubElement(body, f"{{{SOAP_NS}}}Fault")
    value = etree.SubElement(etree.SubElement(fault_element, f"{{{SOAP_NS}}}Code"), f"{{{SOAP_NS}}}Value")
    value.text = f"soap:{code}"
    text = etree.SubElement(etree.SubElement(fault_element, f"{{{SOAP_NS}}}Reason"), f"{{{SOAP_NS}}}Text")
    text.set("{http://www.w3.org/XML/1998/namespace}lang", "pt-BR")
    text.text = reason
    data: bytes = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return data


def unwrap_request(body: bytes) -> tuple[str, bytes]:
    """The service and the NF-e message of a request envelope made by :func:`wrap` (or zeep).

    Returns:
        ``(service name, message)``, the message a standalone UTF-8 document.

    Raises:
        SoapError: Not a SOAP 1.2 envelope, no ``nfeDadosMsg`` of a known service, or not
            exactly one element in it.
    """
    message = _body_child(parse_xml(body))
    found = _BY_NAMESPACE.get(etree.QName(message).namespace or "")
    if found is None or etree.QName(message).localname != "nfeDadosMsg":
        raise SoapError(f"the SOAP body holds {message.tag}, not the nfeDadosMsg of an NF-e 4.00 service")
    return found.name, serialize(_only_child(message))


def unwrap_response(body: bytes, *, expect: str | None = None) -> bytes:
    """The ``ret*`` message inside the ``nfeResultMsg`` of an answer envelope.

    Args:
        body: The HTTP answer body.
        expect: If given, the service the answer must belong to.

    Raises:
        SoapFault: The answer is a SOAP Fault.
        SoapError: Anything else that is not a well-formed answer (of service ``expect``).
    """
    result = _body_child(parse_xml(body))
    qname = etree.QName(result)
    if qname.namespace == SOAP_NS and qname.localname == "Fault":
        raise _fault_of(result)
    found = _BY_NAMESPACE.get(qname.namespace or "")
    if found is None or qname.localname != "nfeResultMsg":
        raise SoapError(f"the SOAP body holds {result.tag}, not the nfeResultMsg of an NF-e 4.00 service")
    if expect is not None and found.name != expect:
        raise SoapError(f"expected an answer of {expect}, got one of {found.name}")
    return serialize(_only_child(result))


# --- helpers -----------------------------------------------------------------------------------

_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>\s*")


def _inner(payload: bytes) -> bytes:
    """``payload`` ready to sit inside an element: checked, declaration dropped, UTF-8."""
    root = parse_xml(payload)
    declared = root.getroottree().docinfo.encoding or "UTF-8"
    if declared.upper().replace("_", "-") not in ("UTF-8", "US-ASCII", "ASCII"):
        return serialize(root)  # re-encoded: the bytes inside the envelope must be UTF-8
    return _DECLARATION.sub(b"", payload, count=1).strip()


def _envelope(prefix: str, opening: str, inner: bytes) -> bytes:
    close = opening.split(" ", 1)[0].replace("<", "</", 1) + ">"
    return (
        f'<{prefix}:Envelope xmlns:{prefix}="{SOAP_NS}"><{prefix}:Body>{opening}'.encode()
        + inner
        + f"{close}</{prefix}:Body></{prefix}:Envelope>".encode()
    )


def _body_child(envelope: Any) -> Any:
    """The single element of the envelope's Body."""
    if envelope.tag != f"{{{SOAP_NS}}}Envelope":
        if etree.QName(envelope).localname == "Envelope":
            raise SoapError(f"not a SOAP 1.2 envelope (namespace {etree.QName(envelope).namespace!r})")
        raise SoapError(f"not a SOAP envelope: the root element is {envelope.tag}")
    parts = [child for child in envelope if isinstance(child.tag, str)]
    bodies = [child for child in parts if child.tag == f"{{{SOAP_NS}}}Body"]
    if len(bodies) != 1 or parts[-1] is not bodies[0]:
        raise SoapError("a SOAP envelope has exactly one Body, after the optional Header")
    return _only_child(bodies[0])


def _only_child(parent: Any) -> Any:
    children = [child for child in parent if isinstance(child.tag, str)]
    if len(children) != 1 or (parent.text or "").strip():
        raise SoapError(
            f"{etree.QName(parent).localname} must hold exactly one element, holds {len(children)}"
        )
    if any((child.tail or "").strip() for child in children):
        raise SoapError(f"{etree.QName(parent).localname} holds text beside its element")
    return children[0]


def _fault_of(element: Any) -> SoapFault:
    value = element.findtext(f"{{{SOAP_NS}}}Code/{{{SOAP_NS}}}Value") or ""
    reason = element.findtext(f"{{{SOAP_NS}}}Reason/{{{SOAP_NS}}}Text") or ""
    return SoapFault(value.rsplit(":", 1)[-1].strip() or "Receiver", reason.strip())
