"""``/v1/schedules``: a tenant's periodic schedules (cron in a time zone): create, list, pause, remove."""

from __future__ import annotations

from typing import Any

from tornado_core.errors import ApiError
from tornado_core.ports.schedules import MissedPolicy
from tornado_core.scheduling.book import ScheduleBook
from tornado_core.web.base import AuthenticatedHandler, JsonBodyHandler
from tornado_core.web.context import ApiContext
from tornado_core.web.errors import FieldError
from tornado_core.web.extensions import ApiExtension
from tornado_core.web.openapi import error_responses, operation

_REF = "#/components/schemas/"
_JSON = "application/json"
_FIELDS = frozenset({"name", "task", "payload", "cron", "timezone", "missed", "paused"})
_TEXT_FIELDS = {"name": 100, "task": 200, "cron": 200, "timezone": 64}
_ABSENT = object()


def schedule_endpoints(api: ApiContext) -> ApiExtension:
    """The schedules endpoints, served beside ``/v1/jobs`` when the services keep schedules."""
    if api.services.schedules is None:
        return ApiExtension(routes=())
    book = ScheduleBook(api.services.schedules, api.enqueuer.submitter)
    args = {"api": api, "book": book}
    routes = [
        (r"/v1/schedules", SchedulesHandler, args),
        (r"/v1/schedules/([^/:]+):(pause|resume)", ScheduleActionHandler, args),
        (r"/v1/schedules/([^/:]+)", ScheduleHandler, args),
    ]
    return ApiExtension(routes=routes, openapi_paths=_paths(), openapi_schemas=_schemas())


