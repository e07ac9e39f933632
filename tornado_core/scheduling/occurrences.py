"""When a periodic schedule fires: cron expressions in a time zone, and the missed-occurrence policy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from tornado_core.errors import ScheduleInvalid
from tornado_core.ports.schedules import MissedPolicy, Schedule

#: Seconds an occurrence may be late and still run under the ``skip`` policy (a scheduler ticks
#: every second or so; a short stop should not lose an occurrence).
LATE_GRACE = 60.0

#: Most occurrences one firing of a ``catch_up`` schedule queues; the rest follow at the next tick.
MAX_CATCH_UP = 500

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``.

    Raises:
        ScheduleInvalid: No such time zone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"unknown time zone {name!r} (use an IANA name, e.g. America/Sao_Paulo)"
        raise ScheduleInvalid("timezone", message) from None


def check_definition(name: str, cron: str, timezone: str) -> None:
    """Refuse a schedule whose name, cron expression or time zone is wrong.

    Raises:
        ScheduleInvalid: Naming the first offending field.
    """
    if not _NAME.match(name):
        raise ScheduleInvalid("name", "1 to 100 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
    next_occurrence(cron, timezone, datetime.now(UTC))


def next_occurrence(cron: str, timezone: str, after: datetime) -> datetime:
    """The first occurrence strictly after ``after``, in UTC.

    Raises:
        ScheduleInvalid: The expression or the time zone is wrong, or it never fires.
    """
    return next(_occurrences(cron, timezone, after))


def _occurrences(cron: str, timezone: str, after: datetime) -> Iterator[datetime]:
    zone = time_zone(timezone)
    fields = cron.split()
    if len(fields) not in (5, 6):
        message = "five fields (minute hour day month weekday), or six with seconds first"
        raise ScheduleInvalid("cron", message)
    try:
        ticks = CronSim(cron, after.astimezone(zone))
        first = next(ticks)
    except (CronSimError, StopIteration) as exc:
        raise ScheduleInvalid("cron", f"not a valid cron expression: {exc or 'it never fires'}") from None
    yield first.astimezone(UTC)
    for tick in ticks:
        yield tick.astimezone(UTC)


@dataclass(frozen=True)
class DueOccurrences:
    """The occurrences to queue now, and the schedule's next occurrence after them."""

    run: list[datetime]
    next_run_at: datetime


def due_occurrences(schedule: Schedule, now: datetime) -> DueOccurrences:
    """The occurrences of ``schedule`` due by ``now`` that its missed policy runs.

    ``skip`` runs those at most :data:`LATE_GRACE` seconds late; ``catch_up`` runs all of them,
    oldest first, at most :data:`MAX_CATCH_UP` per call (``next_run_at`` then stays in the past).
    """
    start = schedule.next_run_at
    if schedule.missed is MissedPolicy.SKIP:
        start = max(start, now - timedelta(seconds=LATE_GRACE))
    run: list[datetime] = []
    for occurrence in _from(schedule.cron, schedule.timezone, start):
        if occurrence > now or len(run) == MAX_CATCH_UP:
            return DueOccurrences(run, occurrence)
        run.append(occurrence)
    raise AssertionError("cron occurrences never end")  # pragma: no cover - CronSim is infinite


def _from(cron: str, timezone: str, start: datetime) -> Iterator[datetime]:
    """Occurrences at or after ``start``."""
    return _occurrences(cron, timezone, start - timedelta(microseconds=1))
