"""Events (NFeRecepcaoEvento4) and inutilização (NFeInutilizacao4), their natural behaviour.

Events: the lote answers 128 with one ``retEvento`` per event. Each event is checked in this
order: signature (297), type handled (491: only 110111 cancellation and 110110 CC-e), ``@Id``
and ``detEvento`` against their specific schema (493), key authorised here (494), author is the
issuer (574). A cancellation then needs no earlier cancellation (573), the NF-e's nProt (222)
and to arrive within the window after dhRecbto (501, window in
:attr:`~.state.EmulatorState.cancel_window`, measured on the emulator's offset clock). A CC-e
needs the NF-e not cancelled (580) and a nSeqEvento above the last CC-e's (573). A registered
event answers 135 with its own nProt and is kept as ``procEventoNFe``.

Inutilização: signature (297), ``@Id`` composition (227), range order (224), a number of the
range used by an authorised NF-e (241), the same range inutilised before (563) or an overlap
with another (256), else 102 with nProt and the range recorded.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from ..soap import serialize
from . import codes, facts
from .answers import (
    EventFields,
    Header,
    InutilizedFields,
    Verdict,
    proc_evento,
    ret_env_evento,
    ret_evento,
    ret_inut_nfe,
    verdict,
)
from .base import Context, Outcome, header
from .state import Authorization, InutilizedRange, RegisteredEvent

NS = facts.NS
CANCELLATION = "110111"
CORRECTION = "110110"
_DESCRIPTIONS = MappingProxyType(
    {
        CANCELLATION: frozenset({"Cancelamento"}),
        CORRECTION: frozenset({"Carta de Correção", "Carta de Correcao"}),
    }
)


def register_events(root: Any, context: Context) -> Outcome:
    """``envEvento``: 128, and a ``retEvento`` per event."""
    state = context.state
    head = header(root, state, uf_code=state.uf_code)
    organ = facts.organ(root, state)
    answers: list[bytes] = []
    cstats: list[int] = []
    for event in root.findall("n:evento", NS):
        answer, cstat = _event(event, head, organ, context)
        answers.append(answer)
        cstats.append(cstat)
    answer = ret_env_evento(
        head, verdict(codes.EVENT_LOT_PROCESSED), lot=facts.lot(root), organ=organ, events=answers
    )
    return Outcome(answer=answer, cstat=codes.EVENT_LOT_PROCESSED, document_cstats=cstats)


def _event(event: Any, head: Header, organ: str, context: Context) -> tuple[bytes, int]:
    state = context.state
    info = event.find("n:infEvento", NS)
    key = facts.text(info, "n:chNFe") or facts.NO_KEY
    event_type = facts.text(info, "n:tpEvento") or ""
    sequence = facts.text(info, "n:nSeqEvento") or "1"
    fields = EventFields(
        key=key,
        event_type=event_type,
        sequence=sequence,
        description=facts.text(info, "n:detEvento/n:descEvento"),
    )

    def answer(found: Verdict, protocol: str | None = None) -> tuple[bytes, int]:
        return ret_evento(head, found, organ=organ, event=fields, protocol=protocol), found.cstat

    if info is None:
        return answer(verdict(codes.SCHEMA, "evento without infEvento"))
    problem = context.checks.signature_problem(serialize(event))
    if problem:
        return answer(verdict(codes.SIGNATURE, problem))
    if event_type not in _DESCRIPTIONS:
        return answer(verdict(codes.EVENT_TYPE_INVALID, f"tpEvento {event_type} is not emulated"))
    problem = _detail_problem(info, event_type, key, sequence)
    if problem:
        return answer(verdict(codes.EVENT_SCHEMA, problem))
    authorization = state.authorizations.get(key)
    if authorization is None:
        return answer(verdict(codes.EVENT_KEY_UNKNOWN))
    if facts.issuer(info) != authorization.cnpj:
        return answer(verdict(codes.EVENT_AUTHOR))
    refusal = (_cancellation_refusal if event_type == CANCELLATION else _correction_refusal)(
        info, authorization, context
    )
    if refusal is not None:
        return answer(refusal)
    protocol = state.next_protocol(facts.key_uf(key, state))
    registered, cstat = answer(verdict(codes.EVENT_REGISTERED), protocol)
    authorization.events.append(
        RegisteredEvent(
            key=key,
            event_type=event_type,
            sequence=int(sequence),
            protocol=protocol,
            registered_at=head.received_at,
            proc_xml=proc_evento(serialize(event), registered),
        )
    )
    return registered, cstat


def _detail_problem(info: Any, event_type: str, key: str, sequence: str) -> str | None:
    """What breaks the event's specific schema (e110111 / e110110) or its ``@Id``."""
    expected_id = f"ID{event_type}{key}{int(sequence):02d}" if sequence.isdigit() else None
    if info.get("Id") != expected_id:
        return f"Id is {info.get('Id')!r}, expected {expected_id!r}"
    description = facts.text(info, "n:detEvento/n:descEvento")
    if description not in _DESCRIPTIONS[event_type]:
        return f"descEvento {description!r} is not one of {sorted(_DESCRIPTIONS[event_type])}"
    if event_type == CANCELLATION:
        protocol = facts.text(info, "n:detEvento/n:nProt") or ""
        if not (len(protocol) == 15 and protocol.isdigit()):
            return f"nProt must be 15 digits, is {protocol!r}"
        return _length_problem("xJust", facts.text(info, "n:detEvento/n:xJust"), 255)
    if facts.text(info, "n:detEvento/n:xCondUso") is None:
        return "xCondUso is missing"
    return _length_problem("xCorrecao", facts.text(info, "n:detEvento/n:xCorrecao"), 1000)


