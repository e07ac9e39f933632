"""The ``sped.efd_icms_ipi`` task: one company's EFD ICMS/IPI file of one month, stored in S3.

The file is streamed from the ERP database (:func:`.efd_writer.write_efd`) into a temporary file,
then put in S3 under a content-addressed key, ``sped/<tenant>/<cnpj>/<YYYYMM>/efd-<sha256>.txt``:
a rerun on the same data writes the identical object, and since ``put`` is atomic no partial
object is ever visible. (:class:`~tornado_core.ports.objects.ObjectStorePort` has only
``put``/``get``, so the whole file is read back into memory for the ``put``: a multipart upload
straight from the stream would keep memory flat for very large files; not done yet.)
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from tornado_core import NonRetryable, TaskContext, task

from .efd_writer import UnknownCompany, write_efd
from .erp_schema import ensure_erp_schema


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
        return end


def efd_key(tenant: str, cnpj: str, start: date, sha256: str) -> str:
    """The S3 key of a file: ``sped/<tenant>/<cnpj>/<YYYYMM>/efd-<sha256>.txt``."""
    return f"sped/{tenant}/{cnpj}/{start:%Y%m}/efd-{sha256}.txt"


@task(name="sped.efd_icms_ipi", payload=EfdPayload, timeout=3600, visibility_timeout=120)
def efd_icms_ipi(ctx: TaskContext, payload: EfdPayload) -> dict[str, Any]:
    """Generate one company's EFD ICMS/IPI file of one month and store it in S3."""
    with tempfile.TemporaryFile() as out:
        with ctx.rds.connection() as conn:
            ensure_erp_schema(conn)
            try:
                summary = write_efd(
                    conn, cnpj=payload.cnpj, start=payload.start, end=payload.end, cod_fin=payload.cod_fin,
                    out=out, progress=lambda fraction: ctx.progress(0.9 * fraction),
                )  # fmt: skip
            except UnknownCompany as exc:
                raise NonRetryable(str(exc)) from exc
        out.seek(0)
        key = efd_key(ctx.tenant, payload.cnpj, payload.start, summary.sha256)
        ctx.s3.put(key, out.read(), content_type="text/plain; charset=iso-8859-1")
    ctx.progress(1.0, f"{summary.lines} lines")
    return {
        "key": key,
        "lines": summary.lines,
        "records": dict(summary.record_counts),
        "sha256": summary.sha256,
    }
