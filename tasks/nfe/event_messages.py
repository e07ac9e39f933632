"""The messages of NF-e events (cancellation 110111, CC-e 110110) and their answers, as bytes.

Built as :mod:`.messages` builds the authorisation's: strings in the NF-e namespace, the signed
``evento`` embedded byte for byte in ``envEvento`` and ``procEventoNFe``, answers read by element
name whatever their prefixes. The layout is nfelib's ``leiauteEventoCancNFe_v1.00.xsd`` and
``leiauteCCe_v1.00.xsd``:

* ``infEvento/@Id`` = ``"ID"`` + tpEvento + chNFe + nSeqEvento on two digits (``ID[0-9]{52}``);
  ``nSeqEvento`` itself is written without leading zero (pattern ``[1-9]|[1][0-9]{0,1}|20``);
* ``cOrgao`` is the IBGE code of the key's UF, also when the event goes to an SVC (91, the
  Ambiente Nacional, is for events received there, such as EPEC and the recipient's
  manifestação, none of which is sent here);
* ``dhEvento`` is ``TDateTimeUTC``: seconds and an offset, no fraction (Brasília time here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any
from xml.sax.saxutils import escape

from .certificates import A1Certificate
from .messages import without_declaration
from .signing import sign_enveloped
from .soap import NFE_NS, parse_xml, serialize
from .xsd import require_schema_valid

CANCELLATION = 110111
CORRECTION = 110110
EVENT_VERSION = "1.00"
NAMES: Mapping[int, str] = MappingProxyType({
    CANCELLATION: "cancellation", CORRECTION: "correction letter (CC-e)"
})  # fmt: skip
#: descEvento of each event type (the CC-e's in its accent-free form, as its xCondUso).
DESCRIPTIONS: Mapping[int, str] = MappingProxyType({
    CANCELLATION: "Cancelamento", CORRECTION: "Carta de Correcao"
})  # fmt: skip
#: xCondUso: the fixed legal text of the CC-e, copied from the second enumeration of
#: ``leiauteCCe_v1.00.xsd`` (nfelib's ``DetEventoXCondUso``), the accent-free one.
CORRECTION_CONDITIONS = (
    "A Carta de Correcao e disciplinada pelo paragrafo 1o-A do art. 7o do Convenio S/N, de 15 de dezembro"
    " de 1970 e pode ser utilizada para regularizacao de erro ocorrido na emissao de documento fiscal,"
    " desde que o erro nao esteja relacionado com: I - as variaveis que determinam o valor do imposto"
    " tais como: base de calculo, aliquota, diferenca de preco, quantidade, valor da operacao ou da"
    " prestacao; II - a correcao de dados cadastrais que implique mudanca do remetente ou do destinatario;"
    " III - a data de emissao ou de saida."
)
#: The offset event times are written in.
BRASILIA = timezone(timedelta(hours=-3))
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'


@dataclass(frozen=True)
class EventAnswer:
    """A ``retEnvEvento`` (or one ``procEventoNFe`` found by a protocol query), read.

    Attributes:
        status_code: The lote's cStat (128 processed; 215, 656, 108... for a refused lote).
        reason: Its xMotivo.
        event_status_code: ``retEvento/infEvento/cStat`` (135 registered...), ``None`` without one.
        event_reason: Its xMotivo.
        protocol: The event's nProt, when registered.
        registered_at: dhRegEvento, as SEFAZ wrote it.
        ret_evento_xml: The ``retEvento`` element, standalone (empty without one).
        proc_xml: The ``procEventoNFe`` SEFAZ holds, when the answer came from a protocol query.
    """

    status_code: int
    reason: str
    event_status_code: int | None
    event_reason: str | None
    protocol: str | None
    registered_at: str | None
    ret_evento_xml: bytes
    proc_xml: bytes | None = None


def event_id(event_type: int, key: str, sequence: int) -> str:
    """``infEvento/@Id``: ``ID`` + tpEvento + chNFe + nSeqEvento (two digits)."""
    return f"ID{event_type}{key}{sequence:02d}"


def event_time(moment: datetime) -> str:
    """``dhEvento``: Brasília time, seconds, ``-03:00``."""
    return moment.astimezone(BRASILIA).replace(microsecond=0).isoformat()


def cancellation_detail(protocol: str, justification: str) -> str:
    """The ``detEvento`` of a cancellation: the NF-e's nProt and xJust."""
    return (
        f'<detEvento versao="{EVENT_VERSION}"><descEvento>{DESCRIPTIONS[CANCELLATION]}</descEvento>'
        f"<nProt>{escape(protocol)}</nProt><xJust>{escape(justification)}</xJust></detEvento>"
    )


def correction_detail(correction: str) -> str:
    """The ``detEvento`` of a CC-e: xCorrecao and the fixed xCondUso."""
    return (
        f'<detEvento versao="{EVENT_VERSION}"><descEvento>{DESCRIPTIONS[CORRECTION]}</descEvento>'
        f"<xCorrecao>{escape(correction)}</xCorrecao><xCondUso>{CORRECTION_CONDITIONS}</xCondUso></detEvento>"
    )


