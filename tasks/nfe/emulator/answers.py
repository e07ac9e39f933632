"""The ``ret*`` messages the emulator answers, built with lxml to the letter of the XSDs.

Namespace ``http://www.portalfiscal.inf.br/nfe``; ``versao="4.00"`` for the NF-e messages
(``retEnviNFe``, ``protNFe``, ``retConsReciNFe``, ``retConsSitNFe``, ``retConsStatServ``,
``retInutNFe``) and ``versao="1.00"`` for the event ones (``retEnvEvento``, ``retEvento``,
``procEventoNFe``). Elements are written in schema order, optional ones only when given, and
every ``xMotivo`` is cleaned to the schema's ``TString`` (printable Latin-1, no edge blanks,
255 characters at most).

Every builder returns the message as UTF-8 bytes without XML declaration, ready for
:func:`tornado_tasks.nfe.soap.wrap_result` or to be embedded in another answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from ..soap import NFE_NS, parse_xml
from .codes import REASONS
from .state import APP_VERSION, sefaz_time

NFE_VERSION = "4.00"
EVENT_VERSION = "1.00"
MAX_REASON = 255
_NOT_TSTRING = re.compile(r"[^ -\u00ff]+")


def reason_text(text: str, detail: str | None = None) -> str:
    """An ``xMotivo``: ``text``, then `` [detail]`` if given, made a valid ``TString`` of 255 at most."""
    full = f"{text} [{detail}]" if detail else text
    cleaned = " ".join(_NOT_TSTRING.sub(" ", full).split())
    if len(cleaned) > MAX_REASON:
        cleaned = cleaned[: MAX_REASON - 3].rstrip() + "..."
    return cleaned or "-"


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """A cStat and its xMotivo."""

    cstat: int
    reason: str

    @classmethod
    def of(cls, cstat: int, text: str, detail: str | None = None) -> Verdict:
        """A verdict whose reason is ``text`` with an optional detail (see :func:`reason_text`)."""
        return cls(cstat=cstat, reason=reason_text(text, detail))


def verdict(cstat: int, detail: str | None = None) -> Verdict:
    """The verdict of ``cstat`` with SEFAZ's wording (:data:`~.codes.REASONS`) and an optional detail."""
    return Verdict.of(cstat, REASONS[cstat], detail)


@dataclass(frozen=True, kw_only=True)
class Header:
    """What every answer repeats: ``tpAmb``, ``cUF`` and the reception time.

    Attributes:
        environment: tpAmb, ``"1"`` production or ``"2"`` homologation.
        uf_code: cUF (two digits).
        received_at: dhRecbto.
    """

    environment: str
    uf_code: str
    received_at: datetime


def prot_nfe(
    header: Header, *, key: str, verdict: Verdict, protocol: str | None = None, digest: str | None = None
) -> bytes:
    """``protNFe``: the outcome of one NF-e (``Id="ID<nProt>"`` when it has a protocol)."""
    root = _root("protNFe", NFE_VERSION)
    info = _add(root, "infProt")
    if protocol:
        info.set("Id", f"ID{protocol}")
    _fields(info, ("tpAmb", header.environment), ("verAplic", APP_VERSION), ("chNFe", key))
    _fields(info, ("dhRecbto", sefaz_time(header.received_at)), ("nProt", protocol), ("digVal", digest))
    _fields(info, ("cStat", str(verdict.cstat)), ("xMotivo", verdict.reason))
    return _bytes(root)


def ret_envi_nfe(
    header: Header, verdict: Verdict, *, receipt: tuple[str, int] | None = None, protocol: bytes | None = None
) -> bytes:
    """``retEnviNFe``: either a receipt (``infRec``: nRec, tMed) or one ``protNFe``, or neither."""
    root = _root("retEnviNFe", NFE_VERSION)
    _status(root, header, verdict)
    _fields(root, ("cUF", header.uf_code), ("dhRecbto", sefaz_time(header.received_at)))
    if receipt is not None:
        info = _add(root, "infRec")
        _fields(info, ("nRec", receipt[0]), ("tMed", str(receipt[1])))
    elif protocol is not None:
        root.append(parse_xml(protocol))
    return _bytes(root)


def ret_cons_reci_nfe(
    header: Header, verdict: Verdict, *, receipt: str, protocols: Sequence[bytes] = ()
) -> bytes:
    """``retConsReciNFe``: the state of receipt ``receipt``, with its ``protNFe`` once processed."""
    root = _root("retConsReciNFe", NFE_VERSION)
    _fields(root, ("tpAmb", header.environment), ("verAplic", APP_VERSION), ("nRec", receipt))
    _fields(root, ("cStat", str(verdict.cstat)), ("xMotivo", verdict.reason), ("cUF", header.uf_code))
    _fields(root, ("dhRecbto", sefaz_time(header.received_at)))
    for protocol in protocols:
        root.append(parse_xml(protocol))
    return _bytes(root)


def ret_cons_sit_nfe(
    header: Header, verdict: Verdict, *, key: str, protocol: bytes | None = None, events: Sequence[bytes] = ()
) -> bytes:
    """``retConsSitNFe``: the situation of ``key``, its ``protNFe`` and its ``procEventoNFe``."""
    root = _root("retConsSitNFe", NFE_VERSION)
    _status(root, header, verdict)
    _fields(root, ("cUF", header.uf_code), ("dhRecbto", sefaz_time(header.received_at)), ("chNFe", key))
    if protocol is not None:
        root.append(parse_xml(protocol))
    for event in events:
        root.append(parse_xml(event))
    return _bytes(root)


