"""``nfe.void``: inutilização of a range of numbers that were never authorised, done once.

The steps, each safe to repeat on a redelivery of the job (as in :mod:`.emit`):

1. **Check.** Every number of ``[first_number, last_number]`` of the series (CNPJ, model, series)
   must be burned (``rejected_burned``) or never allocated; an ``allocated`` or ``authorized``
   number refuses the whole range, naming it, and nothing is sent. So does a number the series
   has not reached yet: the allocator would hand it out later and SEFAZ would refuse that NF-e
   (206, number inutilised).
2. **Register.** The ``inutNFe`` (layout 4.00) is built, signed, checked against its XSD and stored
   under ``voiding/<job id>``, then the ``nfe_voiding`` row is inserted (``signed``).
3. **Transmit.** The row turns ``sent`` in its own commit *before* the message leaves, to
   NFeInutilizacao4 of the UF's own authority (the SVCs do not inutilise). A row found ``sent``
   is sent again: SEFAZ answers a range it already inutilised, this very range, with 563.
4. **Conclude.** 102 (or 563): the burned allocations of the range turn ``voided``, the row
   ``voided``, and on 102 the ``procInutNFe`` is stored. Anything else (241 a number used, 256
   overlap with another inutilised range...): the row ``rejected``, the job fails with SEFAZ's
   code and reason. 656 waits; 108/109, timeouts and 5xx retry.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from tornado_core import NonRetryable, TaskContext

from . import numbering
from .access_key import UF_CODES
from .artifacts import Artifacts
from .authorities import wait_for_send_slot
from .certificate_store import usable_certificate
from .config import NfeConfig
from .documents import normalize_document
from .endpoints import EndpointTable
from .event_messages import BRASILIA
from .events import check_available
from .messages import without_declaration
from .models import VoidPayload
from .schema import ensure_schema
from .signing import sign_enveloped
from .soap import NFE_NS, parse_xml
from .transport import SefazClient
from .xsd import require_schema_valid

VOIDED = 102
#: The very same range was inutilised before (the emulator's choice, :mod:`.emulator.codes`).
ALREADY_VOIDED = 563
VERSION = "4.00"


@dataclass(frozen=True, kw_only=True)
class Voiding:
    """One ``nfe_voiding`` row (columns of :mod:`.schema`)."""

    job_id: str
    tenant: str
    cnpj: str
    model: int
    series: int
    first_number: int
    last_number: int
    state: str
    protocol: str | None
    status_code: int | None
    reason: str | None
    artifacts: dict[str, str]


@dataclass(frozen=True)
class VoidingAnswer:
    """A ``retInutNFe``, read: cStat, xMotivo, nProt (on 102) and the message itself."""

    status_code: int
    reason: str
    protocol: str | None
    xml: bytes


def void(ctx: TaskContext, payload: VoidPayload, endpoints: EndpointTable) -> dict[str, Any]:
    """Inutilise ``payload``'s range of its series; see the module."""
    return Voider(ctx, NfeConfig.from_environment(os.environ), endpoints).void(payload)


