"""The ponto tasks: ``ponto.record``, ``ponto.afd`` and ``ponto.export_redshift``."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from tornado_core import NonRetryable, RetryPolicy, TaskContext, task
from tornado_core.errors import ObjectStoreError
from tornado_core.ports.objects import ObjectStorePort

from .afd import afd_file_name, render_afd
from .afd_source import load_afd_source
from .export import export_punches
from .ledger import record_punches
from .models import AfdPayload, ExportPayload, RecordPayload
from .signing import SIGNER_KEYS, load_signer, sign_detached

#: ``ponto.record`` jobs running at once across every worker: each holds one ERP connection
#: for a few milliseconds, and batches of one tenant serialise on its REP counters anyway.
RECORD_CONCURRENCY = 8


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
    with ctx.rds.connection() as conn:
        outcomes = record_punches(conn, tenant=ctx.tenant, job_id=ctx.job_id, punches=payload.punches)
    statuses = [o.status for o in outcomes]
    return {
        "recorded": statuses.count("recorded"),
        "duplicates": statuses.count("duplicate"),
        "rejected": statuses.count("rejected"),
        "punches": [o.to_json() for o in outcomes],
    }


def _signer_pem(s3: ObjectStorePort, tenant: str) -> bytes:
    for pattern in SIGNER_KEYS:
        try:
            return s3.get(pattern.format(tenant=tenant))
        except ObjectStoreError:
            continue
    raise NonRetryable(f"no signing certificate at {' or '.join(SIGNER_KEYS)} for tenant {tenant}")


@task(name="ponto.afd", payload=AfdPayload, timeout=900, visibility_timeout=60)
def afd(ctx: TaskContext, payload: AfdPayload) -> dict[str, Any]:
    """Write the signed AFD (and its detached CAdES .p7s) of one REP and period to S3."""
    generated_at = payload.generated_at or datetime.now(UTC)
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
    signature = sign_detached(data, load_signer(_signer_pem(ctx.s3, ctx.tenant)), signing_time=generated_at)
    name = afd_file_name(source.header.inpi, source.header.employer.id)
    folder = f"ponto/afd/{ctx.tenant}/{payload.rep}/{payload.start}_{payload.end}"
    ctx.s3.put(f"{folder}/{name}", data, content_type="text/plain; charset=iso-8859-1")
    ctx.s3.put(
        f"{folder}/{name.removesuffix('.txt')}.p7s", signature, content_type="application/pkcs7-signature"
    )
    kinds = [type(r).__name__ for r in source.records]
    return {
        "key": f"{folder}/{name}",
        "signature_key": f"{folder}/{name.removesuffix('.txt')}.p7s",
        "sha256": hashlib.sha256(data).hexdigest(),
        "records": len(source.records),
        "punches": kinds.count("PunchRecord"),
    }


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