def parse_schedule(data: dict[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """The keyword arguments of :meth:`ScheduleBook.add` from a request body.

    Args:
        data: The body.
        name: The name from the URL (``PUT``); the body may repeat it, not contradict it.

    Raises:
        ApiError: 422 ``request_invalid`` naming every offending field.
    """
    unknown = sorted(set(data) - _FIELDS)
    problems: list[FieldError] = [{"field": field, "message": "unknown field"} for field in unknown]
    values = {"name": name, **data} if name is not None else dict(data)
    if name is not None and data.get("name", name) != name:
        problems.append({"field": "name", "message": f"differs from the URL's {name!r}"})
    required = ("name", "task", "cron")
    for field, longest in _TEXT_FIELDS.items():
        value = values.get(field, _ABSENT)
        if value is _ABSENT and field in required:
            problems.append({"field": field, "message": "Field required"})
        elif value is not _ABSENT and (not isinstance(value, str) or not 1 <= len(value) <= longest):
            problems.append({"field": field, "message": f"must be a string of 1 to {longest} characters"})
    if not isinstance(values.get("payload", {}), dict):
        problems.append({"field": "payload", "message": "must be a JSON object"})
    missed = values.get("missed", "skip")
    if not isinstance(missed, str) or missed not in {m.value for m in MissedPolicy}:
        problems.append({"field": "missed", "message": "must be 'skip' or 'catch_up'"})
    if not isinstance(values.get("paused", False), bool):
        problems.append({"field": "paused", "message": "must be true or false"})
    if problems:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ApiError(422, "request_invalid", summary, fields=problems)
    return {
        "name": values["name"], "task": values["task"], "cron": values["cron"],
        "payload": values.get("payload", {}), "timezone": values.get("timezone", "UTC"),
        "missed": MissedPolicy(values.get("missed", "skip")), "paused": values.get("paused", False),
    }  # fmt: skip


class _ScheduleHandler(JsonBodyHandler):
    book: ScheduleBook

    def initialize(self, api: ApiContext, book: ScheduleBook) -> None:  # type: ignore[override]
        super().initialize(api)
        self.book = book


class SchedulesHandler(_ScheduleHandler):
    """``GET /v1/schedules`` lists the tenant's schedules; ``POST`` creates one."""

    async def get(self) -> None:
        """200 with every schedule of the tenant, by name."""
        found = await self.run_blocking(self.book.list, self.tenant)
        self.write_json({"schedules": [s.to_json() for s in found]})

    async def post(self) -> None:
        """201 with the schedule; 409 if the name is taken; 422 naming the offending fields."""
        fields = parse_schedule(self.json_body())
        created = await self.run_blocking(lambda: self.book.add(tenant=self.tenant, **fields))
        self.write_json(created.to_json(), 201)


class ScheduleHandler(_ScheduleHandler):
    """``GET``, ``PUT`` (create or replace) and ``DELETE /v1/schedules/{name}``."""

    async def get(self, name: str) -> None:
        """200 with the schedule, 404 if the tenant has none of that name."""
        found = await self.run_blocking(self.book.get, self.tenant, name)
        self.write_json(found.to_json())

    async def put(self, name: str) -> None:
        """200 with the stored schedule (created, or replaced as a whole)."""
        fields = parse_schedule(self.json_body(), name=name)
        stored = await self.run_blocking(lambda: self.book.add(tenant=self.tenant, replace=True, **fields))
        self.write_json(stored.to_json())

    async def delete(self, name: str) -> None:
        """204; the jobs it queued stay. 404 if unknown."""
        await self.run_blocking(self.book.remove, self.tenant, name)
        self.set_status(204)
        self.finish()


class ScheduleActionHandler(AuthenticatedHandler):
    """``POST /v1/schedules/{name}:pause`` and ``:resume`` (no body)."""

    book: ScheduleBook

    def initialize(self, api: ApiContext, book: ScheduleBook) -> None:  # type: ignore[override]
        super().initialize(api)
        self.book = book

    async def post(self, name: str, action: str) -> None:
        """200 with the schedule; resuming skips what it missed while paused. 404 if unknown."""
        change = self.book.pause if action == "pause" else self.book.resume
        changed = await self.run_blocking(change, self.tenant, name)
        self.write_json(changed.to_json())


def _schemas() -> dict[str, Any]:
    text = {"type": "string"}
    stamp = {"type": ["string", "null"], "format": "date-time"}
    definition = {
        "name": {**text, "minLength": 1, "maxLength": 100, "pattern": "^[a-z0-9][a-z0-9._-]*$"},
        "task": {**text, "minLength": 1, "maxLength": 200},
        "payload": {"type": "object"},
        "cron": {**text, "minLength": 1, "maxLength": 200,
                 "description": "Five fields (minute hour day month weekday), or six with seconds first."},
        "timezone": {**text, "minLength": 1, "maxLength": 64, "description": "IANA name; UTC by default."},
        "missed": {"type": "string", "enum": [m.value for m in MissedPolicy],
                   "description": "Occurrences missed while no scheduler ran: skipped (default) or "
                   "each run, oldest first."},
        "paused": {"type": "boolean"},
    }  # fmt: skip
    request = {"type": "object", "additionalProperties": False, "properties": definition}
    shown = {
        **definition,
        "next_run_at": {**text, "format": "date-time"},
        "last_run_at": stamp,
        "last_job_id": {"type": ["string", "null"]},
        "created_at": stamp,
    }
    return {
        "ScheduleRequest": {**request, "required": ["name", "task", "cron"]},
        "ScheduleReplacement": {**request, "required": ["task", "cron"]},
        "Schedule": {"type": "object", "required": sorted(shown), "properties": shown},
        "ScheduleList": {
            "type": "object",
            "required": ["schedules"],
            "properties": {"schedules": {"type": "array", "items": {"$ref": _REF + "Schedule"}}},
        },
    }


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": {"$ref": _REF + schema}}}}


def _paths() -> dict[str, Any]:
    name = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    reads = error_responses("401", "429", "503")
    writes = error_responses("400", "401", "413", "415", "422", "429", "503")
    missing = error_responses("404")
    shown = _answer("The schedule.", "Schedule")
    return {
        "/v1/schedules": {
            "get": operation("This tenant's periodic schedules", "listSchedules",
                       {"200": _answer("The schedules, by name.", "ScheduleList")} | reads),
            "post": operation("Create a periodic schedule (one job per cron occurrence)", "createSchedule",
                        {"201": _answer("Created.", "Schedule")} | error_responses("409") | writes,
                        body="ScheduleRequest"),
        },
        "/v1/schedules/{name}": {
            "get": operation("A schedule", "getSchedule", {"200": shown} | missing | reads, parameters=name),
            "put": operation("Create or replace a schedule", "putSchedule", {"200": shown} | writes,
                       parameters=name, body="ScheduleReplacement"),
            "delete": operation("Remove a schedule (its jobs stay)", "deleteSchedule",
                          {"204": {"description": "Removed."}} | missing | reads, parameters=name),
        },
        "/v1/schedules/{name}:pause": {
            "post": operation("Pause a schedule", "pauseSchedule", {"200": shown} | missing | reads,
                        parameters=name),
        },
        "/v1/schedules/{name}:resume": {
            "post": operation("Resume a schedule from its next occurrence", "resumeSchedule",
                        {"200": shown} | missing | reads, parameters=name),
        },
    }  # fmt: skip
