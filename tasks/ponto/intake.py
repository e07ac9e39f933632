"""Validation of punches arriving at ``POST /v1/punches``, one by one (pure, no I/O).

A bad punch gets its own error; the good punches of the same request go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from .afd import COLLECTORS
from .identity import cpf_problem, digits_only
from .models import Geo

#: How far ahead of the API's clock a punch time may be (collector clocks drift). Within it a punch
#: is accepted and never marked after its receipt (``ledger.marcacao``); beyond it, refused and quarantined.
MAX_AHEAD = timedelta(minutes=5)
#: How old an offline punch may be when it finally arrives.
MAX_AGE = timedelta(days=60)
#: Most punches in one request.
MAX_PUNCHES = 500


class IncomingPunch(BaseModel):
    """One punch as a collector sends it."""

    model_config = ConfigDict(extra="forbid")

    id: UUID = Field(description="Client-generated UUID; re-sending it never creates a second punch.")
    cpf: str = Field(description="Employee CPF, with or without punctuation; check digits are verified.")
    rep: str = Field(min_length=1, max_length=64, description="The REP (registered to your tenant).")
    time: AwareDatetime = Field(description="Punch time on the collector, ISO 8601 with its UTC offset.")
    offline: bool = Field(default=False, description="Marked while offline (the collector's time is kept).")
    collector: Literal["mobile", "browser", "desktop", "device", "other"] = Field(
        default="mobile",
        description="AFD collector: mobile app (01), browser (02), desktop app (03), electronic device (04),"
        " other electronic device (05).",
    )
    geo: Geo | None = None

    @field_validator("cpf")
    @classmethod
    def _cpf(cls, value: str) -> str:
        problem = cpf_problem(value)
        if problem:
            raise ValueError(problem)
        return digits_only(value)


@dataclass
class Checked:
    """The verdict on one punch: ``queued`` (the job payload entry) or an error."""

    index: int
    punch_id: str | None
    queued: dict[str, Any] | None = None
    code: str = "punch_invalid"
    fields: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the punch may be queued."""
        return self.queued is not None

    def error(self) -> dict[str, Any]:
        """The error entry of the response."""
        message = "; ".join(f"{f['field']}: {f['message']}" for f in self.fields)
        return {"code": self.code, "message": message, "fields": self.fields}


def check_punch(item: Any, *, index: int, received_at: datetime, rep_known: Callable[[str], bool]) -> Checked:
    """Validate one punch.

    Args:
        item: The JSON value sent for the punch.
        index: Its position in the request (for field names like ``punches[3].cpf``).
        received_at: The API's clock now (aware, UTC).
        rep_known: Whether a REP id belongs to the caller's tenant.
    """
    where = f"punches[{index}]"
    punch_id = str(item.get("id")) if isinstance(item, dict) and isinstance(item.get("id"), str) else None
    try:
        punch = IncomingPunch.model_validate(item)
    except ValidationError as exc:
        return Checked(index, punch_id, fields=[_field(where, err) for err in exc.errors()])
    checked = Checked(index, str(punch.id))
    if punch.time > received_at + MAX_AHEAD:
        checked.code = "time_in_future"
        checked.fields.append({"field": f"{where}.time", "message": "is in the future"})
    elif punch.time < received_at - MAX_AGE:
        checked.code = "time_too_old"
        checked.fields.append({"field": f"{where}.time", "message": f"is older than {MAX_AGE.days} days"})
    if not rep_known(punch.rep):
        checked.code = "rep_unknown" if not checked.fields else "punch_invalid"
        checked.fields.append({"field": f"{where}.rep", "message": "no such REP for this tenant"})
    if not checked.fields:
        checked.queued = _queued(punch, received_at)
    return checked


def _field(where: str, err: Any) -> dict[str, str]:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return {"field": where + path, "message": message}


def _queued(punch: IncomingPunch, received_at: datetime) -> dict[str, Any]:
    queued: dict[str, Any] = {
        "id": str(punch.id),
        "cpf": punch.cpf,
        "rep": punch.rep,
        "time": punch.time.isoformat(),
        "offline": punch.offline,
        "collector": COLLECTORS[punch.collector],
        "received_at": received_at.isoformat(),
    }
    if punch.geo is not None:
        queued["geo"] = punch.geo.model_dump(exclude_none=True)
    return queued