@dataclass
class Voider:
    """One attempt of one ``nfe.void`` job."""

    ctx: TaskContext
    config: NfeConfig
    endpoints: EndpointTable
    sleep: Callable[[float], None] = time.sleep

    def void(self, payload: VoidPayload) -> dict[str, Any]:
        """Run the job to its end, or raise ``Retry``/``NonRetryable``."""
        cnpj = normalize_document(payload.cnpj)
        if payload.uf not in UF_CODES:
            raise NonRetryable(f"{payload.uf!r} is not a federative unit")
        with self.ctx.rds.connection() as conn:
            ensure_schema(conn)
            voiding = _find(conn, self.ctx.job_id)
        if voiding is not None:
            _same_range(voiding, cnpj, payload)
            if voiding.state in ("voided", "rejected"):
                return _finished(voiding)
        certificate = usable_certificate(self.ctx, self.config.require_master_key(), cnpj)
        if voiding is None:
            with self.ctx.rds.connection() as conn:
                _check_range(conn, cnpj, payload)
            signed = sign_enveloped(_inut_document(cnpj, payload, self.config.environment), certificate)
            require_schema_valid(signed, f"the inutilização of {_describe(cnpj, payload)}")
            stored = Artifacts(self.ctx.s3, self.ctx.tenant).put(self._subject, "inutNFe-signed", signed)
            with self.ctx.rds.connection() as conn:
                voiding = _insert(conn, self.ctx, cnpj, payload, {"signed": stored})
        signed = Artifacts(self.ctx.s3, self.ctx.tenant).get(voiding.artifacts["signed"])
        answer = self._transmit(SefazClient(self.config, certificate, self.endpoints), cnpj, payload, signed)
        return self._conclude(voiding, signed, answer)

    @property
    def _subject(self) -> str:
        return f"voiding/{self.ctx.job_id}"

    def _transmit(self, client: SefazClient, cnpj: str, payload: VoidPayload, signed: bytes) -> VoidingAnswer:
        wait_for_send_slot(self.ctx, cnpj, payload.uf, self.config.sends_per_second, self.sleep)
        with self.ctx.rds.connection() as conn:
            _update(conn, self.ctx.job_id, "state = 'sent'", ())
        exchange = client.call(
            payload.uf, "NFeInutilizacao4", signed, timeout=max(self.ctx.remaining - 5, 1)
        )  # the UF's own authority: the SVCs have no NFeInutilizacao4
        store = Artifacts(self.ctx.s3, self.ctx.tenant)
        store.put(self._subject, "inutilizacao-request", exchange.request)
        store.put(self._subject, "inutilizacao-response", exchange.response)
        answer = read_voiding_answer(exchange.answer)
        check_available(answer.status_code, answer.reason, self.config)
        return answer

    def _conclude(self, voiding: Voiding, signed: bytes, answer: VoidingAnswer) -> dict[str, Any]:
        # 563 answers a range already inutilised with exactly these bounds: an earlier attempt of
        # this job whose answer was lost, or another request for the same range. Either way the
        # numbers are inutilised at SEFAZ, which is what the job wants; SEFAZ does not repeat the
        # protocol of the first request then, so no procInutNFe is stored.
        if answer.status_code not in (VOIDED, ALREADY_VOIDED):
            with self.ctx.rds.connection() as conn:
                done = _verdict(conn, self.ctx.job_id, "rejected", answer, {})
            return _finished(done)
        files: dict[str, str] = {}
        if answer.status_code == VOIDED:
            proc = proc_inut(signed, answer.xml)
            files["procInutNFe"] = Artifacts(self.ctx.s3, self.ctx.tenant).put(
                self._subject, "procInutNFe", proc
            )
        with self.ctx.rds.connection() as conn:
            for job_id in _burned_jobs(conn, voiding):
                numbering.mark(conn, job_id, numbering.Status.VOIDED)
            done = _verdict(conn, self.ctx.job_id, "voided", answer, files)
        return _finished(done)


def read_voiding_answer(xml: bytes) -> VoidingAnswer:
    """Read a ``retInutNFe``.

    Raises:
        SoapError: Not well-formed XML.
        ValueError: No ``infInut/cStat``.
    """
    info = parse_xml(xml).find(f"{{{NFE_NS}}}infInut")
    code = None if info is None else info.findtext(f"{{{NFE_NS}}}cStat")
    if info is None or code is None or not code.strip().isdigit():
        raise ValueError("retInutNFe has no infInut/cStat")
    return VoidingAnswer(
        status_code=int(code),
        reason=(info.findtext(f"{{{NFE_NS}}}xMotivo") or "").strip(),
        protocol=(info.findtext(f"{{{NFE_NS}}}nProt") or "").strip() or None,
        xml=xml,
    )


def proc_inut(signed: bytes, answer: bytes) -> bytes:
    """``ProcInutNFe``: the signed ``inutNFe`` and SEFAZ's ``retInutNFe``."""
    body = b"".join(without_declaration(part) for part in (signed, answer))
    head = f'<?xml version="1.0" encoding="UTF-8"?><ProcInutNFe xmlns="{NFE_NS}" versao="{VERSION}">'
    return head.encode() + body + b"</ProcInutNFe>"


def result_of(voiding: Voiding) -> dict[str, Any]:
    """The job's result: the range, its state, protocol and stored files."""
    return {
        "cnpj": voiding.cnpj,
        "model": voiding.model,
        "series": voiding.series,
        "first_number": voiding.first_number,
        "last_number": voiding.last_number,
        "state": voiding.state,
        "protocol": voiding.protocol,
        "status_code": voiding.status_code,
        "reason": voiding.reason,
        "files": voiding.artifacts,
    }


def _inut_document(cnpj: str, payload: VoidPayload, environment: int) -> bytes:
    """The unsigned ``inutNFe``; ``infInut/@Id`` = ID + cUF + AA + CNPJ + mod + serie + nNFIni + nNFFin."""
    uf_code, year = UF_CODES[payload.uf], datetime.now(UTC).astimezone(BRASILIA).year % 100
    first, last = payload.first_number, payload.last_number
    identifier = (
        f"ID{uf_code:02d}{year:02d}{cnpj}{payload.model:02d}{payload.series:03d}{first:09d}{last:09d}"
    )
    info = (
        f'<infInut Id="{identifier}"><tpAmb>{environment}</tpAmb><xServ>INUTILIZAR</xServ>'
        f"<cUF>{uf_code:02d}</cUF><ano>{year:02d}</ano><CNPJ>{cnpj}</CNPJ><mod>{payload.model}</mod>"
        f"<serie>{payload.series}</serie><nNFIni>{first}</nNFIni><nNFFin>{last}</nNFFin>"
        f"<xJust>{escape(payload.reason)}</xJust></infInut>"
    )
    return f'<inutNFe xmlns="{NFE_NS}" versao="{VERSION}">{info}</inutNFe>'.encode()


