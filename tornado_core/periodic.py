"""Periodic schedules a task declares in its code: installed for every tenant by the scheduler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Periodic:
    """A periodic schedule declared on a task: the nightly export, the daily AFD files.

    ``tornado scheduler`` installs it for every tenant, named ``<task>.<name>``, and keeps it in
    step with the code (cron, time zone, payload, missed policy) while leaving an operator's
    pause alone. Tenants' own schedules (``/v1/schedules``) are separate.

    Attributes:
        name: Its name within the task (``nightly``).
        cron: Five fields, or six with seconds first.
        timezone: An IANA time zone name.
        payload: The payload of every job it queues.
        missed: ``skip`` or ``catch_up`` (see :class:`~tornado_core.ports.schedules.MissedPolicy`).
    """

    name: str
    cron: str
    timezone: str = "UTC"
    payload: dict[str, Any] = field(default_factory=dict)
    missed: str = "skip"

    def __post_init__(self) -> None:
        if self.missed not in ("skip", "catch_up"):
            raise ValueError("missed is 'skip' or 'catch_up'")
