"""The ponto tasks: ``ponto.record``, ``ponto.afd``, ``ponto.aej`` and ``ponto.export_redshift``."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from tornado_core import NonRetryable, Retry, RetryPolicy, TaskContext, task

from .aej import aej_file_name, render_aej
from .aej_source import AejPayload, load_aej_source
from .afd import afd_file_name, render_afd
from .afd_source import load_afd_source
from .clocks import MAX_SKEW, api_lead
from .export import export_punches
from .ledger import PunchOutcome, record_punches
from .models import AfdPayload, ExportPayload, RecordPayload
from .receipt_store import ReceiptsPayload, write_receipts
from .rep_signer import TEST_SIGNATURE_NOTICE, SignerError, load_rep_signer
from .schema import ensure_schema
from .signing import sign_detached

#: ``ponto.record`` jobs running at once across every worker: each holds one ERP connection
#: for a few milliseconds, and batches of one tenant serialise on its REP counters anyway.
RECORD_CONCURRENCY = 8
#: PostgreSQL's ``undefined_column``: the ponto tables predate this code (not yet ``init-db``).
UNDEFINED_COLUMN = "42703"


@task(
    name="ponto.record",
    payload=RecordPayload,
    internal=True,  # only POST /v1/punches may queue it: it validates CPF, REP and time first
    max_concurrency=RECORD_CONCURRENCY,
    timeout=60,
    visibility_timeout=10,
    # A long database outage costs a receive per visibility period: allow many.
    retry=RetryPolicy(max_attempts=25, backoff_base=1.0, backoff_factor=2.0, backoff_max=30.0),
)
def record(ctx: TaskContext, payload: RecordPayload) -> dict[str, Any]:
    """Record a batch of punches in one transaction: gap-free NSRs, hash chain, idempotent per UUID."""
    outcomes = _record(ctx, payload)
    lead = api_lead(payload.punches, outcomes)
    if lead is not None and lead > MAX_SKEW:
        ctx.logger.warning(
            "an API host's clock is at least %.1f s ahead of the database's (Anexo IX allows 30 s);"
            " marcações are capped at gravação: check NTP on the API hosts (tornado ponto clocks)",
            lead.total_seconds(),
        )
    statuses = [o.status for o in outcomes]
    return {
        "recorded": statuses.count("recorded"),
        "duplicates": statuses.count("duplicate"),
        "rejected": statuses.count("rejected"),
        "punches": [o.to_json() for o in outcomes],
    }


def _record(ctx: TaskContext, payload: RecordPayload) -> list[PunchOutcome]:
    """The batch recorded; tables older than this code are brought up first (then the job runs again)."""
    try:
        with ctx.rds.connection() as conn:
            return record_punches(conn, tenant=ctx.tenant, job_id=ctx.job_id, punches=payload.punches)
    except Exception as exc:  # the driver's error type stays in the adapters; its SQLSTATE tells
        if getattr(exc, "pgcode", None) != UNDEFINED_COLUMN:
            raise
        with ctx.rds.connection() as conn:
            ensure_schema(conn)
        raise Retry("the ponto tables were older than this worker; brought up to date", delay=0.1) from exc


@task(name="ponto.afd", payload=AfdPayload, timeout=900, visibility_timeout=60)
def afd(ctx: TaskContext, payload: AfdPayload) -> dict[str, Any]:
    """Write the signed AFD (and its detached CAdES .p7s) of one REP and period to S3."""
    generated_at = payload.generated_at or datetime.now(UTC)
    with ctx.rds.connection() as conn:  # its own short transaction: its lock is not held while reading
        ensure_schema(conn)  # the AFD reads columns of version 3
    with ctx.rds.connection() as conn:
        try:
            source = load_afd_source(
                conn, rep=payload.rep, start=payload.start, end=payload.end, generated_at=generated_at
            )
        except LookupError as exc:
            raise NonRetryable(str(exc)) from exc
    if source.tenant != ctx.tenant:
        raise NonRetryable(f"no REP {payload.rep!r} for this tenant")
    ctx.progress(0.4, f"{len(source.records)} records")
    data = render_afd(source.header, source.records)
    try:
        signer = load_rep_signer(ctx.s3, registered=source.registered)
    except SignerError as exc:
        raise NonRetryable(str(exc)) from exc
    if signer.test:
        ctx.logger.warning("AFD of %s signed for test: %s", payload.rep, TEST_SIGNATURE_NOTICE)
    signature = sign_detached(data, signer, signing_time=generated_at)
    name = afd_file_name(source.header.inpi, source.header.employer.id)
    folder = f"ponto/afd/{ctx.tenant}/{payload.rep}/{payload.start}_{payload.end}"
    ctx.s3.put(f"{folder}/{name}", data, content_type="text/plain; charset=iso-8859-1")
    ctx.s3.put(
        f"{folder}/{name.removesuffix('.txt')}.p7s", signature, content_type="application/pkcs7-signature"
    )
    kinds = [type(r).__name__ for r in source.records]
    result: dict[str, Any] = {
        "key": f"{folder}/{name}",
        "signature_key": f"{folder}/{name.removesuffix('.txt')}.p7s",
        "sha256": hashlib.sha256(data).hexdigest(),
        "records": len(source.records),
        "punches": kinds.count("PunchRecord"),
        "signer": signer.certificate.subject.rfc4514_string(),
        "test_signature": signer.test,
    }
    if signer.test:
        result["notice"] = TEST_SIGNATURE_NOTICE
    return result


@task(
    name="ponto.export_redshift",
    payload=ExportPayload,
    max_concurrency=1,
    timeout=1800,
    visibility_timeout=60,
    retry=RetryPolicy(max_attempts=5, backoff_base=10.0),
)
def export_redshift(ctx: TaskContext, payload: ExportPayload) -> dict[str, Any]:
    """Move punches recorded since the watermark into Redshift (the job id is the batch id)."""
    if ctx.redshift is None:
        raise NonRetryable("no Redshift configured (TORNADO_REDSHIFT_URL)")
    return export_punches(
        rds=ctx.rds, warehouse=ctx.redshift, s3=ctx.s3, batch_id=ctx.job_id, options=payload
    )


@task(name="ponto.aej", payload=AejPayload, timeout=900, visibility_timeout=60)
def aej(ctx: TaskContext, payload: AejPayload) -> dict[str, Any]:
    """Write the signed AEJ (and its detached CAdES .p7s) of one establishment and period to S3."""
    generated_at = payload.generated_at or datetime.now(UTC)
    try:
        with ctx.rds.connection() as conn:
            source = load_aej_source(
                conn,
                tenant=ctx.tenant,
                establishment=payload.establishment,
                start=payload.start,
                end=payload.end,
                generated_at=generated_at,
            )
        ctx.progress(0.5, f"{len(source.aej.marcacoes)} marcações")
        data = render_aej(source.aej)
        signer = load_rep_signer(ctx.s3, registered=source.registered)
    except (LookupError, ValueError, SignerError) as exc:
        raise NonRetryable(str(exc)) from exc
    name = aej_file_name(source.aej.header.employer.id, payload.start, payload.end)
    key = f"ponto/aej/{ctx.tenant}/{payload.establishment}/{name}"
    signature_key = key.removesuffix(".txt") + ".p7s"
    ctx.s3.put(key, data, content_type="text/plain; charset=iso-8859-1")
    signature = sign_detached(data, signer, signing_time=generated_at)
    ctx.s3.put(signature_key, signature, content_type="application/pkcs7-signature")
    result: dict[str, Any] = {
        "key": key,
        "signature_key": signature_key,
        "sha256": hashlib.sha256(data).hexdigest(),
        "vinculos": len(source.aej.vinculos),
        "marcacoes": len(source.aej.marcacoes),
        "signer": signer.certificate.subject.rfc4514_string(),
        "test_signature": signer.test,
    }
    if signer.test:
        result["notice"] = TEST_SIGNATURE_NOTICE
    return result


@task(name="ponto.receipts", payload=ReceiptsPayload, timeout=3600, visibility_timeout=60)
def receipts(ctx: TaskContext, payload: ReceiptsPayload) -> dict[str, Any]:
    """Write one zip of the signed receipts of a REP's punches recorded in a period (the employer's bulk)."""
    return write_receipts(ctx, payload)
