"""The natural behaviour of each service: validation, then the state's rules.

:func:`process` answers a request message the way SEFAZ would, updating the
:class:`~.state.EmulatorState` (service-level refusals are :func:`.base.refuse`). Events and
inutilização live in :mod:`.events`.

The rules, per service:

* NFeAutorizacao4 (``enviNFe``): for the whole lote, 214 above 500 KB, 225 an XSD failure, 452
  a synchronous lote of several NF-e. Each NF-e then gets its ``protNFe``: 297 bad signature,
  502 key disagreeing with ``ide``, 204 key already authorised (its protocol in xMotivo), 539
  number already authorised under another key, 206 number inutilised, else 100 with nProt and
  digVal. ``indSinc=1`` answers 104 with the ``protNFe``; ``indSinc=0`` (or the ``async``
  scenario, which also takes several NF-e with ``indSinc=1``) answers 103 with a receipt.
* NFeRetAutorizacao4 (``consReciNFe``): 106 unknown receipt, 105 while polls remain, then 104
  with the ``protNFe`` of every NF-e of the lote.
* NFeConsultaProtocolo4 (``consSitNFe``): 100 with ``protNFe`` (and the events registered),
  101 when cancelled, 217 unknown key, 236 a key whose check digit or fields are wrong.
* NFeStatusServico4 (``consStatServ``): 107 with tMed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..access_key import AccessKeyInvalid, parse_access_key
from ..soap import serialize
from . import codes, facts
from .answers import (
    Header,
    Verdict,
    prot_nfe,
    ret_cons_reci_nfe,
    ret_cons_sit_nfe,
    ret_cons_stat_serv,
    ret_envi_nfe,
    verdict,
)
from .base import Context, Outcome, header, refuse, schema_refusal
from .checks import key_problems
from .events import inutilize, register_events
from .scenarios import Scenario
from .state import Authorization, Receipt, sefaz_time

NS = facts.NS


#: SEFAZ's limit for an ``enviNFe``.
MAX_LOT_BYTES = 500 * 1024


def process(service: str, root: Any, payload: bytes, context: Context) -> Outcome:
    """The natural answer of ``service`` to the message ``root`` (whose bytes are ``payload``)."""
    if service == "NFeAutorizacao4" and len(payload) > MAX_LOT_BYTES:
        detail = f"{len(payload)} bytes, limit {MAX_LOT_BYTES}"
        return refuse(service, root, context.state, verdict(codes.TOO_LARGE, detail))
    refusal = schema_refusal(service, root, payload, context.checks)
    if refusal is not None:
        return refuse(service, root, context.state, refusal)
    handlers: dict[str, Callable[[Any, Context], Outcome]] = {
        "NFeAutorizacao4": authorize_lot,
        "NFeRetAutorizacao4": poll_receipt,
        "NFeConsultaProtocolo4": consult,
        "NFeStatusServico4": status,
        "NFeRecepcaoEvento4": register_events,
        "NFeInutilizacao4": inutilize,
    }
    return handlers[service](root, context)


# --- NFeAutorizacao4 ---------------------------------------------------------------------------


def authorize_lot(root: Any, context: Context) -> Outcome:
    """``enviNFe``: every NF-e judged and recorded, answered at once (104) or by receipt (103)."""
    state = context.state
    head = header(root, state)
    nfes = root.findall("n:NFe", NS)
    synchronous = facts.text(root, "n:indSinc") == "1" and context.behaviour.scenario is not Scenario.ASYNC
    if not nfes:
        return refuse("NFeAutorizacao4", root, state, verdict(codes.LOT_SCHEMA, "enviNFe without NFe"))
    if synchronous and len(nfes) > 1:
        return refuse("NFeAutorizacao4", root, state, verdict(codes.SYNC_MULTIPLE))
    scripted = context.behaviour
    if scripted.scenario is Scenario.REJECT and scripted.status == codes.LOT_SCHEMA:
        return refuse("NFeAutorizacao4", root, state, verdict(codes.LOT_SCHEMA, "scripted rejection"))
    judged = [_judge(nfe, head, context) for nfe in nfes]
    cstats = [cstat for _, cstat in judged]
    if synchronous:
        answer = ret_envi_nfe(head, verdict(codes.LOT_PROCESSED), protocol=judged[0][0])
        return Outcome(answer=answer, cstat=codes.LOT_PROCESSED, document_cstats=cstats)
    number = state.next_receipt(head.uf_code)
    issuer = facts.issuer(nfes[0].find("n:infNFe/n:emit", NS))
    state.receipts[number] = Receipt(
        number=number,
        cnpj=issuer,
        uf_code=head.uf_code,
        environment=head.environment,
        keys=[facts.nfe_key(nfe) for nfe in nfes],
        polls_left=context.behaviour.polls,
        protocols=[protocol for protocol, _ in judged],
        cstats=cstats,
    )
    answer = ret_envi_nfe(head, verdict(codes.LOT_RECEIVED), receipt=(number, state.average_seconds))
    return Outcome(answer=answer, cstat=codes.LOT_RECEIVED)


def _judge(nfe: Any, head: Header, context: Context) -> tuple[bytes, int]:
    """The ``protNFe`` of one NF-e and its cStat; an authorised one is recorded."""
    state = context.state
    key = facts.nfe_key(nfe)

    def rejected(found: Verdict) -> tuple[bytes, int]:
        return prot_nfe(head, key=key, verdict=found), found.cstat

    if context.behaviour.scenario is Scenario.REJECT:
        return rejected(verdict(context.behaviour.status))
    problem = context.checks.signature_problem(serialize(nfe))
    if problem:
        return rejected(verdict(codes.SIGNATURE, problem))
    problems = key_problems(nfe)
    if problems:
        return rejected(verdict(codes.KEY_MISMATCH, problems[0]))
    parsed = parse_access_key(key)
    existing = state.authorizations.get(key)
    if existing is not None:
        when = sefaz_time(existing.received_at)
        reason = f"{codes.REASONS[codes.DUPLICATE]} [nProt:{existing.protocol}][dhAut:{when}]"
        return rejected(Verdict.of(codes.DUPLICATE, reason))
    series = (parsed.issuer, parsed.model, parsed.series)
    other = state.key_using(*series, parsed.number)
    if other is not None:
        reason = f"{codes.REASONS[codes.DUPLICATE_OTHER_KEY]} [chNFe:{other}]"
        return rejected(Verdict.of(codes.DUPLICATE_OTHER_KEY, reason))
    if state.inutilized_overlapping(*series, parsed.number, parsed.number):
        return rejected(verdict(codes.NUMBER_INUTILIZED))
    protocol = state.next_protocol(head.uf_code)
    digest = facts.digest_value(nfe)
    answer = prot_nfe(head, key=key, verdict=verdict(codes.AUTHORIZED), protocol=protocol, digest=digest)
    state.authorize(
        Authorization(
            key=key,
            cnpj=parsed.issuer,
            model=parsed.model,
            series=parsed.series,
            number=parsed.number,
            protocol=protocol,
            received_at=head.received_at,
            digest=digest or "",
            prot_xml=answer,
        )
    )
    return answer, codes.AUTHORIZED


# --- NFeRetAutorizacao4 ------------------------------------------------------------------------


def poll_receipt(root: Any, context: Context) -> Outcome:
    """``consReciNFe``: 106 unknown receipt, 105 while polls remain, then 104 with the protocols."""
    state = context.state
    number = facts.receipt_number(root)
    receipt = state.receipts.get(number)
    if receipt is None:
        return refuse("NFeRetAutorizacao4", root, state, verdict(codes.LOT_NOT_FOUND, f"nRec:{number}"))
    head = header(root, state, uf_code=receipt.uf_code)
    if receipt.polls_left > 0:
        receipt.polls_left -= 1
        answer = ret_cons_reci_nfe(head, verdict(codes.LOT_PROCESSING), receipt=number)
        return Outcome(answer=answer, cstat=codes.LOT_PROCESSING)
    answer = ret_cons_reci_nfe(
        head, verdict(codes.LOT_PROCESSED), receipt=number, protocols=receipt.protocols
    )
    return Outcome(answer=answer, cstat=codes.LOT_PROCESSED, document_cstats=list(receipt.cstats))


# --- NFeConsultaProtocolo4 ---------------------------------------------------------------------


def consult(root: Any, context: Context) -> Outcome:
    """``consSitNFe``: 100 (or 101 cancelled) with ``protNFe`` and events, 217 unknown, 236 bad key."""
    state = context.state
    key = facts.consulted_key(root)
    head = header(root, state, uf_code=facts.key_uf(key, state))
    try:
        parse_access_key(key)
    except AccessKeyInvalid as exc:
        problem = exc.problems[0]
        found = verdict(codes.KEY_INVALID, f"{problem['field']}: {problem['message']}")
        return Outcome(answer=ret_cons_sit_nfe(head, found, key=key), cstat=codes.KEY_INVALID)
    authorization = state.authorizations.get(key)
    if authorization is None:
        return Outcome(
            answer=ret_cons_sit_nfe(head, verdict(codes.NOT_FOUND), key=key), cstat=codes.NOT_FOUND
        )
    cstat = codes.CANCELLED if authorization.cancellation else codes.AUTHORIZED
    answer = ret_cons_sit_nfe(
        head,
        verdict(cstat),
        key=key,
        protocol=authorization.prot_xml,
        events=[event.proc_xml for event in authorization.events],
    )
    return Outcome(answer=answer, cstat=cstat)


# --- NFeStatusServico4 -------------------------------------------------------------------------


def status(root: Any, context: Context) -> Outcome:
    """``consStatServ``: 107, service running."""
    head = header(root, context.state)
    answer = ret_cons_stat_serv(
        head, verdict(codes.SERVICE_RUNNING), average_seconds=context.state.average_seconds
    )
    return Outcome(answer=answer, cstat=codes.SERVICE_RUNNING)
