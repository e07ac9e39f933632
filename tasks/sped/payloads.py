"""The payloads of the SPED tasks: what an ERP submits, and what the file's job gives its parts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from .efd_parts import DocumentRange
from .layouts import LayoutRegistry, LayoutUnknown

#: Most parts a file may be split into.
MAX_PARTS = 32


class EfdPayload(BaseModel):
    """The payload of ``sped.efd_icms_ipi``.

    Attributes:
        cnpj: The establishment's CNPJ (14 digits).
        start: First day of the period.
        end: Last day of the period (same month as ``start``, not in the future).
        cod_fin: 0 original file, 1 substitute.
        parts: Split block C into this many ``sped.efd_part`` jobs run in parallel (1: no split).
    """

    cnpj: str = Field(pattern=r"^\d{14}$")
    start: date
    end: date
    cod_fin: int = Field(default=0, ge=0, le=1, strict=True, description="0 original, 1 substitute.")
    parts: int = Field(
        default=1, ge=1, le=MAX_PARTS, strict=True,
        description="Block C written by this many part jobs in parallel, then concatenated in order.",
    )  # fmt: skip

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


class EfdPartPayload(BaseModel):
    """The payload of ``sped.efd_part`` (queued by a ``sped.efd_icms_ipi`` job, never by an ERP).

    Attributes:
        file_job_id: The job of the file the part belongs to.
        index: The part's place in the file, from 1.
        cnpj: The establishment.
        start: First day of the period.
        end: Last day of the period.
        after: The part starts after this document (entry date, id); ``None`` at the first.
        through: The part ends with this document; ``None`` at the last.
    """

    file_job_id: str = Field(min_length=1, max_length=128)
    index: int = Field(ge=1, le=MAX_PARTS)
    cnpj: str = Field(pattern=r"^\d{14}$")
    start: date
    end: date
    after: tuple[date, int] | None = None
    through: tuple[date, int] | None = None

    def document_range(self) -> DocumentRange:
        """The documents of the part."""
        return DocumentRange(self.after, self.through)
