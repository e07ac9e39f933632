"""What the emulator checks on every document: the XSD, the signature, the key against ``ide``.

The XSD and signature checks are the project's own (:mod:`tornado_tasks.nfe.xsd` and
:mod:`tornado_tasks.nfe.signing`), imported when first called, behind an injectable
:class:`Checks` so a test can swap them. The key check is the XML builder's, always applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..soap import serialize
from ..xml_builder import key_problems as builder_key_problems


def project_schema_errors(xml: bytes) -> list[str]:
    """The XSD errors of an NF-e message (:func:`tornado_tasks.nfe.xsd.schema_errors`)."""
    from ..xsd import schema_errors

    return schema_errors(xml)


def project_signature_problem(xml: bytes) -> str | None:
    """Why the enveloped signature of ``xml`` does not verify, or ``None`` if it does.

    Uses :func:`tornado_tasks.nfe.signing.verify_enveloped`.
    """
    from ..signing import SignatureInvalid, verify_enveloped

    try:
        verify_enveloped(xml)
    except SignatureInvalid as exc:
        return str(exc) or type(exc).__name__
    return None


@dataclass(frozen=True, kw_only=True)
class Checks:
    """The document checks the emulator runs, injectable.

    Attributes:
        schema_errors: XSD errors of a whole message (``enviNFe``, ``envEvento``...); empty when
            valid.
        signature_problem: Why the enveloped signature of a standalone signed document
            (``NFe``, ``evento``, ``inutNFe``) fails, or ``None``.
    """

    schema_errors: Callable[[bytes], list[str]] = project_schema_errors
    signature_problem: Callable[[bytes], str | None] = project_signature_problem


def key_problems(nfe: Any) -> list[str]:
    """How ``infNFe/@Id`` of an ``NFe`` element disagrees with its ``ide`` and issuer fields.

    The rules are :func:`tornado_tasks.nfe.xml_builder.key_problems` (the builder's own re-check):
    a valid key whose cUF, AAMM, CNPJ/CPF, mod, serie, nNF, tpEmis, cNF and cDV are the
    document's, and the issuer's UF that of the key.

    Returns:
        ``"field: message"`` per disagreement; empty when the key is valid and matches.
    """
    return [f"{p['field']}: {p['message']}" for p in builder_key_problems(serialize(nfe))]
