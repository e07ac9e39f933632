"""``POST /v1/punches`` and ``GET /v1/punches/{id}``: time-clock punches (ponto), storage first.

Served through the API's door for plugins (entry point ``tornado.api``: :func:`punch_endpoints`).

Each punch is validated on its own (bad ones get their own error, good ones go on).
Valid punches of a tenant are micro-batched into ``ponto.record`` jobs: the first
punch of an idle lane opens a window of ``linger`` seconds, and whatever arrives
in it (at most ``max_punches``) travels as one message, through the same enqueue
path as ``POST /v1/jobs``. A punch's receipt (202) is written only after the queue
acknowledged its message, and carries that job's id; the NSR is assigned when the
worker records the batch, and is then visible in the job's result and through
``GET /v1/punches/{id}``. A re-sent UUID is queued again and resolves to the NSR
the first copy got (see docs/ponto.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from tornado_core import DatabasePort
from tornado_core.errors import StoreUnavailable
from tornado_core.extend import (
    ApiContext,
    ApiError,
    ApiExtension,
    AuthenticatedHandler,
    JsonBodyHandler,
    error_responses,
    field_error,
    per_item_results_schema,
    submit_job,
    translate,
)

from .directory import find_punch, rep_owners
from .intake import MAX_PUNCHES, Checked, IncomingPunch, check_punch
from .quarantine import Refusal
from .quarantine_api import QuarantineHandler, quarantine_openapi, store_refusals
from .receipt_api import receipt_routes
from .receipt_openapi import receipt_openapi

RECORD_TASK = "ponto.record"
#: Seconds the first punch of an idle lane waits for company.
LINGER = 0.010
#: Most punches per ``ponto.record`` message (keeps ten of them under SQS's 256 KiB batch limit).
MAX_PER_MESSAGE = 64
_REF = "#/components/schemas/"
_JSON = "application/json"
#: About how many bytes a queued punch takes in a message.
_PUNCH_BYTES = 300


class RepDirectory:
    """Which tenant owns each REP, cached like the tenant tokens.

    Loaded on first use, refreshed in the background when older than ``max_age``,
    and at once (at most every ``min_gap`` seconds) when an unknown REP arrives.
    While the ERP database is down the last map keeps serving.
    """

    def __init__(
        self, db: DatabasePort, run: Callable[..., Any], *, max_age: float = 30.0, min_gap: float = 1.0
    ) -> None:
        self._db = db
        self._run = run
        self._max_age = max_age
        self._min_gap = min_gap
        self._owners: dict[str, str] | None = None
        self._loaded_at = -float("inf")
        self._tried_at = -float("inf")
        self._loading: asyncio.Task[None] | None = None

    def owned_if_known(self, tenant: str, reps: set[str]) -> set[str] | None:
        """The subset of ``reps`` registered to ``tenant`` if a fresh map knows them all, else ``None``.

        The common case, answered without awaiting (:meth:`owned_by` handles the rest).
        """
        owners = self._owners
        if owners is None or time.monotonic() - self._loaded_at >= self._max_age:
            return None
        if any(r not in owners for r in reps):
            return None
        return {r for r in reps if owners[r] == tenant}

    async def owned_by(self, tenant: str, reps: set[str]) -> set[str]:
        """The subset of ``reps`` registered to ``tenant``.

        Raises:
            StoreUnavailable: The map was never loaded and the ERP database is unreachable.
        """
        now = time.monotonic()
        stale = now - self._loaded_at >= self._max_age
        unknown = self._owners is None or any(r not in self._owners for r in reps)
        if (stale or unknown) and now - self._tried_at >= self._min_gap:
            task = self._start()
            if unknown:
                await asyncio.shield(task)
        elif unknown and self._loading is not None:
            await asyncio.shield(self._loading)
        if self._owners is None:
            raise StoreUnavailable("the REP directory is not loaded and the ERP database is unreachable")
        return {r for r in reps if self._owners.get(r) == tenant}

    def _start(self) -> asyncio.Task[None]:
        if self._loading is None:
            self._tried_at = time.monotonic()
            self._loading = asyncio.get_running_loop().create_task(self._load())
        return self._loading

    async def _load(self) -> None:
        try:
            self._owners = await self._run(self._read)
            self._loaded_at = time.monotonic()
        except StoreUnavailable:
            pass  # keep serving the last map
        finally:
            self._loading = None

    def _read(self) -> dict[str, str]:
        with self._db.connection() as conn:
            return rep_owners(conn)


@dataclass
class _Lane:
    pending: list[tuple[dict[str, Any], asyncio.Future[str]]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class PunchLanes:
    """Micro-batches a tenant's valid punches into ``ponto.record`` jobs.

    Args:
        api: The API's shared state (its storage-first enqueue path).
        linger: Seconds a lane waits after its first punch.
        max_punches: Punches per message at most (a full lane flushes at once).
    """

    def __init__(
        self, api: ApiContext, *, linger: float = LINGER, max_punches: int = MAX_PER_MESSAGE
    ) -> None:
        self._api = api
        self._linger = linger
        self._max = max_punches
        self._lanes: dict[str, _Lane] = {}
        self._sending: set[asyncio.Task[None]] = set()

    def add(self, tenant: str, punch: dict[str, Any]) -> asyncio.Future[str]:
        """Queue one punch; the future is the id of the job carrying it, once the queue has it."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.setdefault(tenant, _Lane())
        future: asyncio.Future[str] = loop.create_future()
        lane.pending.append((punch, future))
        if len(lane.pending) >= self._max:
            self._flush(tenant)
        elif lane.timer is None:
            lane.timer = loop.call_later(self._linger, self._flush, tenant)
        return future

    def _flush(self, tenant: str) -> None:
        lane = self._lanes[tenant]
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        batch, lane.pending = lane.pending[: self._max], lane.pending[self._max :]
        if lane.pending:
            lane.timer = asyncio.get_running_loop().call_later(self._linger, self._flush, tenant)
        task = asyncio.get_running_loop().create_task(self._send(tenant, batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, tenant: str, batch: list[tuple[dict[str, Any], asyncio.Future[str]]]) -> None:
        payload = {"punches": [punch for punch, _ in batch]}
        try:
            size = _PUNCH_BYTES * len(batch)  # an estimate: serialising just to measure costs too much
            receipt = await submit_job(self._api, tenant, RECORD_TASK, payload, size_hint=size)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for _, future in batch:
            if not future.done():
                future.set_result(str(receipt["id"]))


@dataclass(frozen=True)
class PunchState:
    """What the punch handlers share (one per application)."""

    lanes: PunchLanes
    directory: RepDirectory


def punch_openapi() -> tuple[dict[str, Any], dict[str, Any]]:
    """OpenAPI paths and schemas of the punch endpoints (every status they answer with)."""
    punch = IncomingPunch.model_json_schema(ref_template=_REF + "{model}")
    nested = punch.pop("$defs", {})
    request = {
        "type": "object",
        "required": ["punches"],
        "additionalProperties": False,
        "properties": {
            "punches": {"type": "array", "minItems": 1, "maxItems": MAX_PUNCHES, "items": _ref("Punch")}
        },
    }
    schemas = {"Punch": punch, "PunchBatch": request, "PunchResults": _results_schema(), **nested}
    schemas["RecordedPunch"] = _recorded_schema()
    paths = {"/v1/punches": {"post": _post_operation()}, "/v1/punches/{id}": {"get": _get_operation()}}
    quarantine_paths, quarantine_schemas = quarantine_openapi()
    receipt_paths, receipt_schemas = receipt_openapi()
    return paths | quarantine_paths | receipt_paths, schemas | quarantine_schemas | receipt_schemas


def _post_operation() -> dict[str, Any]:
    results = {"$ref": _REF + "PunchResults"}
    return {
        "summary": "Record time-clock punches (each accepted or refused on its own)",
        "description": "202 with a receipt per accepted punch (its job id) once queued; "
        "422 when no punch was valid (the per-punch results) or the body is not a punch batch (an Error); "
        "every refused punch is first kept in the quarantine (GET /v1/punches/quarantine); "
        "503 when the queue refused them all or the quarantine could not be written.",
        "operationId": "submitPunches",
        "requestBody": {"required": True, "content": {_JSON: {"schema": {"$ref": _REF + "PunchBatch"}}}},
        "responses": {
            "202": {"description": "Per-punch results.", "content": {_JSON: {"schema": results}}},
            "422": {
                "description": "No punch was valid, or the body is not a punch batch.",
                "content": {_JSON: {"schema": {"oneOf": [results, {"$ref": _REF + "Error"}]}}},
            },
        }
        | error_responses("400", "401", "413", "415", "429", "503"),
    }


def _get_operation() -> dict[str, Any]:
    return {
        "summary": "A recorded punch: its NSR and hash (404 until recorded)",
        "operationId": "getPunch",
        "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        ],
        "responses": {
            "200": {"description": "The punch.", "content": {_JSON: {"schema": _ref("RecordedPunch")}}}
        }
        | error_responses("400", "401", "404", "429", "503"),
    }


def _ref(schema: str) -> dict[str, str]:
    return {"$ref": _REF + schema}


def _results_schema() -> dict[str, Any]:
    accepted = {
        "type": "object",
        "required": ["index", "id", "status", "job_id"],
        "properties": {
            "index": {"type": "integer"},
            "id": {"type": "string"},
            "status": {"const": "queued"},
            "job_id": {"type": "string"},
        },
    }
    refused = {
        "type": "object",
        "required": ["index", "error"],
        "properties": {
            "index": {"type": "integer"},
            "id": {"type": ["string", "null"]},
            "error": {"$ref": _REF + "ErrorDetail"},
            "quarantined": {"type": "boolean", "description": "Kept in GET /v1/punches/quarantine."},
        },
    }
    return per_item_results_schema(accepted, refused)


def _recorded_schema() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "required": ["id", "status", "rep", "nsr", "marked_at", "recorded_at", "hash", "job_id"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "status": {"const": "recorded"},
            "rep": text,
            "nsr": {"type": "integer"},
            "marked_at": {"type": "string", "format": "date-time"},
            "marked_local": text,
            "recorded_at": {"type": "string", "format": "date-time"},
            "recorded_local": text,
            "time_zone": text,
            "device_time": {"type": "string", "format": "date-time"},
            "offline": {"type": "boolean"},
            "hash": text,
            "job_id": {"type": ["string", "null"]},
        },
    }


