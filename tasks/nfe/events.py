"""``nfe.cancel`` and ``nfe.correct``: one event (110111, 110110) on an authorised NF-e, registered once.

The steps, each safe to repeat on a redelivery of the job (as in :mod:`.emit`):

1. **Check.** The NF-e must be the tenant's own (another tenant's key is as unknown as a key
   never emitted) and ``authorized``; nothing is sent otherwise.
2. **Register.** Under a lock on the emission's row: the event's sequence (always 1 for a
   cancellation; the next one of the key for a CC-e), the ``evento`` built, signed and checked
   against its XSD, stored, and its ``nfe_event`` row inserted (``signed``). The job keeps its
   row, so a redelivery keeps its sequence and its signed bytes.
3. **Transmit.** The row turns ``sent`` in its own commit *before* the ``envEvento`` leaves. A row
   found ``sent`` is simply sent again: SEFAZ answers an event it already holds with 573
   (duplicidade de evento), which counts as registered only once NFeConsultaProtocolo4 shows
   that very event (type and sequence) among the NF-e's ``procEventoNFe``. 656 waits; 108/109,
   timeouts and 5xx retry.
4. **Conclude.** 135/136/155: the ``procEventoNFe`` is stored and the row ``registered``; a
   cancellation turns the emission ``cancelled`` (its authorisation protocol kept) in the same
   transaction. Anything else: the row ``rejected`` and the job fails with SEFAZ's code and reason.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from tornado_core import NonRetryable, Retry, TaskContext

from . import authorities, emissions
from .access_key import parse_access_key
from .artifacts import Artifacts
from .certificate_store import usable_certificate
from .certificates import A1Certificate
from .config import NfeConfig
from .emissions import Emission
from .endpoints import EndpointTable
from .event_messages import (
    CANCELLATION,
    CORRECTION,
    NAMES,
    EventAnswer,
    event_request,
    proc_evento,
    read_event_answer,
    registered_event,
    signed_event,
)
from .messages import protocol_query, read_answer
from .models import CancelPayload, CorrectionPayload
from .schema import ensure_schema
from .transport import SefazClient

#: retEvento cStat of a registered event: linked, registered but not linked, cancellation out of time.
REGISTERED = frozenset({135, 136, 155})
UNAVAILABLE = frozenset({108, 109})
THROTTLED = 656
DUPLICATE_EVENT = 573
MAX_SEQUENCE = 20


@dataclass(frozen=True, kw_only=True)
class Event:
    """One ``nfe_event`` row (columns of :mod:`.schema`)."""

    access_key: str
    event_type: int
    sequence: int
    job_id: str
    tenant: str
    state: str
    protocol: str | None
    status_code: int | None
    reason: str | None
    registered_at: datetime | None
    artifacts: dict[str, str]

    @property
    def name(self) -> str:
        """``110111-01``: type and sequence, as the artifacts are named."""
        return f"{self.event_type}-{self.sequence:02d}"


@dataclass(frozen=True)
class EventRequest:
    """What the job asks: an event type on a key, with its text (xJust or xCorrecao)."""

    event_type: int
    key: str
    text: str


def cancel(ctx: TaskContext, payload: CancelPayload, endpoints: EndpointTable) -> dict[str, Any]:
    """Cancel the tenant's authorised NF-e ``payload.access_key`` (event 110111); see the module."""
    request = EventRequest(CANCELLATION, payload.access_key, payload.reason)
    return EventSender(ctx, NfeConfig.from_environment(os.environ), endpoints).send(request)


def correct(ctx: TaskContext, payload: CorrectionPayload, endpoints: EndpointTable) -> dict[str, Any]:
    """Register a correction letter (event 110110) on the tenant's authorised NF-e; see the module."""
    request = EventRequest(CORRECTION, payload.access_key, payload.correction)
    return EventSender(ctx, NfeConfig.from_environment(os.environ), endpoints).send(request)


