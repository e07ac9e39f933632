"""The unsigned NF-e 4.00 XML of an invoice, built with nfelib's bindings, and the key/ide agreement check.

:func:`build_nfe` turns a validated :class:`~.invoice.Invoice` and the access key the numbering
allocator gave it into compact XML (no declaration, no whitespace between tags), ready for
:func:`~.signing.sign_enveloped`. The ``ide`` fields that make up the key (cUF, cNF, mod, serie,
nNF, tpEmis, cDV) are taken **from** the key, so they cannot disagree with ``infNFe/@Id``.

Fixed choices of this builder (the invoice does not carry them): a sale going out (``tpNF`` 1,
``finNFe`` 1), portrait DANFE (``tpImp`` 1), issued by the taxpayer's own software
(``procEmi`` 0), not in person and without an intermediary (``indPres`` 9, ``indIntermed`` 0),
no freight (``modFrete`` 9); ``idDest`` 1 when issuer and recipient are in the same UF, else 2;
``indFinal`` 1 for a recipient without IE (``indIEDest`` 9), else 0; products without GTIN.

:func:`key_problems` re-checks a built or received NF-e: its Id is a valid key that agrees with
the ``ide`` fields, the month of ``dhEmi``, the issuer's CNPJ/CPF and UF.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from nfelib.nfe.bindings.v4_0.leiaute_nfe_v4_00 import Tendereco, TenderEmi
from nfelib.nfe.bindings.v4_0.nfe_v4_00 import Nfe
from xsdata.formats.dataclass.context import XmlContext
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig

from tornado_core import PayloadInvalid

from .access_key import UF_CODES, AccessKey, AccessKeyInvalid, access_key_problems, parse_access_key
from .invoice import Address, Invoice, Issuer, Item, Payment, Recipient, Totals
from .signing import NFE_NS, parse_untrusted
from .xml_parts import Unmappable, contribution_group, icms_group, money, quantity, unit_price

#: ``dest/xNome`` of every NF-e issued in homologation (tpAmb 2).
HOMOLOGATION_NAME = "NF-E EMITIDA EM AMBIENTE DE HOMOLOGACAO - SEM VALOR FISCAL"
#: tpAmb: 1 production, 2 homologation.
ENVIRONMENTS = frozenset({1, 2})
_I: Any = Nfe.InfNfe
_ZERO = "0.00"


@dataclass(frozen=True)
class Contingency:
    """Why and since when the issuer is in contingency (``ide/dhCont``, ``ide/xJust``), for tpEmis != 1.

    Attributes:
        started_at: When the contingency began (aware).
        reason: The justification, 15 to 256 characters.

    Raises:
        ValueError: On construction, for a naive ``started_at`` or a reason of the wrong length.
    """

    started_at: datetime
    reason: str

    def __post_init__(self) -> None:
        if self.started_at.utcoffset() is None:
            raise ValueError("Contingency.started_at must be timezone-aware")
        if not 15 <= len(self.reason.strip()) <= 256:
            length = len(self.reason.strip())
            raise ValueError(f"Contingency.reason must have 15 to 256 characters, has {length}")


def build_nfe(
    invoice: Invoice,
    *,
    key: AccessKey,
    issued_at: datetime,
    environment: int,
    software_version: str,
    contingency: Contingency | None = None,
) -> bytes:
    """The unsigned NF-e (``<NFe xmlns="http://www.portalfiscal.inf.br/nfe">``) of ``invoice``.

    Args:
        invoice: The validated invoice.
        key: Its access key (from the numbering allocator), whose tpEmis says normal or contingency.
        issued_at: ``dhEmi`` (aware; the key's year and month are those of this moment).
        environment: tpAmb, 1 production or 2 homologation (the recipient's name is then
            :data:`HOMOLOGATION_NAME`).
        software_version: ``verProc``, 1 to 20 characters.
        contingency: Required when the key's tpEmis is not 1, refused when it is.

    Raises:
        PayloadInvalid: An item's tax the builder cannot map (``items[3].icms.cst``...).
        AccessKeyInvalid: The key does not belong to this invoice, moment or contingency.
        ValueError: A bad ``environment``, ``software_version`` or a naive ``issued_at``.
    """
    _check_arguments(issued_at, environment, software_version)
    problems = _argument_problems(invoice, key, contingency)
    if problems:
        raise AccessKeyInvalid(problems)
    info = _I(
        versao="4.00",
        Id=key.xml_id,
        ide=_ide(invoice, key, issued_at, environment, software_version, contingency),
        emit=_emit(invoice.issuer),
        dest=_dest(invoice.recipient, environment),
        det=_items(invoice),
        total=_I.Total(ICMSTot=_totals(invoice.totals)),
        transp=_I.Transp(modFrete="9"),
        pag=_I.Pag(
            detPag=[_payment(p) for p in invoice.payments],
            vTroco=money(invoice.change) if invoice.change else None,
        ),
    )
    xml = _serialize(Nfe(infNFe=info))
    problems = key_problems(xml)
    if problems:
        raise AccessKeyInvalid(problems)
    return xml


def key_problems(xml: bytes) -> list[dict[str, str]]:
    """Where an NF-e (or the one NF-e of an ``nfeProc``/``enviNFe``) disagrees with its own access key.

    Checks that ``infNFe/@Id`` is ``"NFe"`` and a valid key, that ``ide`` cUF, cNF, mod, serie,
    nNF, tpEmis and cDV and the year/month of ``dhEmi`` are the key's, that ``dhCont``/``xJust``
    are present in contingency, and that the issuer's CNPJ/CPF and UF are the key's.

    Returns:
        ``[{"field": "ide.nNF", "message": "..."}]``, empty when everything agrees.
    """
    try:
        root = parse_untrusted(xml)
    except ValueError as exc:
        return [{"field": "(xml)", "message": str(exc)}]
    found = list(root.iter(f"{{{NFE_NS}}}infNFe"))
    if len(found) != 1:
        return [{"field": "infNFe", "message": f"expected one infNFe, found {len(found)}"}]
    identifier = found[0].get("Id") or ""
    if not identifier.startswith("NFe"):
        message = f"must be 'NFe' and the 44-character key, got {identifier!r}"
        return [{"field": "infNFe.Id", "message": message}]
    invalid = access_key_problems(identifier[3:])
    if invalid:
        return [{"field": "infNFe.Id", "message": f"{p['field']}: {p['message']}"} for p in invalid]
    key = parse_access_key(identifier[3:])
    return _ide_problems(found[0], key) + _issuer_problems(found[0], key)


# --- checks ---------------------------------------------------------------------------------------------


def _check_arguments(issued_at: datetime, environment: int, software_version: str) -> None:
    if issued_at.utcoffset() is None:
        raise ValueError("issued_at must be timezone-aware (dhEmi carries the UTC offset)")
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment (tpAmb) must be 1 or 2, got {environment!r}")
    if not 1 <= len(software_version) <= 20:
        raise ValueError(f"software_version (verProc) must have 1 to 20 characters, got {software_version!r}")


def _argument_problems(
    invoice: Invoice, key: AccessKey, contingency: Contingency | None
) -> list[dict[str, str]]:
    problems = []
    if key.model != invoice.model:
        problems.append(_disagree("ide.mod", str(invoice.model), str(key.model), "the invoice"))
    if key.series != invoice.series:
        problems.append(_disagree("ide.serie", str(invoice.series), str(key.series), "the invoice"))
    if key.emission_type != 1 and contingency is None:
        message = f"required when tpEmis is {key.emission_type} (contingency): pass a Contingency"
        problems.append({"field": "ide.dhCont", "message": message})
    if key.emission_type == 1 and contingency is not None:
        message = "is 1 (normal) in the key, but a contingency was given: allocate a contingency key"
        problems.append({"field": "ide.tpEmis", "message": message})
    return problems


def _ide_problems(info: Any, key: AccessKey) -> list[dict[str, str]]:
    ide = {_local(child): (child.text or "") for child in info.findall(f"{{{NFE_NS}}}ide/*")}
    expected = {
        "cUF": f"{key.uf_code:02d}",
        "cNF": f"{key.random_code:08d}",
        "mod": str(key.model),
        "serie": str(key.series),
        "nNF": str(key.number),
        "tpEmis": str(key.emission_type),
        "cDV": str(key.check_digit),
    }
    problems = [
        _disagree(f"ide.{name}", ide.get(name), wanted)
        for name, wanted in expected.items()
        if ide.get(name) != wanted
    ]
    issued = ide.get("dhEmi", "")
    month = f"{key.year % 100:02d}{key.month:02d}"
    if issued[2:4] + issued[5:7] != month:
        message = f"is {issued!r}, but the key {key} was made for {key.year}-{key.month:02d} (AAMM {month})"
        problems.append({"field": "ide.dhEmi", "message": message})
    if key.emission_type != 1:
        for name in ("dhCont", "xJust"):
            if not ide.get(name):
                message = f"required when tpEmis is {key.emission_type} (contingency)"
                problems.append({"field": f"ide.{name}", "message": message})
    return problems


def _issuer_problems(info: Any, key: AccessKey) -> list[dict[str, str]]:
    problems = []
    cnpj = info.findtext(f"{{{NFE_NS}}}emit/{{{NFE_NS}}}CNPJ")
    cpf = info.findtext(f"{{{NFE_NS}}}emit/{{{NFE_NS}}}CPF")
    if cnpj is None and cpf is None:
        problems.append({"field": "emit.CNPJ", "message": "missing (neither CNPJ nor CPF)"})
    elif cnpj is not None and cnpj != key.issuer:
        problems.append(_disagree("emit.CNPJ", cnpj, key.issuer))
    elif cnpj is None and (cpf or "").zfill(14) != key.issuer:
        problems.append(_disagree("emit.CPF", cpf, key.issuer[3:]))
    uf = info.findtext(f"{{{NFE_NS}}}emit/{{{NFE_NS}}}enderEmit/{{{NFE_NS}}}UF")
    if UF_CODES.get(uf or "") != key.uf_code:
        message = f"is {uf!r}, but the key's cUF {key.uf_code:02d} is another UF"
        problems.append({"field": "emit.enderEmit.UF", "message": message})
    return problems


def _disagree(field: str, found: str | None, wanted: str, source: str = "") -> dict[str, str]:
    where = source or "the XML"
    if found is None:
        return {"field": field, "message": f"missing; the key says {wanted!r}"}
    return {"field": field, "message": f"{where} says {found!r}, but the key says {wanted!r}"}


def _local(element: Any) -> str:
    return str(element.tag).rpartition("}")[2]


# --- the groups -----------------------------------------------------------------------------------------


def _ide(
    invoice: Invoice,
    key: AccessKey,
    issued_at: datetime,
    environment: int,
    software_version: str,
    contingency: Contingency | None,
) -> Any:
    same_uf = invoice.issuer.address.uf == invoice.recipient.address.uf
    return _I.Ide(
        cUF=f"{key.uf_code:02d}", cNF=f"{key.random_code:08d}", natOp=invoice.operation,
        mod=str(key.model), serie=str(key.series), nNF=str(key.number), dhEmi=_moment(issued_at),
        tpNF="1", idDest="1" if same_uf else "2", cMunFG=invoice.issuer.address.city_code, tpImp="1",
        tpEmis=str(key.emission_type), cDV=str(key.check_digit), tpAmb=str(environment), finNFe="1",
        indFinal="1" if invoice.recipient.ie_indicator == 9 else "0", indPres="9", indIntermed="0",
        procEmi="0", verProc=software_version,
        dhCont=_moment(contingency.started_at) if contingency else None,
        xJust=contingency.reason.strip() if contingency else None,
    )  # fmt: skip


def _emit(issuer: Issuer) -> Any:
    return _I.Emit(
        CNPJ=issuer.cnpj,
        xNome=issuer.name,
        xFant=issuer.trade_name,
        enderEmit=TenderEmi(**_address(issuer.address)),
        IE=issuer.ie,
        CRT=str(issuer.crt),
    )


def _dest(recipient: Recipient, environment: int) -> Any:
    return _I.Dest(
        CNPJ=recipient.cnpj,
        CPF=recipient.cpf,
        xNome=HOMOLOGATION_NAME if environment == 2 else recipient.name,
        enderDest=Tendereco(**_address(recipient.address)),
        indIEDest=str(recipient.ie_indicator),
        IE=recipient.ie,
        email=recipient.email,
    )


def _address(address: Address) -> dict[str, str | None]:
    return {
        "xLgr": address.street, "nro": address.number, "xCpl": address.complement,
        "xBairro": address.district, "cMun": address.city_code, "xMun": address.city, "UF": address.uf,
        "CEP": address.cep, "cPais": "1058", "xPais": "Brasil",
    }  # fmt: skip


def _items(invoice: Invoice) -> list[Any]:
    """The ``det`` elements, or PayloadInvalid naming every tax the builder cannot map."""
    items: list[Any] = []
    problems: list[dict[str, str]] = []
    for index, item in enumerate(invoice.items):
        taxes, found = _taxes(item, invoice.issuer.crt, f"items[{index}]")
        problems += found
        if not found:
            items.append(_I.Det(nItem=str(index + 1), prod=_product(item), imposto=taxes))
    if problems:
        raise PayloadInvalid(problems)
    return items


def _taxes(item: Item, crt: int, field: str) -> tuple[Any, list[dict[str, str]]]:
    """The ``imposto`` of an item, and the problems of its taxes (``items[0].icms.cst``...)."""
    builders: dict[str, tuple[str, Callable[[], Any]]] = {
        "ICMS": ("icms", partial(icms_group, item.icms, crt)),
        "PIS": ("pis", partial(contribution_group, item.pis, "PIS")),
        "COFINS": ("cofins", partial(contribution_group, item.cofins, "COFINS")),
    }
    groups: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for name, (attribute, build) in builders.items():
        try:
            groups[name] = build()
        except Unmappable as exc:
            problems.append({"field": f"{field}.{attribute}.{exc.field}", "message": exc.message})
    return _I.Det.Imposto(**groups), problems


def _product(item: Item) -> Any:
    return _I.Det.Prod(
        cProd=item.code, cEAN="SEM GTIN", xProd=item.description, NCM=item.ncm, CFOP=item.cfop,
        uCom=item.unit, qCom=quantity(item.quantity), vUnCom=unit_price(item.unit_price),
        vProd=money(item.total), cEANTrib="SEM GTIN", uTrib=item.unit, qTrib=quantity(item.quantity),
        vUnTrib=unit_price(item.unit_price), indTot="1",
    )  # fmt: skip


def _totals(totals: Totals) -> Any:
    zeros = ("vICMSDeson", "vFCP", "vBCST", "vST", "vFCPST", "vFCPSTRet", "vFrete", "vSeg", "vDesc", "vII")
    return _I.Total.Icmstot(
        vBC=money(totals.icms_base), vICMS=money(totals.icms), vProd=money(totals.products),
        vIPI=_ZERO, vIPIDevol=_ZERO, vPIS=money(totals.pis), vCOFINS=money(totals.cofins), vOutro=_ZERO,
        vNF=money(totals.invoice), **dict.fromkeys(zeros, _ZERO),
    )  # fmt: skip


def _payment(payment: Payment) -> Any:
    return _I.Pag.DetPag(tPag=payment.method, vPag=money(payment.amount))


def _moment(moment: datetime) -> str:
    """A ``TDateTimeUTC``: ``2024-01-15T10:00:00-03:00`` (seconds, with the UTC offset)."""
    return moment.replace(microsecond=0).isoformat()


def _serialize(document: Any) -> bytes:
    serializer = XmlSerializer(
        context=_binding_context(), config=SerializerConfig(indent="", xml_declaration=False)
    )
    return str(serializer.render(document, ns_map={None: NFE_NS})).encode("utf-8")


@functools.cache
def _binding_context() -> Any:
    """xsdata's metadata of the bindings, built once per process (it costs ~10 ms per document otherwise)."""
    return XmlContext()