def punch_endpoints(api: ApiContext) -> ApiExtension:
    """The punch endpoints with their shared state and OpenAPI document (the ``tornado.api`` door)."""

    async def run(func: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(api.executor, func)

    state = PunchState(PunchLanes(api), RepDirectory(api.services.rds, run))
    args = {"api": api, "punches": state}
    routes = [
        (r"/v1/punches", PunchesHandler, args),
        (r"/v1/punches/quarantine", QuarantineHandler, args),  # before the {id} route, which would match it
        *receipt_routes(api),  # likewise
        (r"/v1/punches/([^/]+)", PunchHandler, args),
    ]
    paths, schemas = punch_openapi()
    return ApiExtension(routes=routes, openapi_paths=paths, openapi_schemas=schemas)


def _parse_batch(body: dict[str, Any]) -> list[Any]:
    extra = sorted(set(body) - {"punches"})
    if extra:
        raise field_error(422, "request_invalid", extra[0], "unknown field")
    punches = body.get("punches")
    if not isinstance(punches, list):
        message = "Field required" if punches is None else "must be a list"
        raise field_error(422, "request_invalid", "punches", message)
    if not 1 <= len(punches) <= MAX_PUNCHES:
        raise field_error(422, "request_invalid", "punches", f"must hold 1 to {MAX_PUNCHES} punches")
    return punches


class PunchesHandler(JsonBodyHandler):
    """``POST /v1/punches``: a batch of punches, each accepted or refused on its own."""

    punches: PunchState

    def initialize(self, api: ApiContext, punches: PunchState) -> None:  # type: ignore[override]
        """Receive the shared state."""
        super().initialize(api)
        self.punches = punches

    async def post(self) -> None:
        """202 with one receipt per accepted punch; 422 if none was valid; 503 if the queue refused all."""
        items = _parse_batch(self.json_body())
        received_at = datetime.now(UTC)
        reps = {i["rep"] for i in items if isinstance(i, dict) and isinstance(i.get("rep"), str)}
        directory = self.punches.directory
        owned = directory.owned_if_known(self.tenant, reps)
        if owned is None:
            owned = await self.within_deadline(directory.owned_by(self.tenant, reps))
        checked = [
            check_punch(item, index=n, received_at=received_at, rep_known=owned.__contains__)
            for n, item in enumerate(items)
        ]
        refused = [
            Refusal(c.code, c.error()["message"], items[c.index], received_at, c.punch_id)
            for c in checked
            if not c.ok
        ]
        if refused:  # storage first: kept before the refusal is answered (503 if they cannot be)
            await store_refusals(self, refused)
        results, outage = await self.within_deadline(self._queue(checked))
        accepted = sum(1 for r in results if "error" not in r)
        if accepted == 0 and outage is not None and all(c.ok for c in checked):
            raise outage  # nothing was accepted because the queue is down: 503, retry later
        body = {"accepted": accepted, "rejected": len(results) - accepted, "results": results}
        self.write_json(body, 202 if accepted else 422)

    async def _queue(self, checked: list[Checked]) -> tuple[list[dict[str, Any]], ApiError | None]:
        lanes = self.punches.lanes
        futures = {c.index: lanes.add(self.tenant, c.queued) for c in checked if c.queued is not None}
        job_of = await _settled(futures)
        results: list[dict[str, Any]] = []
        outage: ApiError | None = None
        for c in checked:
            head = {"index": c.index, "id": c.punch_id}
            outcome = job_of.get(c.index)
            if c.queued is None:
                results.append({**head, "error": c.error(), "quarantined": True})
            elif isinstance(outcome, BaseException):
                error = translate(outcome)
                outage = error if error.status == 503 else outage
                results.append({**head, **error.body()})
            else:
                results.append({**head, "status": "queued", "job_id": outcome})
        return results, outage


async def _settled(futures: dict[int, asyncio.Future[str]]) -> dict[int, str | BaseException]:
    """Each future's result or exception (a request given up on cancels the ones left)."""
    outcomes: dict[int, str | BaseException] = {}
    try:
        for key, future in futures.items():
            try:
                outcomes[key] = await future
            except Exception as exc:
                outcomes[key] = exc
    except asyncio.CancelledError:
        for future in futures.values():
            future.cancel()
        raise
    return outcomes


class PunchHandler(AuthenticatedHandler):
    """``GET /v1/punches/{id}``: a recorded punch of the caller's tenant, with its NSR."""

    punches: PunchState

    def initialize(self, api: ApiContext, punches: PunchState) -> None:  # type: ignore[override]
        """Receive the shared state."""
        super().initialize(api)
        self.punches = punches

    async def get(self, punch_id: str) -> None:
        """The punch; 404 while it is not recorded (follow the receipt's job until then)."""
        try:
            UUID(punch_id)
        except ValueError:
            raise field_error(400, "parameter_invalid", "id", "must be a UUID") from None

        def read() -> dict[str, Any] | None:
            with self.api.services.rds.connection() as conn:
                return find_punch(conn, self.tenant, punch_id)

        found = await self.run_blocking(read)
        if found is None:
            raise ApiError(
                404, "punch_not_found", "no recorded punch with this id (if just sent, follow its job_id)"
            )
        self.write_json(found)
