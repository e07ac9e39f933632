"""The NF-e messages of authorisation and their answers: built as bytes, read into plain data.

Signed documents are embedded byte for byte (never re-serialised), so what was signed is what
goes out. Answers are read by element name in the NF-e namespace, whatever their prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

from .soap import NFE_NS, parse_xml, serialize

_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'


@dataclass(frozen=True)
class Protocol:
    """One ``protNFe``: SEFAZ's verdict on one NF-e.

    Attributes:
        key: chNFe.
        status_code: cStat (100 authorised, 150 authorised late, 110/301/302 denied, others rejected).
        reason: xMotivo.
        number: nProt (absent on a rejection).
        received_at: dhRecbto, as SEFAZ wrote it.
        xml: The ``protNFe`` element, standalone, as it goes into the ``nfeProc``.
    """

    key: str
    status_code: int
    reason: str
    number: str | None
    received_at: str | None
    xml: bytes


@dataclass(frozen=True)
class Answer:
    """A ``ret*`` message: the service's own status, and the protocols it carries."""

    status_code: int
    reason: str
    receipt: str | None = None
    average_seconds: float | None = None
    protocols: tuple[Protocol, ...] = ()

    def protocol_for(self, key: str) -> Protocol | None:
        """The protocol of ``key``, if the answer carries it."""
        return next((p for p in self.protocols if p.key == key), None)


def _message(name: str, version: str, inner: str) -> bytes:
    return f'<{name} xmlns="{NFE_NS}" versao="{version}">{inner}</{name}>'.encode()


def without_declaration(document: bytes) -> bytes:
    """``document`` without its XML declaration, to embed it in another message."""
    text = document.lstrip()
    if text.startswith(b"<?xml"):
        text = text[text.index(b"?>") + 2 :].lstrip()
    return text


def authorization_request(signed_nfe: bytes, *, batch_id: int, synchronous: bool) -> bytes:
    """``enviNFe`` of one signed NF-e (``idLote`` up to 15 digits; ``indSinc`` 1 or 0)."""
    head = f"<idLote>{batch_id % 10**15}</idLote><indSinc>{1 if synchronous else 0}</indSinc>"
    return _message("enviNFe", "4.00", head).replace(
        b"</enviNFe>", without_declaration(signed_nfe) + b"</enviNFe>"
    )


def receipt_query(receipt: str, *, environment: int) -> bytes:
    """``consReciNFe``: how the asynchronous lote ``receipt`` (nRec) ended."""
    return _message("consReciNFe", "4.00", f"<tpAmb>{environment}</tpAmb><nRec>{escape(receipt)}</nRec>")


def protocol_query(key: str, *, environment: int) -> bytes:
    """``consSitNFe``: the status of the NF-e ``key`` at SEFAZ (asked before any resend)."""
    inner = f"<tpAmb>{environment}</tpAmb><xServ>CONSULTAR</xServ><chNFe>{escape(key)}</chNFe>"
    return _message("consSitNFe", "4.00", inner)


def status_query(uf_code: int, *, environment: int) -> bytes:
    """``consStatServ``: whether the authority of UF ``uf_code`` (IBGE code) is up."""
    inner = f"<tpAmb>{environment}</tpAmb><cUF>{uf_code}</cUF><xServ>STATUS</xServ>"
    return _message("consStatServ", "4.00", inner)


def nfe_proc(signed_nfe: bytes, protocol: Protocol) -> bytes:
    """The ``nfeProc``: the signed NF-e and its authorisation protocol, the document kept by law."""
    return _DECLARATION + _message("nfeProc", "4.00", "").replace(
        b"</nfeProc>", without_declaration(signed_nfe) + without_declaration(protocol.xml) + b"</nfeProc>"
    )


def read_answer(xml: bytes) -> Answer:
    """Read a ``retEnviNFe``, ``retConsReciNFe``, ``retConsSitNFe`` or ``retConsStatServ``.

    Raises:
        SoapError: Not well-formed XML.
        ValueError: No ``cStat`` at its top level.
    """
    root = parse_xml(xml)
    average = _text(root, "infRec/tMed") or _text(root, "tMed")
    return Answer(
        status_code=_status(root, root.tag),
        reason=_text(root, "xMotivo") or "",
        receipt=_text(root, "infRec/nRec") or _text(root, "nRec"),
        average_seconds=float(average) if average else None,
        protocols=tuple(_protocol(p) for p in root.iter(f"{{{NFE_NS}}}protNFe")),
    )


def _protocol(element: etree._Element) -> Protocol:
    info = element.find(f"{{{NFE_NS}}}infProt")
    if info is None:
        raise ValueError("a protNFe without infProt")
    return Protocol(
        key=_text(info, "chNFe") or "",
        status_code=_status(info, "protNFe"),
        reason=_text(info, "xMotivo") or "",
        number=_text(info, "nProt"),
        received_at=_text(info, "dhRecbto"),
        xml=serialize(element),
    )


def _status(element: etree._Element, where: str) -> int:
    text = _text(element, "cStat")
    if text is None or not text.isdigit():
        raise ValueError(f"{where} has no cStat")
    return int(text)


def _text(element: etree._Element, path: str) -> str | None:
    qualified = "/".join(f"{{{NFE_NS}}}{part}" for part in path.split("/"))
    found = element.find(qualified)
    return found.text.strip() if found is not None and found.text else None
