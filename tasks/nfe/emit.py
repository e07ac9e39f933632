"""``nfe.emit``: number, build, sign, transmit and store one NF-e, never twice.

The steps, each safe to repeat on a redelivery of the job:

1. **Check before numbering.** The invoice's business rules ran at submission; here the XML is
   built with a provisional key, signed and checked against the official XSDs. A failure is
   :class:`~tornado_core.NonRetryable` and consumes no number.
2. **Register.** The number comes from the gap-free allocator (the job keeps it across
   redeliveries), the key from the number and the job's cNF, ``dhEmi`` from the allocation's
   time; the signed XML is stored, then the ``nfe_emission`` row (:mod:`.emissions`).
3. **Transmit.** The row turns ``sent`` in its own commit *before* the XML leaves. An attempt
   that finds it ``sent`` (an earlier one timed out, lost its answer or was killed) first asks
   NFeConsultaProtocolo4 for the key, and sends again only if SEFAZ does not know it (217). An
   asynchronous lote (103) is polled with NFeRetAutorizacao4, its receipt kept for a later
   attempt. 656 waits; 108/109, timeouts and 5xx retry (and may switch the UF to contingency).
4. **Conclude.** Authorised (100/150): the ``nfeProc`` and the DANFE are stored and the number is
   marked used. Rejected: the number is burned (``nfe.void`` voids it), and the job fails with
   SEFAZ's code and reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tornado_core import NonRetryable, Retry, TaskContext

from . import authorities, emissions, numbering
from .access_key import UF_CODES, AccessKey, build_access_key
from .artifacts import Artifacts
from .certificate_store import usable_certificate
from .certificates import A1Certificate
from .config import NfeConfig
from .danfe import render_danfe
from .emissions import Emission
from .endpoints import EndpointTable
from .invoice import Invoice
from .messages import (
    Answer,
    Protocol,
    authorization_request,
    nfe_proc,
    protocol_query,
    read_answer,
    receipt_query,
    status_query,
)
from .orders import order_invoice
from .schema import ensure_schema
from .signing import sign_enveloped
from .transport import SefazClient, SefazUnreachable
from .xml_builder import Contingency, build_nfe
from .xsd import require_schema_valid

SOFTWARE_VERSION = "tornado-nfe"
AUTHORIZED = frozenset({100, 150})
DENIED = frozenset({110, 301, 302})
UNAVAILABLE = frozenset({108, 109})
THROTTLED = 656
NOT_FOUND = 217
DUPLICATE = 204
#: A lote still being processed (NFeRetAutorizacao4), and one received for asynchronous processing.
PROCESSING, RECEIVED, PROCESSED = 105, 103, 104


@dataclass
class Emitter:
    """One attempt of one ``nfe.emit`` job."""

    ctx: TaskContext
    config: NfeConfig
    endpoints: EndpointTable
    sleep: Callable[[float], None] = time.sleep
    _client: SefazClient | None = field(default=None, init=False)

    def emit(self, invoice: Invoice) -> dict[str, Any]:
        """Run the job to its end, or raise ``Retry``/``NonRetryable``."""
        certificate = self._certificate(invoice)
        self._check_before_numbering(invoice, certificate)
        with self.ctx.rds.connection() as conn:
            ensure_schema(conn)
            emission = emissions.find_emission(conn, self.ctx.job_id)
        self._client = SefazClient(self.config, certificate, self.endpoints)
        if emission is None:
            self._recover_if_back(invoice.issuer.address.uf)
            emission = self._register(invoice, certificate)
        return self._drive(emission)

    def _recover_if_back(self, uf: str) -> None:
        environment, client = self.config.environment, self._client
        assert client is not None

        def ask_status() -> int:
            message = status_query(UF_CODES[uf], environment=environment)
            return read_answer(client.call(uf, "NFeStatusServico4", message).answer).status_code

        every = self.config.contingency_probe
        authorities.recover_if_back(self.ctx, uf, environment, every=every, ask_status=ask_status)

    # --- before anything is sent ---------------------------------------------------------

    def _certificate(self, invoice: Invoice) -> A1Certificate:
        return usable_certificate(self.ctx, self.config.require_master_key(), invoice.issuer.cnpj)

    def _check_before_numbering(self, invoice: Invoice, certificate: A1Certificate) -> None:
        provisional = self._key(invoice, number=1, random_code=2, emission_type=1, moment=_now())
        self._signed(invoice, certificate, provisional, _now(), None)

    def _signed(
        self,
        invoice: Invoice,
        certificate: A1Certificate,
        key: AccessKey,
        moment: datetime,
        contingency: Contingency | None,
    ) -> bytes:
        xml = build_nfe(
            invoice,
            key=key,
            issued_at=moment,
            environment=self.config.environment,
            software_version=SOFTWARE_VERSION,
            contingency=contingency,
        )
        signed = sign_enveloped(xml, certificate)
        require_schema_valid(signed, "the NF-e")
        return signed

    def _key(
        self, invoice: Invoice, *, number: int, random_code: int, emission_type: int, moment: datetime
    ) -> AccessKey:
        return build_access_key(
            uf_code=UF_CODES[invoice.issuer.address.uf],
            year=moment.year,
            month=moment.month,
            issuer=invoice.issuer.cnpj,
            model=invoice.model,
            series=invoice.series,
            number=number,
            emission_type=emission_type,
            random_code=random_code,
        )

    def _register(self, invoice: Invoice, certificate: A1Certificate) -> Emission:
        uf, environment = invoice.issuer.address.uf, self.config.environment
        with self.ctx.rds.connection() as conn:
            state = authorities.authority_state(conn, uf, environment)
            allocation = numbering.allocate_number(
                conn,
                job_id=self.ctx.job_id,
                cnpj=invoice.issuer.cnpj,
                model=invoice.model,
                series=invoice.series,
            )
        contingency = None
        if state.contingency is not None and state.since is not None:
            contingency = Contingency(started_at=state.since, reason=_justification(state.reason))
        moment = allocation.allocated_at
        key = self._key(
            invoice,
            number=allocation.number,
            random_code=allocation.random_code,
            emission_type=authorities.EMISSION_TYPE.get(state.contingency or "", 1),
            moment=moment,
        )
        signed = self._signed(invoice, certificate, key, moment, contingency)
        stored = Artifacts(self.ctx.s3, self.ctx.tenant).put(key.text, "nfe-signed", signed)
        with self.ctx.rds.connection() as conn:
            return emissions.start_emission(
                conn,
                job_id=self.ctx.job_id,
                tenant=self.ctx.tenant,
                access_key=key.text,
                uf=uf,
                environment=environment,
                authority=state.contingency or self.endpoints.authority_for(uf),
                artifacts={"signed": stored},
            )

    # --- transmission ----------------------------------------------------------------------

    def _drive(self, emission: Emission) -> dict[str, Any]:
        if emission.state in emissions.FINAL_STATES:
            return self._finished(emission)
        signed = Artifacts(self.ctx.s3, self.ctx.tenant).get(emission.artifacts["signed"])
        protocol: Protocol | None = None
        if emission.receipt:
            protocol = self._poll(emission, emission.receipt)
        elif emission.state == "sent":
            protocol = self._consult(emission)
        if protocol is None:
            protocol = self._send(emission, signed)
        if protocol.status_code == DUPLICATE:
            protocol = self._consult(emission) or _retry_later(
                emission, "SEFAZ says duplicate but does not know the key"
            )
        return self._conclude(emission, signed, protocol)

    def _call(self, emission: Emission, service: str, message: bytes, kind: str) -> Answer:
        assert self._client is not None
        svc = emission.authority if emission.authority in authorities.EMISSION_TYPE else None
        try:
            exchange = self._client.call(
                emission.uf, service, message, contingency=svc, timeout=max(self.ctx.remaining - 5, 1)
            )
        except SefazUnreachable as exc:
            self._unavailable(emission, str(exc))
            raise
        store = Artifacts(self.ctx.s3, self.ctx.tenant)
        store.put(emission.access_key, f"{kind}-request", exchange.request)
        store.put(emission.access_key, f"{kind}-response", exchange.response)
        answer = read_answer(exchange.answer)
        if answer.status_code in UNAVAILABLE:
            self._unavailable(emission, f"cStat {answer.status_code}: {answer.reason}")
            raise Retry(f"{exchange.endpoint.authority} unavailable: {answer.status_code} {answer.reason}")
        if answer.status_code == THROTTLED:
            raise Retry(
                f"SEFAZ throttled the issuer (656): {answer.reason}", delay=self.config.throttle_delay
            )
        with self.ctx.rds.connection() as conn:
            authorities.record_available(conn, emission.uf, emission.environment)
        return answer

    def _send(self, emission: Emission, signed: bytes) -> Protocol:
        cnpj = emission.key.issuer
        authorities.wait_for_send_slot(self.ctx, cnpj, emission.uf, self.config.sends_per_second, self.sleep)
        with self.ctx.rds.connection() as conn:
            emission = emissions.record_sent(conn, self.ctx.job_id)
        request = authorization_request(signed, batch_id=_batch_id(), synchronous=self.config.synchronous)
        answer = self._call(emission, "NFeAutorizacao4", request, "autorizacao")
        if answer.status_code == RECEIVED and answer.receipt:
            with self.ctx.rds.connection() as conn:
                emissions.record_receipt(conn, self.ctx.job_id, answer.receipt)
            return self._poll(emission, answer.receipt, first_wait=answer.average_seconds)
        return self._protocol_of(emission, answer)

    def _poll(self, emission: Emission, receipt: str, *, first_wait: float | None = None) -> Protocol:
        wait = first_wait or 1.0
        while self.ctx.remaining > self.config.timeout + 2 * wait:
            self.sleep(min(max(wait * 1.3, 0.2), 10.0))
            message = receipt_query(receipt, environment=emission.environment)
            answer = self._call(emission, "NFeRetAutorizacao4", message, "retautorizacao")
            if answer.status_code != PROCESSING:
                return self._protocol_of(emission, answer)
            wait = answer.average_seconds or wait
        raise Retry(
            f"lote {receipt} still processing at SEFAZ; polling again on the next attempt", delay=wait
        )

    def _consult(self, emission: Emission) -> Protocol | None:
        message = protocol_query(emission.access_key, environment=emission.environment)
        answer = self._call(emission, "NFeConsultaProtocolo4", message, "consulta")
        if answer.status_code == NOT_FOUND:
            return None
        protocol = answer.protocol_for(emission.access_key)
        if protocol is None:
            _retry_later(emission, f"the protocol query answered {answer.status_code} {answer.reason}")
        return protocol

    def _protocol_of(self, emission: Emission, answer: Answer) -> Protocol:
        protocol = answer.protocol_for(emission.access_key)
        if answer.status_code == PROCESSED and protocol is not None:
            return protocol
        # The whole lote was refused (225 schema, 2xx/5xx...): a verdict on the NF-e all the same.
        return Protocol(emission.access_key, answer.status_code, answer.reason, None, None, b"")

    def _unavailable(self, emission: Emission, reason: str) -> None:
        if emission.authority in authorities.EMISSION_TYPE:
            return  # the contingency authority itself failed: nothing to switch to
        svc = self.endpoints.authority_for(emission.uf, contingency=True)
        with self.ctx.rds.connection() as conn:
            authorities.record_unavailable(
                conn, emission.uf, emission.environment, switch_after=self.config.contingency_after, svc=svc,
                reason=reason,
            )  # fmt: skip

    # --- the verdict -------------------------------------------------------------------------

    def _conclude(self, emission: Emission, signed: bytes, protocol: Protocol) -> dict[str, Any]:
        code = protocol.status_code
        if code in AUTHORIZED or code in DENIED:
            return self._registered(emission, signed, protocol)
        if code == 539:
            raise NonRetryable(
                f"SEFAZ holds number {emission.key.number} under another key (539: {protocol.reason});"
                " the number is left allocated for an operator to investigate"
            )
        with self.ctx.rds.connection() as conn:
            numbering.mark(conn, self.ctx.job_id, numbering.Status.REJECTED_BURNED)
            emissions.record_verdict(
                conn, self.ctx.job_id, state="rejected", status_code=code, reason=protocol.reason
            )
        raise NonRetryable(
            f"SEFAZ rejected NF-e {emission.access_key}: {code} {protocol.reason};"
            f" number {emission.key.number} is burned (void it with nfe.void)"
        )

    def _registered(self, emission: Emission, signed: bytes, protocol: Protocol) -> dict[str, Any]:
        store = Artifacts(self.ctx.s3, self.ctx.tenant)
        proc = nfe_proc(signed, protocol)
        stored = {"nfeProc": store.put(emission.access_key, "nfeProc", proc)}
        authorized = protocol.status_code in AUTHORIZED
        if authorized:
            stored["danfe"] = store.put(emission.access_key, "danfe", render_danfe(proc), ext="pdf")
        with self.ctx.rds.connection() as conn:
            numbering.mark(
                conn, self.ctx.job_id, numbering.Status.AUTHORIZED
            )  # the number is used either way
            done = emissions.record_verdict(
                conn, self.ctx.job_id, state="authorized" if authorized else "denied",
                status_code=protocol.status_code, reason=protocol.reason, protocol=protocol.number,
                authorized_at=protocol.received_at, artifacts=stored,
            )  # fmt: skip
        return self._finished(done)

    def _finished(self, emission: Emission) -> dict[str, Any]:
        if emission.state == "rejected":
            raise NonRetryable(
                f"SEFAZ rejected NF-e {emission.access_key}: {emission.status_code} {emission.reason}"
            )
        if emission.state == "denied":
            raise NonRetryable(
                f"SEFAZ denied NF-e {emission.access_key} ({emission.status_code} {emission.reason});"
                f" protocol {emission.protocol}, the denied document is stored"
            )
        return emissions.result_of(emission)


def emit(
    ctx: TaskContext, invoice: Invoice | None, order_id: str | None, endpoints: EndpointTable
) -> dict[str, Any]:
    """Emit the invoice (or the ERP order's); see the module's steps."""
    config = NfeConfig.from_environment(os.environ)
    if invoice is None:
        assert order_id is not None
        invoice = order_invoice(ctx, order_id)
    return Emitter(ctx, config, endpoints).emit(invoice)


def _retry_later(emission: Emission, why: str) -> Protocol:
    raise Retry(f"NF-e {emission.access_key}: {why}")


def _batch_id() -> int:
    return time.time_ns() // 1000


def _justification(reason: str | None) -> str:
    text = (reason or "SEFAZ de origem indisponivel").strip()
    return text if len(text) >= 15 else f"{text} - contingencia SVC"[:256]


def _now() -> datetime:
    return datetime.now(UTC)
