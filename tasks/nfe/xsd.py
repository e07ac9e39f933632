"""XSD validation of NF-e documents against the official schemas nfelib ships (PL_010f, events v1.00).

:func:`schema_errors` picks the schema from the document's root element (and, for events, from
its ``tpEvento``: a cancellation and a CC-e each validate against their own event schema) and
returns human-readable messages with line numbers. Compiled schemas are cached per process; a
compiled schema is used by one thread at a time (lxml keeps the error log on the schema object).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import nfelib
from lxml import etree

from tornado_core import NonRetryable

from .signing import DS_NS, NFE_NS, parse_untrusted

_NFE = "nfe/schemas/v4_0"
#: Root element -> schema file (relative to the nfelib package) for the roots with one schema.
ROOT_SCHEMAS: Mapping[str, str] = MappingProxyType({
    "NFe": f"{_NFE}/nfe_v4.00.xsd",
    "nfeProc": f"{_NFE}/procNFe_v4.00.xsd",
    "enviNFe": f"{_NFE}/enviNFe_v4.00.xsd",
    "retEnviNFe": f"{_NFE}/retEnviNFe_v4.00.xsd",
    "consReciNFe": f"{_NFE}/consReciNFe_v4.00.xsd",
    "retConsReciNFe": f"{_NFE}/retConsReciNFe_v4.00.xsd",
    "consSitNFe": f"{_NFE}/consSitNFe_v4.00.xsd",
    "retConsSitNFe": f"{_NFE}/retConsSitNFe_v4.00.xsd",
    "consStatServ": f"{_NFE}/consStatServ_v4.00.xsd",
    "retConsStatServ": f"{_NFE}/retConsStatServ_v4.00.xsd",
    "inutNFe": f"{_NFE}/inutNFe_v4.00.xsd",
    "retInutNFe": f"{_NFE}/retInutNFe_v4.00.xsd",
    "ProcInutNFe": f"{_NFE}/procInutNFe_v4.00.xsd",
    "retEnvEvento": "nfe_evento_generico/schemas/v1_0/retEnvEvento_v1.00.xsd",
})  # fmt: skip

_CANCEL = "nfe_evento_cancel/schemas/v1_0"
_CCE = "nfe_evento_cce/schemas/v1_0"
_EPEC = "nfe_epec/schemas/v1_0"
_MDE = "nfe_evento_mde/schemas/v1_0"
_CONFIRMATION = MappingProxyType(
    {
        "envEvento": f"{_MDE}/envConfRecebto_v1.00.xsd",
        "evento": f"{_MDE}/confRecebto_v1.00.xsd",
        "procEventoNFe": f"{_MDE}/procConfRecebtoNFe_v1.00.xsd",
    }
)
#: tpEvento -> root element -> schema file, for the event roots (``envEvento``, ``evento``,
#: ``procEventoNFe``), whose schema depends on the event.
EVENT_SCHEMAS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "110111": MappingProxyType({  # cancellation
        "envEvento": f"{_CANCEL}/envEventoCancNFe_v1.00.xsd",
        "evento": f"{_CANCEL}/eventoCancNFe_v1.00.xsd",
        "procEventoNFe": f"{_CANCEL}/procEventoCancNFe_v1.00.xsd",
    }),
    "110110": MappingProxyType({  # carta de correção (CC-e)
        "envEvento": f"{_CCE}/envCCe_v1.00.xsd",
        "evento": f"{_CCE}/CCe_v1.00.xsd",
        "procEventoNFe": f"{_CCE}/procCCeNFe_v1.00.xsd",
    }),
    "110140": MappingProxyType({  # EPEC
        "envEvento": f"{_EPEC}/envEPEC_v1.00.xsd",
        "evento": f"{_EPEC}/EPEC_v1.00.xsd",
        "procEventoNFe": f"{_EPEC}/procEPEC_v1.00.xsd",
    }),
    # manifestação do destinatário: confirmation, awareness, unknown, not performed
    "210200": _CONFIRMATION,
    "210210": _CONFIRMATION,
    "210220": _CONFIRMATION,
    "210240": _CONFIRMATION,
})  # fmt: skip
#: How many errors the message of :class:`SchemaInvalid` lists (all are on ``errors``).
MESSAGE_ERRORS = 20


class SchemaInvalid(NonRetryable):
    """A document does not match its XSD.

    Attributes:
        what: What the document is (``"NF-e 35..."``, ``"retEnviNFe"``...).
        errors: Every message of :func:`schema_errors`.
    """

    def __init__(self, what: str, errors: list[str]) -> None:
        shown = "; ".join(errors[:MESSAGE_ERRORS])
        more = f" (and {len(errors) - MESSAGE_ERRORS} more)" if len(errors) > MESSAGE_ERRORS else ""
        super().__init__(f"{what} does not match its XSD: {shown}{more}")
        self.what = what
        self.errors = errors


class _NoSchema(Exception):
    """No schema fits a document; the message says why."""


def schema_errors(xml: bytes) -> list[str]:
    """The XSD errors of an NF-e web-service document, ``"line N: message"`` each; empty when valid.

    Roots: those of :data:`ROOT_SCHEMAS`, and ``envEvento``/``evento``/``procEventoNFe`` of the
    events in :data:`EVENT_SCHEMAS`. A document that is not well-formed, has an unknown root or
    an event type without a schema gives one error saying so.
    """
    try:
        root = parse_untrusted(xml)
    except ValueError as exc:
        return [str(exc)]
    try:
        relative = _schema_file(root)
    except _NoSchema as exc:
        return [str(exc)]
    schema = _compiled(relative)
    if schema.validate(root):
        return []
    return [_message(entry) for entry in schema.error_log]


def require_schema_valid(xml: bytes, what: str) -> None:
    """Raise unless ``xml`` matches its XSD.

    Args:
        xml: The document.
        what: How to name it in the error (``"NF-e 3524..."``).

    Raises:
        SchemaInvalid: With every error of :func:`schema_errors`.
    """
    errors = schema_errors(xml)
    if errors:
        raise SchemaInvalid(what, errors)


def schema_path(relative: str) -> Path:
    """Absolute path of a schema file of the installed nfelib (``relative`` as in :data:`ROOT_SCHEMAS`)."""
    return Path(nfelib.__file__).resolve().parent / relative


def _schema_file(root: Any) -> str:
    """The schema file for ``root``.

    Raises:
        _NoSchema: Saying why there is none.
    """
    name = etree.QName(root)
    if name.namespace != NFE_NS:
        raise _NoSchema(f"the root element {name.text} is not in the NF-e namespace {NFE_NS}")
    if name.localname in ROOT_SCHEMAS:
        return ROOT_SCHEMAS[name.localname]
    if name.localname not in {"envEvento", "evento", "procEventoNFe"}:
        known = ", ".join(sorted([*ROOT_SCHEMAS, "envEvento", "evento", "procEventoNFe"]))
        raise _NoSchema(f"unknown root element {name.localname}: no XSD for it (known roots: {known})")
    types = sorted({(text or "").strip() for text in root.itertext(tag=f"{{{NFE_NS}}}tpEvento")})
    if len(types) != 1:
        found = ", ".join(types) or "none"
        message = f"{name.localname} must carry one event type (tpEvento) to pick its XSD, found: {found}"
        raise _NoSchema(message)
    if types[0] not in EVENT_SCHEMAS:
        known = ", ".join(sorted(EVENT_SCHEMAS))
        raise _NoSchema(f"no XSD for event type (tpEvento) {types[0]} (known: {known})")
    return EVENT_SCHEMAS[types[0]][name.localname]


def _compiled(relative: str) -> Any:
    """The compiled schema of a file, for the calling thread only.

    lxml ties a compiled schema to the thread that built it (its libxml2 dictionary): validating
    a document of another thread fails at random with "xmlSchemaPValAttrNodeValue, the given type
    is not a built-in type". Each thread compiles its own once (about 10 ms); the schema also keeps
    its error log on itself, which another thread would overwrite. Compiling is not thread-safe in
    libxml2 either (its built-in types are set up on first use): threads compile one at a time.
    """
    schemas: dict[str, Any] = _thread_cache().__dict__.setdefault("schemas", {})
    if relative not in schemas:
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        with _compile_lock():
            schemas[relative] = etree.XMLSchema(etree.parse(str(schema_path(relative)), parser))
    return schemas[relative]


@functools.cache
def _thread_cache() -> threading.local:
    """Per-thread storage of this module (created on first use, not at import)."""
    return threading.local()


@functools.cache
def _compile_lock() -> threading.Lock:
    """Held while a schema compiles (created on first use, not at import)."""
    return threading.Lock()


def _message(entry: Any) -> str:
    text = str(entry.message).replace(f"{{{NFE_NS}}}", "").replace(f"{{{DS_NS}}}", "ds:")
    return f"line {entry.line}: {text}"
