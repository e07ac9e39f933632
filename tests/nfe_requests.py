"""Request messages for the NF-e web services, as a client sends them: signed where SEFAZ wants it.

Plain functions (no fixtures). Signed NF-e come from the project's builder and signer
(:func:`~tornado_tasks.nfe.xml_builder.build_nfe`, :func:`~tornado_tasks.nfe.signing.sign_enveloped`)
with the sample invoice of :mod:`tests.nfe_samples`; the other messages are written out here, in
the layout of their XSDs, so a test can also bend them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape

from lxml import etree
from tornado_tasks.nfe.access_key import build_access_key
from tornado_tasks.nfe.certificates import A1Certificate
from tornado_tasks.nfe.invoice import Invoice, validate_invoice
from tornado_tasks.nfe.signing import sign_enveloped
from tornado_tasks.nfe.xml_builder import build_nfe

from tests.nfe_samples import ISSUED_AT, ISSUER_CNPJ, invoice_payload, sample_key

NFE_NS = "http://www.portalfiscal.inf.br/nfe"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
#: The CC-e's fixed conditions of use (one of the two texts e110110_v1.00.xsd allows).
CORRECTION_TERMS = (
    "A Carta de Correcao e disciplinada pelo paragrafo 1o-A do art. 7o do Convenio S/N, de 15 de dezembro "
    "de 1970 e pode ser utilizada para regularizacao de erro ocorrido na emissao de documento fiscal, desde "
    "que o erro nao esteja relacionado com: I - as variaveis que determinam o valor do imposto tais como: "
    "base de calculo, aliquota, diferenca de preco, quantidade, valor da operacao ou da prestacao; II - a "
    "correcao de dados cadastrais que implique mudanca do remetente ou do destinatario; III - a data de "
    "emissao ou de saida."
)
CANCEL_REASON = "Pedido cancelado pelo cliente antes da entrega"


def _message(name: str, inner: str, version: str = "4.00") -> bytes:
    return f'<{name} xmlns="{NFE_NS}" versao="{version}">{inner}</{name}>'.encode()


def _strip_declaration(document: bytes) -> bytes:
    text = document.lstrip()
    return text[text.index(b"?>") + 2 :].lstrip() if text.startswith(b"<?xml") else text


def invoice_of(cnpj: str = ISSUER_CNPJ) -> Invoice:
    """The sample invoice, issued by ``cnpj``."""
    payload = invoice_payload()
    payload["issuer"]["cnpj"] = cnpj
    return validate_invoice(payload)


def signed_nfe(
    a1: A1Certificate,
    *,
    number: int = 1,
    cnpj: str = ISSUER_CNPJ,
    random_code: int | None = None,
    issued_at: datetime = ISSUED_AT,
) -> tuple[bytes, str]:
    """A signed NF-e of the sample invoice (SP, series 1, homologation) and its 44-digit key.

    Args:
        a1: The signer (its CNPJ should be ``cnpj``).
        number: nNF.
        cnpj: The issuer.
        random_code: cNF; derived from ``number`` by default, so the same number gives the same key.
        issued_at: dhEmi.
    """
    invoice = invoice_of(cnpj)
    key = sample_key(invoice, number=number, issued_at=issued_at)
    if random_code is not None:
        key = build_access_key(
            uf_code=key.uf_code, year=key.year, month=key.month, issuer=key.issuer, model=key.model,
            series=key.series, number=key.number, emission_type=key.emission_type, random_code=random_code,
        )  # fmt: skip
    unsigned = build_nfe(invoice, key=key, issued_at=issued_at, environment=2, software_version="tests-1.0")
    return sign_enveloped(unsigned, a1), key.text


def resigned(signed: bytes, a1: A1Certificate, **changes: str) -> bytes:
    """``signed`` with some ``ide`` fields changed (``nNF="9"``), its signature made anew."""
    root = etree.fromstring(signed)
    signature = root.find(f"{{{DS_NS}}}Signature")
    root.remove(signature)
    for name, value in changes.items():
        root.find(f"{{{NFE_NS}}}infNFe/{{{NFE_NS}}}ide/{{{NFE_NS}}}{name}").text = value
    return sign_enveloped(etree.tostring(root), a1)


def tampered(signed: bytes) -> bytes:
    """``signed`` with a value changed after signing (the signature no longer verifies)."""
    return signed.replace(b"<natOp>Venda de mercadoria</natOp>", b"<natOp>Venda de mercadorias</natOp>", 1)


def tampered_event(signed: bytes) -> bytes:
    """A signed cancellation (default reason) whose xJust changed after signing."""
    return signed.replace(CANCEL_REASON.encode(), CANCEL_REASON.replace("cliente", "comprador").encode(), 1)


def digest_of(signed: bytes) -> str:
    """The DigestValue of a signed document's signature (what protNFe/digVal repeats)."""
    found = etree.fromstring(signed).findtext(f".//{{{DS_NS}}}DigestValue")
    return "".join((found or "").split())


