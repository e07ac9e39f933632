"""The DANFE (the NF-e's printed companion) as a PDF, rendered with BrazilFiscalReport.

:func:`render_danfe` takes the authorised ``nfeProc`` (the signed ``NFe`` plus SEFAZ's
``protNFe``) and returns the PDF bytes. It checks first that the document is an authorised NF-e
(model 55, a protocol with ``cStat`` 100 or 150 for the same key) and raises
:class:`DanfeError` otherwise: a DANFE printed without a protocol would look valid and is not.

BrazilFiscalReport options (``DanfeConfig``), all left at the library's defaults:

* ``logo=None``: no issuer logo;
* ``margins``: the default 5 mm on every side;
* ``layout=DanfeLayout.AUTO``: the layout in force on the NF-e's issue date (MOC 7.0 before
  2026-12-01, NT 2026.010 from then on), so the same XML always prints the same way;
* receipt stub on top, full invoice details, Times font, no cancellation watermark. The library
  itself stamps "SEM VALOR FISCAL" on an NF-e of the homologation environment (``tpAmb`` 2).

The PDF's creation date is set to the protocol's ``dhRecbto`` instead of the clock, so the same
``nfeProc`` gives byte-identical PDFs (a re-run job stores the same object). Rendering reads
nothing but its input, uses the core PDF fonts, and writes nothing but the returned bytes.
"""

from __future__ import annotations

from datetime import datetime

from brazilfiscalreport.danfe import Danfe, DanfeConfig
from lxml import etree

from tornado_core.errors import NonRetryable

NFE_NAMESPACE = "http://www.portalfiscal.inf.br/nfe"
#: protNFe/infProt/cStat values of an authorised NF-e: 100 authorised, 150 authorised late.
AUTHORISED_STATUSES = frozenset({"100", "150"})
#: The NF-e model this DANFE is for (65, the NFC-e, prints a DANFE NFC-e instead).
NFE_MODEL = "55"
_KEY_LENGTH = 44


class DanfeError(NonRetryable):
    """The input is not an authorised ``nfeProc``, or it cannot be rendered.

    It is :class:`~tornado_core.errors.NonRetryable`: the same XML fails the same way every time.
    """


def render_danfe(nfe_proc_xml: bytes) -> bytes:
    """Render the DANFE of an authorised NF-e.

    Args:
        nfe_proc_xml: The ``nfeProc`` document: ``<nfeProc><NFe>...</NFe><protNFe>...</protNFe>``
            in the NF-e namespace, as SEFAZ's authorisation is stored.

    Returns:
        The PDF (A4, one page or more), starting with ``%PDF-``.

    Raises:
        DanfeError: The bytes are not XML, not an ``nfeProc``, not model 55, carry no protocol or
            one that does not authorise this NF-e, or BrazilFiscalReport fails on them.
    """
    root = _parse(nfe_proc_xml)
    key = _access_key(root)
    received_at = _check_protocol(root, key)
    try:
        danfe = Danfe(xml=etree.tostring(root), config=DanfeConfig(logo=None))
        danfe.set_creation_date(received_at)
        return bytes(danfe.output())
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, SyntaxError) as exc:
        # SyntaxError covers xml.etree's ParseError; the rest are BrazilFiscalReport meeting a
        # field it did not expect. Deterministic either way, hence no retry.
        raise DanfeError(f"BrazilFiscalReport could not render the DANFE of NF-e {key}: {exc!r}") from exc


def _parse(data: bytes) -> etree._Element:
    if not isinstance(data, bytes | bytearray):
        raise DanfeError(f"the nfeProc must be bytes, not {type(data).__name__}")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(bytes(data), parser)
    except etree.XMLSyntaxError as exc:
        raise DanfeError(f"the nfeProc is not well-formed XML: {exc}") from exc
    if root.getroottree().docinfo.doctype:
        raise DanfeError("the nfeProc carries a DOCTYPE, which no NF-e document has")
    if root.tag != f"{{{NFE_NAMESPACE}}}nfeProc":
        raise DanfeError(f"expected an nfeProc (NFe + protNFe) in {NFE_NAMESPACE}, got <{root.tag}>")
    return root


def _child(parent: etree._Element, *path: str) -> etree._Element | None:
    node: etree._Element | None = parent
    for name in path:
        node = None if node is None else node.find(f"{{{NFE_NAMESPACE}}}{name}")
    return node


def _text(parent: etree._Element, *path: str) -> str:
    node = _child(parent, *path)
    return (node.text or "").strip() if node is not None else ""


def _access_key(root: etree._Element) -> str:
    inf_nfe = _child(root, "NFe", "infNFe")
    if inf_nfe is None:
        raise DanfeError("the nfeProc has no NFe/infNFe")
    identifier = inf_nfe.get("Id") or ""
    key = identifier.removeprefix("NFe")
    if not identifier.startswith("NFe") or len(key) != _KEY_LENGTH:
        raise DanfeError(f"infNFe/@Id {identifier!r} is not 'NFe' followed by the 44-character key")
    model = _text(inf_nfe, "ide", "mod")
    if model != NFE_MODEL:
        raise DanfeError(f"NF-e {key} is model {model or '?'}: this DANFE is for model {NFE_MODEL}")
    return key


def _check_protocol(root: etree._Element, key: str) -> datetime:
    """The protocol's ``dhRecbto``, once the protocol is known to authorise NF-e ``key``."""
    inf_prot = _child(root, "protNFe", "infProt")
    if inf_prot is None:
        raise DanfeError(f"NF-e {key} has no protocol (protNFe/infProt): it is not authorised")
    status, protocol_key = _text(inf_prot, "cStat"), _text(inf_prot, "chNFe")
    if status not in AUTHORISED_STATUSES:
        reason = _text(inf_prot, "xMotivo")
        raise DanfeError(f"NF-e {key} is not authorised: protocol cStat {status or '?'} {reason}".rstrip())
    if protocol_key != key:
        raise DanfeError(f"the protocol is for NF-e {protocol_key or '?'}, not for NF-e {key}")
    if not _text(inf_prot, "nProt"):
        raise DanfeError(f"the protocol of NF-e {key} has no nProt")
    received = _text(inf_prot, "dhRecbto")
    try:
        received_at = datetime.fromisoformat(received)
    except ValueError as exc:
        raise DanfeError(f"the protocol of NF-e {key} has no valid dhRecbto: {received!r}") from exc
    if received_at.tzinfo is None:
        raise DanfeError(f"the protocol of NF-e {key} has a dhRecbto without UTC offset: {received!r}")
    return received_at
