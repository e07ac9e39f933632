"""The console's job filter: what a search and a bulk action select, parsed from a query string."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tornado_core.errors import FilterInvalid
from tornado_core.job_ids import MAX_IDEMPOTENCY_KEY
from tornado_core.ports.jobs import JobStatus

#: Longest text a filter field takes (task, version, tenant, error text).
MAX_TEXT = 200

#: Query-string name -> field, for the text fields taken as they are.
_TEXT_FIELDS = {
    "task": "task",
    "version": "version",
    "tenant": "tenant",
    "key": "idempotency_key",
    "error": "error_text",
}
_DATE_HELP = "an ISO 8601 date or date-time, e.g. 2026-11-30 or 2026-11-30T10:00Z"


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    """Which jobs a search lists and a bulk action acts on; every field given must match.

    Attributes:
        task: The task's name, exactly.
        version: The task version, exactly.
        tenant: The tenant, exactly.
        status: The job's status now.
        created_after: Created at or after this instant (aware, UTC).
        created_before: Created before this instant (aware, UTC).
        idempotency_key: The key the job was submitted with, exactly.
        error_text: A case-insensitive part of the job's error type or message.
    """

    task: str | None = None
    version: str | None = None
    tenant: str | None = None
    status: JobStatus | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    idempotency_key: str | None = None
    error_text: str | None = None

    @classmethod
    def from_query(cls, args: Mapping[str, str]) -> JobFilter:
        """The filter of a query string: ``task``, ``version``, ``tenant``, ``status``, ``from``, ``to``,
        ``key``, ``error``; empty values and other names are ignored.

        ``from`` and ``to`` are ISO 8601 dates or date-times (UTC unless they say otherwise); ``from``
        is inclusive, ``to`` exclusive, and a date ``to`` covers its whole day.

        Raises:
            FilterInvalid: A value is malformed, too long, or ``to`` is not after ``from``.
        """
        values: dict[str, Any] = {}
        for name, attribute in _TEXT_FIELDS.items():
            values[attribute] = _text(
                name, args.get(name), MAX_IDEMPOTENCY_KEY if name == "key" else MAX_TEXT
            )
        values["status"] = _status(args.get("status"))
        values["created_after"] = _instant("from", args.get("from"), end_of_day=False)
        values["created_before"] = _instant("to", args.get("to"), end_of_day=True)
        return cls._checked(values)

    @classmethod
    def _checked(cls, values: dict[str, Any]) -> JobFilter:
        after, before = values.get("created_after"), values.get("created_before")
        if after is not None and before is not None and before <= after:
            raise FilterInvalid("to", "must be later than 'from'")
        return cls(**values)

    def to_query(self) -> dict[str, str]:
        """The query string that gives this filter back (the fields that are set)."""
        query = {name: getattr(self, attribute) for name, attribute in _TEXT_FIELDS.items()}
        query["status"] = str(self.status) if self.status else None
        query["from"] = self.created_after.isoformat() if self.created_after else None
        query["to"] = self.created_before.isoformat() if self.created_before else None
        order = ("task", "version", "tenant", "status", "from", "to", "key", "error")
        return {name: query[name] for name in order if query[name] is not None}

    def to_json(self) -> dict[str, Any]:
        """The filter as stored with a bulk action: the fields that are set, instants in ISO 8601."""
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                data[item.name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobFilter:
        """The filter :meth:`to_json` wrote.

        Raises:
            FilterInvalid: A field is unknown or malformed.
        """
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FilterInvalid(unknown[0], "not a field of a job filter")
        values: dict[str, Any] = {}
        for name, value in data.items():
            if value is not None and not isinstance(value, str):
                raise FilterInvalid(name, "must be text")
            values[name] = value
        values["status"] = _status(values.get("status"))
        for name in ("created_after", "created_before"):
            values[name] = _instant(name, values.get(name), end_of_day=False)
        return cls._checked(values)

    @property
    def is_empty(self) -> bool:
        """Whether the filter matches every job."""
        return all(getattr(self, item.name) is None for item in fields(self))

    def describe(self) -> str:
        """A one-line summary for audit entries and confirmations, e.g.
        ``task=demo.fail status=dead error~'timeout'`` (empty for the filter of every job)."""
        shown = {**self.to_query(), "from": _moment(self.created_after), "to": _moment(self.created_before)}
        parts = [f"{name}={_quoted(value)}" for name, value in shown.items() if value and name != "error"]
        if self.error_text is not None:
            parts.append(f"error~{_quoted(self.error_text, always=True)}")
        return " ".join(parts)


def _text(name: str, raw: str | None, longest: int) -> str | None:
    value = (raw or "").strip()
    if not value:
        return None
    if len(value) > longest:
        raise FilterInvalid(name, f"at most {longest} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise FilterInvalid(name, "control characters are not allowed")
    return value


def _status(raw: str | None) -> JobStatus | None:
    value = (raw or "").strip().lower()
    if not value:
        return None
    try:
        return JobStatus(value)
    except ValueError:
        raise FilterInvalid("status", "one of " + ", ".join(str(s) for s in JobStatus)) from None


def _instant(name: str, raw: str | None, *, end_of_day: bool) -> datetime | None:
    """An aware UTC instant from an ISO 8601 date or date-time; a date ``to`` means the next midnight."""
    value = (raw or "").strip()
    if not value:
        return None
    if len(value) > 64:
        raise FilterInvalid(name, _DATE_HELP)
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return midnight + timedelta(days=1) if end_of_day else midnight
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise FilterInvalid(name, _DATE_HELP) from None


def _moment(value: datetime | None) -> str | None:
    """``2026-11-30T10:00:00Z`` (fractions of a second kept when there are some)."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _quoted(value: str, *, always: bool = False) -> str:
    if always or not value or any(char.isspace() or char in "'\"=~" for char in value):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return value
