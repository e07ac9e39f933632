"""The REP-P's two clocks: the API host's (marcação of online punches) and the database's (gravação).

Anexo IX keeps a REP-P's clock within ±30 s of the Hora Legal Brasileira (:data:`MAX_SKEW`).
Both clocks above stamp every punch, so their skew is watched two ways:

* **directly** (:func:`measure_clocks`, ``tornado ponto clocks`` run on an API host): this
  host's clock against ``SELECT clock_timestamp()``, the midpoint of the round trip taken as
  the moment the database read its clock (uncertain by half the round trip);
* **from the punches** (:func:`api_lead`): a punch is received by an API before the database
  records it, so ``received_at - recorded_at`` is at most the API clock's lead over the
  database's. Its largest value over recent punches is a lower bound of that lead, close to it
  whenever some punch went through quickly (batches take milliseconds); a negative value says
  the API clocks lag (or the pipeline was slow). ``ponto.record`` logs a warning when a batch
  shows a lead over :data:`MAX_SKEW`; ``tornado ponto clocks`` reports the recent punches' bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .ledger import PunchOutcome
from .models import QueuedPunch

#: Most a REP-P's clock may be off (Anexo IX: ±30 s of the Hora Legal Brasileira).
MAX_SKEW = timedelta(seconds=30)
#: Recent punches looked at per REP by :func:`measure_clocks`.
PUNCHES_PER_REP = 100

_DATABASE_NOW = "SELECT clock_timestamp()"

# The last punches of each REP (primary-key order, so an index walk per REP), within the window.
_RECENT_LEAD = """
SELECT count(*), max(x.received_at - x.recorded_at)
FROM ponto_rep r
CROSS JOIN LATERAL (
    SELECT p.received_at, p.recorded_at FROM ponto_punch p
    WHERE p.rep_id = r.rep_id ORDER BY p.nsr DESC LIMIT %(per_rep)s
) AS x
WHERE (%(tenant)s::text IS NULL OR r.tenant = %(tenant)s) AND x.recorded_at >= clock_timestamp() - %(window)s
"""


@dataclass(frozen=True)
class ClockReport:
    """The clocks' skew as measured now.

    Attributes:
        host_skew: This host's clock minus the database's.
        uncertainty: Half the round trip of the database's reading (the skew is ± this).
        punches: Recent punches looked at.
        api_lead: Largest ``received_at - recorded_at`` among them: the API clocks lead the
            database's by at least this (``None`` without punches).
        window: How far back punches were looked at.
    """

    host_skew: timedelta
    uncertainty: timedelta
    punches: int
    api_lead: timedelta | None
    window: timedelta

    def problems(self, max_skew: timedelta = MAX_SKEW) -> list[str]:
        """What is over ``max_skew``, in words (empty when both clocks are within it)."""
        found = []
        if abs(self.host_skew) - self.uncertainty > max_skew:
            found.append(f"this host's clock is {_seconds(self.host_skew)} off the database's")
        if self.api_lead is not None and self.api_lead > max_skew:
            found.append(f"an API host's clock ran at least {_seconds(self.api_lead)} ahead of the database")
        return found


def measure_clocks(
    conn: Any, *, tenant: str | None = None, window: timedelta = timedelta(hours=1)
) -> ClockReport:
    """Compare this host's clock with the database's, and read the API clocks' lead off recent punches.

    Args:
        conn: DB-API connection to the ERP database.
        tenant: Only this tenant's REPs (all by default).
        window: How far back to look at punches (their last :data:`PUNCHES_PER_REP` per REP).
    """
    with conn.cursor() as cur:
        before = datetime.now(UTC)
        cur.execute(_DATABASE_NOW)
        database: datetime = cur.fetchone()[0]
        after = datetime.now(UTC)
        cur.execute(_RECENT_LEAD, {"tenant": tenant, "window": window, "per_rep": PUNCHES_PER_REP})
        count, lead = cur.fetchone()
    midpoint = before + (after - before) / 2
    return ClockReport(midpoint - database, (after - before) / 2, int(count), lead, window)


def api_lead(punches: Sequence[QueuedPunch], outcomes: Sequence[PunchOutcome]) -> timedelta | None:
    """The least lead of the API clock over the database's that a batch shows (``None``: none recorded)."""
    leads = [
        punch.received_at - outcome.recorded_at
        for punch, outcome in zip(punches, outcomes, strict=True)
        if outcome.recorded_at is not None
    ]
    return max(leads) if leads else None


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():+.3f} s"


def describe(report: ClockReport) -> list[str]:
    """The report's lines for an operator."""
    lines = [
        f"this host minus database: {_seconds(report.host_skew)}"
        f" (± {report.uncertainty.total_seconds():.3f} s, half the round trip)"
    ]
    hours = report.window.total_seconds() / 3600
    if report.api_lead is None:
        lines.append(f"API hosts: no punch recorded in the last {hours:g} h to read their clocks from")
    else:
        lines.append(
            f"API hosts minus database: at least {_seconds(report.api_lead)}"
            f" (largest receipt minus gravação over {report.punches} punch(es) of the last {hours:g} h)"
        )
    return lines