def ret_cons_stat_serv(header: Header, verdict: Verdict, *, average_seconds: int | None = None) -> bytes:
    """``retConsStatServ``: the service's status (and ``tMed`` when running)."""
    root = _root("retConsStatServ", NFE_VERSION)
    _status(root, header, verdict)
    _fields(root, ("cUF", header.uf_code), ("dhRecbto", sefaz_time(header.received_at)))
    _fields(root, ("tMed", None if average_seconds is None else str(average_seconds)))
    return _bytes(root)


@dataclass(frozen=True, kw_only=True)
class EventFields:
    """What a ``retEvento`` repeats of its event (all optional in the schema)."""

    key: str | None = None
    event_type: str | None = None
    description: str | None = None
    sequence: str | None = None


def ret_evento(
    header: Header, verdict: Verdict, *, organ: str, event: EventFields, protocol: str | None = None
) -> bytes:
    """``retEvento``: the outcome of one event (``Id="ID<nProt>"`` when registered)."""
    root = _root("retEvento", EVENT_VERSION)
    info = _add(root, "infEvento")
    if protocol:
        info.set("Id", f"ID{protocol}")
    _fields(info, ("tpAmb", header.environment), ("verAplic", APP_VERSION), ("cOrgao", organ))
    _fields(info, ("cStat", str(verdict.cstat)), ("xMotivo", verdict.reason), ("chNFe", event.key))
    description = event.description if event.description and 5 <= len(event.description) <= 60 else None
    _fields(info, ("tpEvento", event.event_type), ("xEvento", description), ("nSeqEvento", event.sequence))
    _fields(info, ("dhRegEvento", sefaz_time(header.received_at)), ("nProt", protocol))
    return _bytes(root)


def ret_env_evento(
    header: Header, verdict: Verdict, *, lot: str, organ: str, events: Sequence[bytes] = ()
) -> bytes:
    """``retEnvEvento``: the lote's status (128 processed) and one ``retEvento`` per event."""
    root = _root("retEnvEvento", EVENT_VERSION)
    _fields(root, ("idLote", lot), ("tpAmb", header.environment), ("verAplic", APP_VERSION))
    _fields(root, ("cOrgao", organ), ("cStat", str(verdict.cstat)), ("xMotivo", verdict.reason))
    for event in events:
        root.append(parse_xml(event))
    return _bytes(root)


def proc_evento(event: bytes, answer: bytes) -> bytes:
    """``procEventoNFe``: the signed ``evento`` as received and its ``retEvento``."""
    root = _root("procEventoNFe", EVENT_VERSION)
    root.append(parse_xml(event))
    root.append(parse_xml(answer))
    return _bytes(root)


@dataclass(frozen=True, kw_only=True)
class InutilizedFields:
    """What a ``retInutNFe`` repeats of its request (all optional in the schema)."""

    year: str | None = None
    cnpj: str | None = None
    model: str | None = None
    series: str | None = None
    first: str | None = None
    last: str | None = None


def ret_inut_nfe(
    header: Header, verdict: Verdict, *, request: InutilizedFields | None = None, protocol: str | None = None
) -> bytes:
    """``retInutNFe``: the outcome of an inutilização (``Id="ID<nProt>"`` when homologated)."""
    fields = request or InutilizedFields()
    root = _root("retInutNFe", NFE_VERSION)
    info = _add(root, "infInut")
    if protocol:
        info.set("Id", f"ID{protocol}")
    _status(info, header, verdict)
    _fields(info, ("cUF", header.uf_code), ("ano", fields.year), ("CNPJ", fields.cnpj), ("mod", fields.model))
    _fields(info, ("serie", fields.series), ("nNFIni", fields.first), ("nNFFin", fields.last))
    _fields(info, ("dhRecbto", sefaz_time(header.received_at)), ("nProt", protocol))
    return _bytes(root)


# --- helpers -----------------------------------------------------------------------------------


def _root(tag: str, version: str) -> Any:
    return etree.Element(f"{{{NFE_NS}}}{tag}", versao=version, nsmap={None: NFE_NS})


def _add(parent: Any, tag: str, text: str | None = None) -> Any:
    element = etree.SubElement(parent, f"{{{NFE_NS}}}{tag}")
    if text is not None:
        element.text = text
    return element


def _fields(parent: Any, *pairs: tuple[str, str | None]) -> None:
    """Append ``<tag>text</tag>`` for each pair whose text is not ``None``, in order."""
    for tag, text in pairs:
        if text is not None:
            _add(parent, tag, text)


def _status(parent: Any, header: Header, verdict: Verdict) -> None:
    _fields(parent, ("tpAmb", header.environment), ("verAplic", APP_VERSION))
    _fields(parent, ("cStat", str(verdict.cstat)), ("xMotivo", verdict.reason))


def _bytes(root: Any) -> bytes:
    data: bytes = etree.tostring(root, encoding="utf-8", xml_declaration=False)
    return data