def envi_nfe(nfes: Sequence[bytes], *, synchronous: bool = True, lot: int = 1) -> bytes:
    """``enviNFe`` around signed NF-e (embedded byte for byte)."""
    head = f"<idLote>{lot}</idLote><indSinc>{1 if synchronous else 0}</indSinc>".encode()
    body = b"".join(_strip_declaration(nfe) for nfe in nfes)
    return f'<enviNFe xmlns="{NFE_NS}" versao="4.00">'.encode() + head + body + b"</enviNFe>"


def cons_reci_nfe(receipt: str) -> bytes:
    """``consReciNFe``: the outcome of receipt (nRec) ``receipt``."""
    return _message("consReciNFe", f"<tpAmb>2</tpAmb><nRec>{escape(receipt)}</nRec>")


def cons_sit_nfe(key: str) -> bytes:
    """``consSitNFe``: the situation of NF-e ``key``."""
    return _message("consSitNFe", f"<tpAmb>2</tpAmb><xServ>CONSULTAR</xServ><chNFe>{escape(key)}</chNFe>")


def cons_stat_serv(uf_code: int = 35) -> bytes:
    """``consStatServ`` for the authoriser of UF ``uf_code``."""
    return _message("consStatServ", f"<tpAmb>2</tpAmb><cUF>{uf_code}</cUF><xServ>STATUS</xServ>")


def _evento(key: str, event_type: str, sequence: int, detail: str, cnpj: str | None = None) -> bytes:
    info = (
        f'<infEvento Id="ID{event_type}{key}{sequence:02d}"><cOrgao>{key[:2]}</cOrgao><tpAmb>2</tpAmb>'
        f"<CNPJ>{cnpj or key[6:20]}</CNPJ><chNFe>{key}</chNFe><dhEvento>2026-11-20T11:00:00-03:00</dhEvento>"
        f"<tpEvento>{event_type}</tpEvento><nSeqEvento>{sequence}</nSeqEvento><verEvento>1.00</verEvento>"
        f'<detEvento versao="1.00">{detail}</detEvento></infEvento>'
    )
    return _message("evento", info, "1.00")


def cancellation(
    a1: A1Certificate, key: str, protocol: str, *, reason: str = CANCEL_REASON, cnpj: str | None = None
) -> bytes:
    """A signed ``evento`` 110111 cancelling ``key`` authorised under ``protocol``."""
    detail = f"<descEvento>Cancelamento</descEvento><nProt>{protocol}</nProt><xJust>{escape(reason)}</xJust>"
    return sign_enveloped(_evento(key, "110111", 1, detail, cnpj), a1)


def correction(a1: A1Certificate, key: str, *, sequence: int, text: str) -> bytes:
    """A signed ``evento`` 110110 (carta de correção) number ``sequence`` of ``key``."""
    detail = (
        f"<descEvento>Carta de Correcao</descEvento><xCorrecao>{escape(text)}</xCorrecao>"
        f"<xCondUso>{CORRECTION_TERMS}</xCondUso>"
    )
    return sign_enveloped(_evento(key, "110110", sequence, detail), a1)


def env_evento(events: Sequence[bytes], *, lot: int = 1) -> bytes:
    """``envEvento`` around signed ``evento`` documents."""
    body = b"".join(_strip_declaration(event) for event in events)
    head = f'<envEvento xmlns="{NFE_NS}" versao="1.00"><idLote>{lot}</idLote>'.encode()
    return head + body + b"</envEvento>"


def inut_nfe(
    a1: A1Certificate,
    *,
    cnpj: str,
    first: int,
    last: int,
    year: int = 26,
    model: int = 55,
    series: int = 1,
    uf_code: int = 35,
    reason: str = "Numeracao pulada por falha no sistema",
) -> bytes:
    """A signed ``inutNFe`` of numbers ``first..last`` of a series."""
    identifier = f"ID{uf_code}{year:02d}{cnpj}{model:02d}{series:03d}{first:09d}{last:09d}"
    info = (
        f'<infInut Id="{identifier}"><tpAmb>2</tpAmb><xServ>INUTILIZAR</xServ><cUF>{uf_code}</cUF>'
        f"<ano>{year:02d}</ano><CNPJ>{cnpj}</CNPJ><mod>{model}</mod><serie>{series}</serie>"
        f"<nNFIni>{first}</nNFIni><nNFFin>{last}</nNFFin><xJust>{escape(reason)}</xJust></infInut>"
    )
    return sign_enveloped(_message("inutNFe", info), a1)