@dataclass
class EventSender:
    """One attempt of one event job."""

    ctx: TaskContext
    config: NfeConfig
    endpoints: EndpointTable
    sleep: Callable[[float], None] = time.sleep
    _client: SefazClient | None = field(default=None, init=False)
    _svc: str | None = field(default=None, init=False)

    def send(self, request: EventRequest) -> dict[str, Any]:
        """Run the job to its end, or raise ``Retry``/``NonRetryable``."""
        with self.ctx.rds.connection() as conn:
            ensure_schema(conn)
            event = find_event(conn, self.ctx.job_id)
            emission = emissions.find_by_key(conn, self.ctx.tenant, request.key)
        if emission is None:
            raise NonRetryable(f"no NF-e {request.key} for this tenant ({self.ctx.tenant!r})")
        if event is not None and (event.access_key, event.event_type) != (request.key, request.event_type):
            raise NonRetryable(
                f"job {self.ctx.job_id} already holds event {event.name} of NF-e {event.access_key}"
            )
        if event is not None and event.state in ("registered", "rejected"):
            return _finished(event)
        issuer = parse_access_key(request.key).issuer
        certificate = usable_certificate(self.ctx, self.config.require_master_key(), issuer)
        if event is None:
            event = self._register(request, certificate)
        self._client = SefazClient(self.config, certificate, self.endpoints)
        self._svc = self._route(emission)
        signed = Artifacts(self.ctx.s3, self.ctx.tenant).get(event.artifacts["signed"])
        answer = self._transmit(event, emission, signed)
        return self._conclude(event, emission, signed, answer)

    # --- before anything is sent ---------------------------------------------------------------

    def _register(self, request: EventRequest, certificate: A1Certificate) -> Event:
        with self.ctx.rds.connection() as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM nfe_emission WHERE access_key = %s FOR UPDATE", (request.key,))
            event = find_event(conn, self.ctx.job_id)
            if event is not None:  # another delivery of the job registered it meanwhile
                return event
            emission = emissions.find_by_key(conn, self.ctx.tenant, request.key)
            assert emission is not None
            if emission.state != "authorized":
                raise NonRetryable(
                    f"NF-e {request.key} is {emission.state}, not authorized: no {NAMES[request.event_type]}"
                )
            sequence = 1 if request.event_type == CANCELLATION else _next_correction(conn, request.key)
            signed = signed_event(
                event_type=request.event_type, key=request.key, sequence=sequence, text=request.text,
                protocol=emission.protocol or "", environment=emission.environment, certificate=certificate,
            )  # fmt: skip
            name = f"evento-{request.event_type}-{sequence:02d}-signed"
            stored = Artifacts(self.ctx.s3, self.ctx.tenant).put(request.key, name, signed)
            return _insert_event(conn, request, sequence, self.ctx, {"signed": stored})

    def _route(self, emission: Emission) -> str | None:
        """The SVC an event goes to: the NF-e's, while its UF is still in that contingency."""
        if emission.authority not in authorities.EMISSION_TYPE:
            return None
        with self.ctx.rds.connection() as conn:
            state = authorities.authority_state(conn, emission.uf, emission.environment)
        return emission.authority if state.contingency == emission.authority else None

    # --- transmission --------------------------------------------------------------------------

    def _transmit(self, event: Event, emission: Emission, signed: bytes) -> EventAnswer:
        authorities.wait_for_send_slot(
            self.ctx, emission.key.issuer, emission.uf, self.config.sends_per_second, self.sleep
        )
        with self.ctx.rds.connection() as conn:
            event = _update_event(conn, self.ctx.job_id, "state = 'sent'", ())
        message = event_request(signed, batch_id=time.time_ns() // 1000)
        xml = self._call(emission, "NFeRecepcaoEvento4", message, f"evento-{event.name}")
        answer = read_event_answer(xml)
        check_available(answer.status_code, answer.reason, self.config)
        if answer.event_status_code == DUPLICATE_EVENT:
            return self._consult(event, emission) or answer
        return answer

    def _consult(self, event: Event, emission: Emission) -> EventAnswer | None:
        """The event as SEFAZ holds it, if it does (after a 573)."""
        message = protocol_query(emission.access_key, environment=emission.environment)
        xml = self._call(emission, "NFeConsultaProtocolo4", message, "consulta")
        status = read_answer(xml)
        check_available(status.status_code, status.reason, self.config)
        return registered_event(xml, event.event_type, event.sequence)

    def _call(self, emission: Emission, service: str, message: bytes, kind: str) -> bytes:
        assert self._client is not None
        exchange = self._client.call(
            emission.uf, service, message, contingency=self._svc, timeout=max(self.ctx.remaining - 5, 1)
        )
        store = Artifacts(self.ctx.s3, self.ctx.tenant)
        store.put(emission.access_key, f"{kind}-request", exchange.request)
        store.put(emission.access_key, f"{kind}-response", exchange.response)
        return exchange.answer

    # --- the verdict ---------------------------------------------------------------------------

    def _conclude(
        self, event: Event, emission: Emission, signed: bytes, answer: EventAnswer
    ) -> dict[str, Any]:
        code = answer.event_status_code
        if code is not None:
            check_available(code, answer.event_reason or "", self.config)
        if code in REGISTERED:
            return self._registered(event, emission, signed, answer)
        status_code, reason = (
            (answer.status_code, answer.reason) if code is None else (code, answer.event_reason)
        )
        with self.ctx.rds.connection() as conn:
            done = _verdict(conn, self.ctx.job_id, "rejected", status_code, reason or "")
        return _finished(done)

    def _registered(
        self, event: Event, emission: Emission, signed: bytes, answer: EventAnswer
    ) -> dict[str, Any]:
        assert answer.event_status_code is not None
        # After a 573 the stored procEventoNFe is SEFAZ's own copy, from the protocol query.
        proc = answer.proc_xml or proc_evento(signed, answer.ret_evento_xml)
        stored = Artifacts(self.ctx.s3, self.ctx.tenant).put(
            event.access_key, f"procEventoNFe-{event.name}", proc
        )
        code, reason = answer.event_status_code, answer.event_reason or ""
        with self.ctx.rds.connection() as conn:
            done = _verdict(
                conn, self.ctx.job_id, "registered", code, reason, protocol=answer.protocol,
                registered_at=answer.registered_at, artifacts={"procEventoNFe": stored},
            )  # fmt: skip
            if event.event_type == CANCELLATION:
                emissions.record_verdict(
                    conn, emission.job_id, state="cancelled", status_code=code, reason=reason,
                    artifacts={"cancellation": stored},
                )  # fmt: skip
        return _finished(done)


# --- shared with nfe.void ---------------------------------------------------------------------


def check_available(code: int, reason: str, config: NfeConfig) -> None:
    """Retry on 656 (after the throttle delay) and on 108/109 (service stopped)."""
    if code == THROTTLED:
        raise Retry(f"SEFAZ throttled the issuer (656): {reason}", delay=config.throttle_delay)
    if code in UNAVAILABLE:
        raise Retry(f"SEFAZ unavailable: {code} {reason}")


def result_of(event: Event) -> dict[str, Any]:
    """The job's result: the event, its protocol and the stored files."""
    return {
        "access_key": event.access_key,
        "event_type": event.event_type,
        "sequence": event.sequence,
        "state": event.state,
        "protocol": event.protocol,
        "status_code": event.status_code,
        "reason": event.reason,
        "registered_at": event.registered_at.isoformat() if event.registered_at else None,
        "files": event.artifacts,
    }


def _finished(event: Event) -> dict[str, Any]:
    if event.state == "rejected":
        raise NonRetryable(
            f"SEFAZ rejected the {NAMES[event.event_type]} of NF-e {event.access_key} (sequence"
            f" {event.sequence}): {event.status_code} {event.reason}"
        )
    return result_of(event)


# --- nfe_event rows ---------------------------------------------------------------------------

_COLUMNS = ", ".join(f.name for f in fields(Event))


def find_event(conn: Any, job_id: str) -> Event | None:
    """The event of ``job_id``, if it got that far."""
    return _one(conn, f"SELECT {_COLUMNS} FROM nfe_event WHERE job_id = %s", (job_id,))


def _next_correction(conn: Any, key: str) -> int:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT coalesce(max(sequence), 0) + 1 FROM nfe_event WHERE access_key = %s AND event_type = %s",
            (key, CORRECTION),
        )
        sequence = int(cur.fetchone()[0])
    if sequence > MAX_SEQUENCE:
        raise NonRetryable(f"NF-e {key} already has {MAX_SEQUENCE} correction letters, the most SEFAZ takes")
    return sequence