def _check_range(conn: Any, cnpj: str, payload: VoidPayload) -> None:
    """Refuse a range holding a number in use, or one the series has not reached."""
    series = (cnpj, payload.model, payload.series)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT number, status, job_id FROM nfe_number WHERE cnpj = %s AND model = %s AND series = %s"
            " AND number BETWEEN %s AND %s AND status IN ('allocated', 'authorized') ORDER BY number LIMIT 1",
            (*series, payload.first_number, payload.last_number),
        )
        used = cur.fetchone()
        cur.execute(
            "SELECT last_number FROM nfe_series WHERE cnpj = %s AND model = %s AND series = %s", series
        )
        head = cur.fetchone()
    where = _describe(cnpj, payload)
    if used is not None:
        number, status, job_id = used
        raise NonRetryable(
            f"number {number} of {where} is {status} (job {job_id}): only burned numbers (rejected_burned)"
            " and numbers never allocated may be voided; nothing was sent"
        )
    reached = int(head[0]) if head else 0
    if payload.last_number > reached:
        raise NonRetryable(
            f"number {max(payload.first_number, reached + 1)} of {where} has not been allocated yet (the"
            f" series has handed out up to {reached}): the allocator would give it to a future NF-e,"
            " which SEFAZ would then refuse (206); nothing was sent"
        )


def _burned_jobs(conn: Any, voiding: Voiding) -> list[str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT job_id FROM nfe_number WHERE cnpj = %s AND model = %s AND series = %s"
            " AND number BETWEEN %s AND %s AND status = 'rejected_burned' ORDER BY number",
            (voiding.cnpj, voiding.model, voiding.series, voiding.first_number, voiding.last_number),
        )
        return [str(row[0]) for row in cur.fetchall()]


def _same_range(voiding: Voiding, cnpj: str, payload: VoidPayload) -> None:
    asked = (cnpj, payload.model, payload.series, payload.first_number, payload.last_number)
    held = (voiding.cnpj, voiding.model, voiding.series, voiding.first_number, voiding.last_number)
    if asked != held:
        raise NonRetryable(f"job {voiding.job_id} already voids another range: {held}")


def _finished(voiding: Voiding) -> dict[str, Any]:
    if voiding.state == "rejected":
        raise NonRetryable(
            f"SEFAZ rejected the inutilização of numbers {voiding.first_number} to {voiding.last_number} of"
            f" series {voiding.series} (model {voiding.model}, CNPJ {voiding.cnpj}):"
            f" {voiding.status_code} {voiding.reason}"
        )
    return result_of(voiding)


def _describe(cnpj: str, payload: VoidPayload) -> str:
    return f"series {payload.series} of model {payload.model} of CNPJ {cnpj}"


# --- nfe_voiding rows -------------------------------------------------------------------------

_COLUMNS = ", ".join(f.name for f in fields(Voiding))


def _find(conn: Any, job_id: str) -> Voiding | None:
    return _one(conn, f"SELECT {_COLUMNS} FROM nfe_voiding WHERE job_id = %s", (job_id,))


def _insert(
    conn: Any, ctx: TaskContext, cnpj: str, payload: VoidPayload, artifacts: dict[str, str]
) -> Voiding:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO nfe_voiding"
            " (job_id, tenant, cnpj, model, series, first_number, last_number, artifacts)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (job_id) DO NOTHING",
            (ctx.job_id, ctx.tenant, cnpj, payload.model, payload.series, payload.first_number,
             payload.last_number, json.dumps(artifacts)),
        )  # fmt: skip
    found = _find(conn, ctx.job_id)
    assert found is not None
    return found


def _verdict(conn: Any, job_id: str, state: str, answer: VoidingAnswer, files: dict[str, str]) -> Voiding:
    return _update(
        conn,
        job_id,
        "state = %s, status_code = %s, reason = %s, protocol = %s, artifacts = artifacts || %s::jsonb",
        (state, answer.status_code, answer.reason, answer.protocol, json.dumps(files)),
    )


def _update(conn: Any, job_id: str, assignments: str, params: tuple[Any, ...]) -> Voiding:
    sql = (
        f"UPDATE nfe_voiding SET {assignments}, updated_at = clock_timestamp()"
        f" WHERE job_id = %s RETURNING {_COLUMNS}"
    )
    found = _one(conn, sql, (*params, job_id))
    if found is None:
        raise LookupError(f"no inutilização for job {job_id!r}")
    return found


def _one(conn: Any, sql: str, params: tuple[Any, ...]) -> Voiding | None:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    if row is None:
        return None
    values = dict(zip((f.name for f in fields(Voiding)), row, strict=True))
    values["artifacts"] = dict(values["artifacts"] or {})
    return Voiding(**values)