def event_document(
    *, event_type: int, key: str, sequence: int, environment: int, moment: datetime, detail: str
) -> bytes:
    """The unsigned ``evento`` (``infEvento`` carries the Id :func:`~.signing.sign_enveloped` signs).

    Args:
        event_type: 110111 or 110110.
        key: chNFe; its UF gives cOrgao, its issuer CNPJ the author.
        sequence: nSeqEvento, 1-20.
        environment: tpAmb of the NF-e.
        moment: dhEvento.
        detail: The ``detEvento`` (:func:`cancellation_detail`, :func:`correction_detail`).
    """
    info = (
        f'<infEvento Id="{event_id(event_type, key, sequence)}"><cOrgao>{key[:2]}</cOrgao>'
        f"<tpAmb>{environment}</tpAmb><CNPJ>{key[6:20]}</CNPJ><chNFe>{key}</chNFe>"
        f"<dhEvento>{event_time(moment)}</dhEvento><tpEvento>{event_type}</tpEvento>"
        f"<nSeqEvento>{sequence}</nSeqEvento><verEvento>{EVENT_VERSION}</verEvento>{detail}</infEvento>"
    )
    return f'<evento xmlns="{NFE_NS}" versao="{EVENT_VERSION}">{info}</evento>'.encode()


def signed_event(
    *, event_type: int, key: str, sequence: int, text: str, protocol: str, environment: int,
    certificate: A1Certificate,
) -> bytes:  # fmt: skip
    """The ``evento`` built now, signed and checked against its XSD (inside an ``envEvento``).

    Args:
        event_type: 110111 or 110110.
        key: chNFe.
        sequence: nSeqEvento.
        text: xJust of a cancellation, xCorrecao of a CC-e.
        protocol: The NF-e's nProt (for a cancellation).
        environment: tpAmb of the NF-e.
        certificate: The issuer's A1.

    Raises:
        SchemaInvalid: The event breaks its XSD (a justification with edge blanks...).
    """
    detail = cancellation_detail(protocol, text) if event_type == CANCELLATION else correction_detail(text)
    document = event_document(
        event_type=event_type, key=key, sequence=sequence, environment=environment,
        moment=datetime.now(UTC), detail=detail,
    )  # fmt: skip
    signed = sign_enveloped(document, certificate)
    require_schema_valid(event_request(signed, batch_id=1), f"the {NAMES[event_type]} of NF-e {key}")
    return signed


def event_request(signed: bytes, *, batch_id: int) -> bytes:
    """``envEvento`` with one signed ``evento`` (``idLote`` up to 15 digits)."""
    head = f'<envEvento xmlns="{NFE_NS}" versao="{EVENT_VERSION}"><idLote>{batch_id % 10**15}</idLote>'
    return head.encode() + without_declaration(signed) + b"</envEvento>"


def proc_evento(signed: bytes, ret_evento: bytes) -> bytes:
    """``procEventoNFe``: the signed ``evento`` and SEFAZ's ``retEvento``, the document kept by law."""
    head = f'<procEventoNFe xmlns="{NFE_NS}" versao="{EVENT_VERSION}">'.encode()
    body = without_declaration(signed) + without_declaration(ret_evento)
    return _DECLARATION + head + body + b"</procEventoNFe>"


def read_event_answer(xml: bytes) -> EventAnswer:
    """Read a ``retEnvEvento``: the lote's status and its first ``retEvento``.

    Raises:
        SoapError: Not well-formed XML.
        ValueError: No ``cStat`` at its top level.
    """
    root = parse_xml(xml)
    found = root.find(f"{{{NFE_NS}}}retEvento")
    return _answer(_status(root, root.tag), _text(root, "xMotivo") or "", found)


def registered_event(ret_cons_sit: bytes, event_type: int, sequence: int) -> EventAnswer | None:
    """The event ``event_type``/``sequence`` among the ``procEventoNFe`` of a ``retConsSitNFe``.

    Returns:
        Its answer, ``proc_xml`` set to the ``procEventoNFe`` as SEFAZ holds it; ``None`` when the
        query carries no such event.
    """
    root = parse_xml(ret_cons_sit)
    for proc in root.iter(f"{{{NFE_NS}}}procEventoNFe"):
        info = proc.find(f"{{{NFE_NS}}}evento/{{{NFE_NS}}}infEvento")
        if info is None or _text(info, "tpEvento") != str(event_type):
            continue
        if _text(info, "nSeqEvento") != str(sequence):
            continue
        answer = _answer(
            _status(root, root.tag), _text(root, "xMotivo") or "", proc.find(f"{{{NFE_NS}}}retEvento")
        )
        return replace(answer, proc_xml=_DECLARATION + serialize(proc))
    return None


def _answer(status_code: int, reason: str, ret_evento: Any) -> EventAnswer:
    if ret_evento is None:
        return EventAnswer(status_code, reason, None, None, None, None, b"")
    info = ret_evento.find(f"{{{NFE_NS}}}infEvento")
    if info is None:
        raise ValueError("a retEvento without infEvento")
    return EventAnswer(
        status_code=status_code,
        reason=reason,
        event_status_code=_status(info, "retEvento"),
        event_reason=_text(info, "xMotivo") or "",
        protocol=_text(info, "nProt"),
        registered_at=_text(info, "dhRegEvento"),
        ret_evento_xml=serialize(ret_evento),
    )


def _status(element: Any, where: str) -> int:
    text = _text(element, "cStat")
    if text is None or not text.isdigit():
        raise ValueError(f"{where} has no cStat")
    return int(text)


def _text(element: Any, path: str) -> str | None:
    qualified = "/".join(f"{{{NFE_NS}}}{part}" for part in path.split("/"))
    found = element.find(qualified)
    return found.text.strip() if found is not None and found.text else None
