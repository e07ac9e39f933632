"""What every service shares: the outcome record, the context, the answer header, refusals.

A refusal is an answer that carries only a message-level verdict: an XSD failure (225 for a
lote of NF-e, 215 for the other messages), consumo indevido (656), or a stopped service
(108/109). It is a valid ``ret*`` message of the service asked, echoing what the request gave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..soap import NFE_NS, SERVICES
from . import codes, facts
from .answers import (
    Header,
    Verdict,
    ret_cons_reci_nfe,
    ret_cons_sit_nfe,
    ret_cons_stat_serv,
    ret_env_evento,
    ret_envi_nfe,
    ret_inut_nfe,
    verdict,
)
from .checks import Checks
from .scenarios import Behaviour
from .state import EmulatorState


@dataclass(kw_only=True)
class Outcome:
    """An answer and what the request log keeps of it.

    Attributes:
        answer: The ``ret*`` message.
        cstat: Its message-level cStat.
        document_cstats: The cStat of each ``protNFe``/``retEvento`` in it.
    """

    answer: bytes
    cstat: int
    document_cstats: list[int] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a service needs besides the message."""

    state: EmulatorState
    checks: Checks
    behaviour: Behaviour


def header(root: Any, state: EmulatorState, *, uf_code: str | None = None) -> Header:
    """The answer's tpAmb, cUF and reception time, from the request and the emulator's clock."""
    return Header(
        environment=facts.environment(root),
        uf_code=uf_code or facts.uf_code(root, state),
        received_at=state.now(),
    )


def refuse(service: str, root: Any, state: EmulatorState, refusal: Verdict) -> Outcome:
    """The service's answer carrying only a message-level verdict (schema failure, 656, 108, 109)."""
    head = header(root, state)
    if service == "NFeAutorizacao4":
        answer = ret_envi_nfe(head, refusal)
    elif service == "NFeRetAutorizacao4":
        answer = ret_cons_reci_nfe(head, refusal, receipt=facts.receipt_number(root))
    elif service == "NFeConsultaProtocolo4":
        answer = ret_cons_sit_nfe(head, refusal, key=facts.consulted_key(root))
    elif service == "NFeStatusServico4":
        answer = ret_cons_stat_serv(head, refusal)
    elif service == "NFeRecepcaoEvento4":
        organ = facts.organ(root, state)
        answer = ret_env_evento(head, refusal, lot=facts.lot(root), organ=organ)
    else:
        answer = ret_inut_nfe(head, refusal)
    return Outcome(answer=answer, cstat=refusal.cstat)


def schema_refusal(service: str, root: Any, payload: bytes, checks: Checks) -> Verdict | None:
    """225 (lote of NF-e) or 215 (other messages) if the message fails its XSD, else ``None``."""
    code = codes.LOT_SCHEMA if service == "NFeAutorizacao4" else codes.SCHEMA
    expected = SERVICES[service].request
    if root.tag != f"{{{NFE_NS}}}{expected}":
        return verdict(code, f"{service} takes {expected}, not {root.tag}")
    errors = checks.schema_errors(payload)
    return verdict(code, errors[0]) if errors else None
