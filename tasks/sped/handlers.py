"""The ``sped.efd_icms_ipi`` task: one company's EFD ICMS/IPI file of one month, stored in S3.

The file is streamed from the ERP database (:func:`.efd_writer.write_efd`) straight into an S3
multipart upload (``ctx.s3.upload``) under ``sped/<tenant>/<cnpj>/<YYYYMM>/efd-<job_id>.txt``, so
the worker's memory stays flat whatever the size. The object is visible only once complete: a
worker killed midway leaves nothing readable, and the job's rerun writes the same bytes under the
same key (the generator is deterministic). The complete file is then recorded in ``sped_file``
(:mod:`.files`), which the download endpoint reads.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from tornado_core import NonRetryable, TaskContext, task

from .efd_writer import UnknownCompany, write_efd
from .erp_schema import ensure_erp_schema
from .files import SpedFile, record_file
from .layouts import LayoutRegistry, LayoutUnknown


class EfdPayload(BaseModel):
    """The payload of ``sped.efd_icms_ipi``.

    Attributes:
        cnpj: The establishment's CNPJ (14 digits).
        start: First day of the period.
        end: Last day of the period (same month as ``start``, not in the future).
        cod_fin: 0 original file, 1 substitute.
    """

    cnpj: str = Field(pattern=r"^\d{14}$")
    start: date
    end: date
    cod_fin: int = Field(default=0, ge=0, le=1, strict=True, description="0 original, 1 substitute.")

    @field_validator("end")
    @classmethod
    def _check_period(cls, end: date, info: ValidationInfo) -> date:
        start = info.data.get("start")
        if isinstance(start, date):
            if end < start:
                raise ValueError("end must not be before start")
            if (start.year, start.month) != (end.year, end.month):
                raise ValueError("start and end must be in the same month")
        if end > datetime.now(UTC).date():
            raise ValueError("the period must not end in the future")
        try:
            LayoutRegistry.bundled().for_period(end)
        except LayoutUnknown as exc:
            raise ValueError(str(exc)) from None
        return end


def efd_key(tenant: str, cnpj: str, start: date, job_id: str) -> str:
    """The S3 key of a job's file: ``sped/<tenant>/<cnpj>/<YYYYMM>/efd-<job_id>.txt``."""
    return f"sped/{tenant}/{cnpj}/{start:%Y%m}/efd-{job_id}.txt"


@task(name="sped.efd_icms_ipi", payload=EfdPayload, timeout=3600, visibility_timeout=30)
def efd_icms_ipi(ctx: TaskContext, payload: EfdPayload) -> dict[str, Any]:
    """Generate one company's EFD ICMS/IPI file of one month and store it in S3."""
    key = efd_key(ctx.tenant, payload.cnpj, payload.start, ctx.job_id)
    with ctx.rds.connection() as conn:
        ensure_erp_schema(conn)
        upload = ctx.s3.upload(key, content_type="text/plain; charset=iso-8859-1")
        try:
            with upload as out:
                summary = write_efd(
                    conn, cnpj=payload.cnpj, start=payload.start, end=payload.end, cod_fin=payload.cod_fin,
                    out=out, progress=lambda fraction: ctx.progress(0.95 * fraction),
                )  # fmt: skip
        except UnknownCompany as exc:
            raise NonRetryable(str(exc)) from exc
        record_file(conn, SpedFile(
            tenant=ctx.tenant, job_id=ctx.job_id, kind="efd_icms_ipi", cnpj=payload.cnpj,
            period_start=payload.start, period_end=payload.end, cod_fin=payload.cod_fin,
            layout=summary.cod_ver, object_key=key, lines=summary.lines, bytes=summary.bytes,
            sha256=summary.sha256, record_counts=dict(summary.record_counts),
        ))  # fmt: skip
    ctx.progress(1.0, f"{summary.lines} lines")
    return {
        "key": key,
        "lines": summary.lines,
        "bytes": summary.bytes,
        "records": dict(summary.record_counts),
        "sha256": summary.sha256,
    }