def _insert_event(
    conn: Any, request: EventRequest, sequence: int, ctx: TaskContext, artifacts: dict[str, str]
) -> Event:
    """Insert the row; a cancellation may take over the row of an earlier, rejected one (same sequence)."""
    sql = (
        "INSERT INTO nfe_event (access_key, event_type, sequence, job_id, tenant, artifacts)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (access_key, event_type, sequence) DO UPDATE SET"
        " job_id = EXCLUDED.job_id, tenant = EXCLUDED.tenant, state = 'signed', protocol = NULL,"
        " status_code = NULL, reason = NULL, registered_at = NULL, artifacts = EXCLUDED.artifacts,"
        " created_at = clock_timestamp(), updated_at = clock_timestamp() WHERE nfe_event.state = 'rejected'"
        f" RETURNING {_COLUMNS}"
    )
    params = (request.key, request.event_type, sequence, ctx.job_id, ctx.tenant, json.dumps(artifacts))
    event = _one(conn, sql, params)
    if event is None:
        held = _one(
            conn,
            f"SELECT {_COLUMNS} FROM nfe_event WHERE access_key = %s AND event_type = %s AND sequence = %s",
            (request.key, request.event_type, sequence),
        )
        assert held is not None
        raise NonRetryable(
            f"a {NAMES[request.event_type]} of NF-e {request.key} is already {held.state}"
            f" in job {held.job_id}"
        )
    return event


def _verdict(
    conn: Any, job_id: str, state: str, status_code: int, reason: str, *, protocol: str | None = None,
    registered_at: str | None = None, artifacts: dict[str, str] | None = None,
) -> Event:  # fmt: skip
    return _update_event(
        conn,
        job_id,
        "state = %s, status_code = %s, reason = %s, protocol = %s, registered_at = %s::timestamptz,"
        " artifacts = artifacts || %s::jsonb",
        (state, status_code, reason, protocol, registered_at, json.dumps(artifacts or {})),
    )


def _update_event(conn: Any, job_id: str, assignments: str, params: tuple[Any, ...]) -> Event:
    sql = (
        f"UPDATE nfe_event SET {assignments}, updated_at = clock_timestamp()"
        f" WHERE job_id = %s RETURNING {_COLUMNS}"
    )
    found = _one(conn, sql, (*params, job_id))
    if found is None:
        raise LookupError(f"no NF-e event for job {job_id!r}")
    return found


def _one(conn: Any, sql: str, params: tuple[Any, ...]) -> Event | None:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    if row is None:
        return None
    values = dict(zip((f.name for f in fields(Event)), row, strict=True))
    values["artifacts"] = dict(values["artifacts"] or {})
    return Event(**values)
