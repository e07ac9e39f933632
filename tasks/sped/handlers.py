"""The SPED tasks: ``sped.efd_icms_ipi`` (one company's EFD ICMS/IPI of one month) and its parts.

The file is streamed from the ERP database (:func:`.efd_writer.write_efd`) straight into an S3
multipart upload (``ctx.s3.upload``) under ``sped/<tenant>/<cnpj>/<YYYYMM>/efd-<job_id>.txt``, so
the worker's memory stays flat whatever the size. The object is visible only once complete: a
worker killed midway leaves nothing readable, and the job's rerun writes the same bytes under the
same key (the generator is deterministic). The complete file is then recorded in ``sped_file``
(:mod:`.files`), which the download endpoint reads.

With ``parts`` above 1, block C is written by that many ``sped.efd_part`` child jobs in parallel
(on the workers of that task), each to ``.../parts/<job_id>/part-NN.txt``, and the file's job
concatenates them in order (:mod:`.efd_parts`): the same bytes as in one piece. The parts are
deleted once the file is complete.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tornado_core import NonRetryable, TaskContext, task

from .efd_parts import PartFile, block_c_from, document_ranges, write_part
from .efd_writer import BlockCWriter, UnknownCompany, write_efd
from .erp_schema import ensure_erp_schema
from .files import SpedFile, record_file
from .payloads import EfdPartPayload, EfdPayload

__all__ = ["EfdPartPayload", "EfdPayload", "efd_icms_ipi", "efd_key", "efd_part"]

TEXT = "text/plain; charset=iso-8859-1"
PART_TASK = "sped.efd_part"


def efd_key(tenant: str, cnpj: str, start: date, job_id: str) -> str:
    """The S3 key of a job's file: ``sped/<tenant>/<cnpj>/<YYYYMM>/efd-<job_id>.txt``."""
    return f"sped/{tenant}/{cnpj}/{start:%Y%m}/efd-{job_id}.txt"


def part_key(tenant: str, cnpj: str, start: date, file_job_id: str, index: int) -> str:
    """The S3 key of a part: ``sped/<tenant>/<cnpj>/<YYYYMM>/parts/<file_job_id>/part-NN.txt``."""
    return f"sped/{tenant}/{cnpj}/{start:%Y%m}/parts/{file_job_id}/part-{index:02d}.txt"


@task(name="sped.efd_icms_ipi", payload=EfdPayload, timeout=3600, visibility_timeout=30)
def efd_icms_ipi(ctx: TaskContext, payload: EfdPayload) -> dict[str, Any]:
    """Generate one company's EFD ICMS/IPI file of one month and store it in S3."""
    key = efd_key(ctx.tenant, payload.cnpj, payload.start, ctx.job_id)
    parts = _written_parts(ctx, payload) if payload.parts > 1 else None
    block_c: BlockCWriter | None = None if parts is None else block_c_from(parts, ctx.s3.read_chunks)
    start_at = 0.0 if parts is None else 0.5
    with ctx.rds.connection() as conn:
        ensure_erp_schema(conn)
        try:
            with ctx.s3.upload(key, content_type=TEXT) as out:
                summary = write_efd(
                    conn, cnpj=payload.cnpj, start=payload.start, end=payload.end, cod_fin=payload.cod_fin,
                    out=out, progress=lambda done: ctx.progress(start_at + (0.95 - start_at) * done),
                    block_c=block_c,
                )  # fmt: skip
        except UnknownCompany as exc:
            raise NonRetryable(str(exc)) from exc
        record_file(conn, SpedFile(
            tenant=ctx.tenant, job_id=ctx.job_id, kind="efd_icms_ipi", cnpj=payload.cnpj,
            period_start=payload.start, period_end=payload.end, cod_fin=payload.cod_fin,
            layout=summary.cod_ver, object_key=key, lines=summary.lines, bytes=summary.bytes,
            sha256=summary.sha256, record_counts=dict(summary.record_counts),
        ))  # fmt: skip
    for part in parts or ():
        ctx.s3.delete(part.key)
    ctx.progress(1.0, f"{summary.lines} lines")
    return {
        "key": key,
        "lines": summary.lines,
        "bytes": summary.bytes,
        "records": dict(summary.record_counts),
        "sha256": summary.sha256,
        "parts": payload.parts,
    }


def _written_parts(ctx: TaskContext, payload: EfdPayload) -> list[PartFile]:
    """Queue the part jobs of block C (once, whatever the attempts) and wait for all of them."""
    with ctx.rds.connection() as conn:
        ensure_erp_schema(conn)
        try:
            ranges = document_ranges(
                conn, cnpj=payload.cnpj, start=payload.start, end=payload.end, parts=payload.parts
            )
        except UnknownCompany as exc:
            raise NonRetryable(str(exc)) from exc
    ids = []
    for index, document_range in enumerate(ranges, 1):
        child = EfdPartPayload(
            file_job_id=ctx.job_id, index=index, cnpj=payload.cnpj, start=payload.start, end=payload.end,
            after=document_range.after, through=document_range.through,
        )  # fmt: skip
        # The range is in the key: a rerun that cuts differently (the ERP changed) queues new parts.
        key = f"part-{index}:{document_range.after}:{document_range.through}"
        ids.append(ctx.children.submit(PART_TASK, child.model_dump(mode="json"), key=key))
    ctx.progress(0.05, f"{len(ids)} parts queued")
    records = ctx.children.wait(ids, on_done=lambda done: ctx.progress(0.05 + 0.45 * done / len(ids)))
    return [PartFile.from_result(record.result or {}) for record in records]


@task(name=PART_TASK, payload=EfdPartPayload, timeout=3600, visibility_timeout=30, internal=True)
def efd_part(ctx: TaskContext, payload: EfdPartPayload) -> dict[str, Any]:
    """Write one part of a split file's block C to S3 (queued by ``sped.efd_icms_ipi``)."""
    key = part_key(ctx.tenant, payload.cnpj, payload.start, payload.file_job_id, payload.index)
    with ctx.rds.connection() as conn, ctx.s3.upload(key, content_type=TEXT) as out:
        try:
            part = write_part(
                conn, cnpj=payload.cnpj, start=payload.start, end=payload.end,
                document_range=payload.document_range(), out=out, key=key, progress=ctx.progress,
            )  # fmt: skip
        except UnknownCompany as exc:
            raise NonRetryable(str(exc)) from exc
    return part.as_result()