def _length_problem(name: str, value: str | None, longest: int) -> str | None:
    if value is None or not 15 <= len(value) <= longest or value != value.strip():
        return f"{name} must have 15 to {longest} characters without edge blanks"
    return None


def _cancellation_refusal(info: Any, authorization: Authorization, context: Context) -> Verdict | None:
    state = context.state
    if authorization.cancellation is not None:
        return verdict(codes.DUPLICATE_EVENT, f"nProt:{authorization.cancellation.protocol}")
    if facts.text(info, "n:detEvento/n:nProt") != authorization.protocol:
        return verdict(codes.PROTOCOL_DIFFERS)
    if state.now() - authorization.received_at > state.cancel_window:
        return verdict(codes.CANCEL_WINDOW)
    return None


def _correction_refusal(info: Any, authorization: Authorization, context: Context) -> Verdict | None:
    if authorization.cancellation is not None:
        return verdict(codes.EVENT_NEEDS_AUTHORIZED, "NF-e cancelada")
    sequences = [e.sequence for e in authorization.events if e.event_type == CORRECTION]
    sequence = int(facts.text(info, "n:nSeqEvento") or "0")
    if sequences and sequence <= max(sequences):
        return verdict(codes.DUPLICATE_EVENT, f"nSeqEvento must be above {max(sequences)}")
    return None


# --- NFeInutilizacao4 --------------------------------------------------------------------------


def inutilize(root: Any, context: Context) -> Outcome:
    """``inutNFe``: 102 and the range recorded, or the rejection."""
    state = context.state
    head = header(root, state)
    info = root.find("n:infInut", NS)

    def read(name: str) -> str:
        return facts.text(info, f"n:{name}") or ""

    fields = InutilizedFields(
        year=read("ano"),
        cnpj=read("CNPJ"),
        model=read("mod"),
        series=read("serie"),
        first=read("nNFIni"),
        last=read("nNFFin"),
    )

    def answer(found: Verdict, protocol: str | None = None) -> Outcome:
        return Outcome(answer=ret_inut_nfe(head, found, request=fields, protocol=protocol), cstat=found.cstat)

    numbers = [read(name) for name in ("mod", "serie", "nNFIni", "nNFFin", "cUF", "ano")]
    if info is None or not all(n.isdigit() for n in numbers) or not read("CNPJ"):
        return answer(verdict(codes.SCHEMA, "infInut is incomplete"))
    problem = context.checks.signature_problem(serialize(root))
    if problem:
        return answer(verdict(codes.SIGNATURE, problem))
    model, series, first, last = (int(value) for value in numbers[:4])
    expected_id = f"ID{read('cUF')}{read('ano')}{read('CNPJ')}{model:02d}{series:03d}{first:09d}{last:09d}"
    if info.get("Id") != expected_id:
        return answer(verdict(codes.ID_COMPOSITION, f"Id is {info.get('Id')!r}, expected {expected_id!r}"))
    if first > last:
        return answer(verdict(codes.RANGE_INVERTED))
    cnpj = read("CNPJ")
    used = state.used_numbers(cnpj, model, series, first, last)
    if used:
        return answer(verdict(codes.RANGE_USED, f"nNF {used[0]}"))
    overlapping = state.inutilized_overlapping(cnpj, model, series, first, last)
    if any((r.first, r.last) == (first, last) for r in overlapping):
        return answer(verdict(codes.RANGE_ALREADY_INUTILIZED))
    if overlapping:
        return answer(
            verdict(codes.RANGE_OVERLAPS_INUTILIZED, f"{overlapping[0].first}-{overlapping[0].last}")
        )
    protocol = state.next_protocol(head.uf_code)
    state.inutilized.append(
        InutilizedRange(
            cnpj=cnpj,
            model=model,
            series=series,
            first=first,
            last=last,
            protocol=protocol,
            received_at=head.received_at,
        )
    )
    return answer(verdict(codes.INUTILIZED), protocol)
