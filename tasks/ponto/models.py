"""Payloads of the ponto tasks (their JSON Schemas are the queue contract)."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class Geo(BaseModel):
    """Where the collector was, if it knows."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90, description="Latitude, degrees.")
    lon: float = Field(ge=-180, le=180, description="Longitude, degrees.")
    accuracy: float | None = Field(default=None, ge=0, le=100_000, description="Radius in metres.")


class QueuedPunch(BaseModel):
    """One punch as the API queues it: validated and normalised."""

    model_config = ConfigDict(extra="forbid")

    id: UUID = Field(description="The client's punch UUID (idempotency key).")
    cpf: str = Field(pattern=r"^\d{11}$", description="Employee CPF, 11 digits, check digits valid.")
    rep: str = Field(min_length=1, max_length=64, description="REP id (known to the tenant).")
    time: AwareDatetime = Field(description="Punch time on the collector, with its UTC offset.")
    offline: bool = Field(description="Marked while the collector was offline.")
    collector: int = Field(ge=1, le=5, description="AFD collector code (01 mobile app ... 05 other device).")
    received_at: AwareDatetime = Field(description="The API's clock when it accepted the punch.")
    geo: Geo | None = None


class RecordPayload(BaseModel):
    """Payload of ``ponto.record``: a micro-batch of punches of one tenant."""

    model_config = ConfigDict(extra="forbid")

    punches: list[QueuedPunch] = Field(min_length=1, max_length=500)


class AfdPayload(BaseModel):
    """Payload of ``ponto.afd``: the AFD of one REP for a period of local dates (inclusive)."""

    model_config = ConfigDict(extra="forbid")

    rep: str = Field(min_length=1, max_length=64)
    start: date
    end: date
    generated_at: AwareDatetime | None = Field(
        default=None, description="Header generation time; now by default (fixed in golden tests)."
    )

    @model_validator(mode="after")
    def _period(self) -> AfdPayload:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class ExportPayload(BaseModel):
    """Payload of ``ponto.export_redshift``."""

    model_config = ConfigDict(extra="forbid")

    max_rows: int = Field(default=1_000_000, ge=1, le=50_000_000, description="Rows per batch at most.")
    rows_per_part: int = Field(default=250_000, ge=1, description="Rows per gzip CSV part.")
    iam_role: str | None = Field(default=None, description="Role ARN for COPY on real Redshift.")
    region: str | None = Field(default=None, description="Bucket region for COPY on real Redshift.")
    window: str | None = Field(default=None, description="Schedule window (informational).")
