"""Reading a request message defensively: values are echoed only when they fit the answer's schema.

A request that fails its XSD still deserves a valid answer (225/215, 656, 108...), and that
answer repeats some of the request (``tpAmb``, ``cUF``, ``nRec``, ``chNFe``, ``idLote``,
``cOrgao``). Each reader here returns the request's value when it matches the pattern the
answer requires, and a safe fallback otherwise.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any

from ..access_key import UF_CODES
from ..soap import NFE_NS
from .state import EmulatorState

NS = MappingProxyType({"n": NFE_NS, "ds": "http://www.w3.org/2000/09/xmldsig#"})
_UF_CODES = frozenset(f"{code:02d}" for code in UF_CODES.values())
#: cOrgao may also be 90 (Ambiente Nacional), 91 (AN for events) or 92 (SVC).
_ORGANS = _UF_CODES | {"90", "91", "92"}
_KEY = re.compile(r"[0-9]{6}[0-9A-Z]{12}[0-9]{26}")
_RECEIPT = re.compile(r"[0-9]{15}")
_LOT = re.compile(r"[0-9]{1,15}")
NO_KEY = "0" * 44
NO_RECEIPT = "0" * 15


def text(element: Any, path: str) -> str | None:
    """The text at ``path`` (prefixes ``n:`` NF-e, ``ds:`` XML-DSig) below ``element``, or ``None``."""
    if element is None:
        return None
    found = element.findtext(path, None, NS)
    return None if found is None else str(found)


def environment(root: Any) -> str:
    """tpAmb of the request (``1`` or ``2``), homologation if it has none."""
    found = text(root, ".//n:tpAmb")
    return found if found in ("1", "2") else "2"


def uf_code(root: Any, state: EmulatorState) -> str:
    """cUF of the request (``cUF`` or ``ide/cUF``), or the emulator's own."""
    found = text(root, ".//n:cUF")
    return found if found in _UF_CODES else state.uf_code


def key_uf(key: str, state: EmulatorState) -> str:
    """The UF of an access key, or the emulator's own if the key has no valid one."""
    return key[:2] if key[:2] in _UF_CODES else state.uf_code


def organ(root: Any, state: EmulatorState) -> str:
    """cOrgao of the first event, or the emulator's UF."""
    found = text(root, "n:evento/n:infEvento/n:cOrgao")
    return found if found in _ORGANS else state.uf_code


def receipt_number(root: Any) -> str:
    """nRec of a consReciNFe, or fifteen zeros."""
    found = text(root, "n:nRec") or ""
    return found if _RECEIPT.fullmatch(found) else NO_RECEIPT


def consulted_key(root: Any) -> str:
    """chNFe of a consSitNFe, or 44 zeros."""
    found = text(root, "n:chNFe") or ""
    return found if _KEY.fullmatch(found) else NO_KEY


def lot(root: Any) -> str:
    """idLote of an envEvento, or ``0``."""
    found = text(root, "n:idLote") or ""
    return found if _LOT.fullmatch(found) else "0"


def nfe_key(nfe: Any) -> str:
    """The key in ``infNFe/@Id`` of an ``NFe`` element, or 44 zeros if it is not one."""
    info = nfe.find("n:infNFe", NS)
    identifier = "" if info is None else info.get("Id") or ""
    return identifier[3:] if identifier.startswith("NFe") and _KEY.fullmatch(identifier[3:]) else NO_KEY


def issuer(info: Any) -> str | None:
    """The CNPJ, or the CPF zero-padded to 14, of an element with ``CNPJ``/``CPF`` children."""
    cnpj = text(info, "n:CNPJ")
    if cnpj:
        return cnpj
    cpf = text(info, "n:CPF")
    return cpf.zfill(14) if cpf else None


def about(service: str, root: Any, state: EmulatorState) -> tuple[str | None, list[str]]:
    """The CNPJ a request is about (for per-CNPJ scripts) and the access keys it carries.

    Unknown or malformed requests are about nothing: ``(None, [])``.
    """
    if service == "NFeAutorizacao4":
        nfes = root.findall("n:NFe", NS)
        keys = [nfe_key(nfe) for nfe in nfes]
        return (issuer(nfes[0].find("n:infNFe/n:emit", NS)) if nfes else None), keys
    if service == "NFeRetAutorizacao4":
        receipt = state.receipts.get(receipt_number(root))
        return (receipt.cnpj, list(receipt.keys)) if receipt else (None, [])
    if service == "NFeConsultaProtocolo4":
        key = consulted_key(root)
        return (None, []) if key == NO_KEY else (key[6:20], [key])
    if service == "NFeRecepcaoEvento4":
        infos = root.findall("n:evento/n:infEvento", NS)
        keys = [k for k in (text(i, "n:chNFe") for i in infos) if k]
        return (issuer(infos[0]) if infos else None), keys
    if service == "NFeInutilizacao4":
        return text(root, "n:infInut/n:CNPJ"), []
    return None, []


def digest_value(nfe: Any) -> str | None:
    """The DigestValue of the NF-e's signature (what ``protNFe/digVal`` repeats)."""
    found = text(nfe, "ds:Signature/ds:SignedInfo/ds:Reference/ds:DigestValue")
    return "".join(found.split()) if found else None
