"""The API side of the quarantine: storing refused punches before answering, and listing them.

``POST /v1/punches`` calls :func:`store_refusals` before it answers: if the quarantine cannot be
written, the request gets a 503 (retry) rather than a 422 that would lose the punches.
``GET /v1/punches/quarantine`` lists the tenant's quarantined punches, newest first.
"""

from __future__ import annotations

import logging
from typing import Any

from tornado_core.errors import ApiError
from tornado_core.extend import ApiContext, AuthenticatedHandler, error_responses, field_error, unavailable

from .quarantine import Refusal, Sender, list_quarantined, quarantine
from .schema import ensure_schema

_log = logging.getLogger(__name__)
_JSON = "application/json"
#: Most rows per page of ``GET /v1/punches/quarantine``.
MAX_PAGE = 500


async def store_refusals(handler: AuthenticatedHandler, refusals: list[Refusal]) -> None:
    """Write the refused punches of a request to the quarantine (the ERP database), storage first.

    Raises:
        ApiError: 503 ``quarantine_unavailable`` when they could not be stored (nothing was
            accepted from the request then: the client retries it whole).
    """
    sender = Sender(handler.request.headers.get("User-Agent", ""), handler.request.remote_ip or "")
    tenant = handler.tenant

    def write() -> None:
        with handler.api.services.rds.connection() as conn:
            ensure_schema(conn)
            quarantine(conn, tenant=tenant, refusals=refusals, sender=sender)

    try:
        await handler.run_blocking(write)
    except ApiError:
        raise
    except Exception as exc:  # any storage failure: the punches must not be refused unrecorded
        _log.warning("could not quarantine %d refused punch(es): %s", len(refusals), exc)
        raise unavailable(
            "quarantine_unavailable", "refused punches could not be quarantined; nothing was accepted, retry"
        ) from exc


class QuarantineHandler(AuthenticatedHandler):
    """``GET /v1/punches/quarantine``: the caller's refused punches, newest first."""

    def initialize(self, api: ApiContext, **_: Any) -> None:
        """Receive the API's shared state."""
        super().initialize(api)

    async def get(self) -> None:
        """``{"quarantined": [...], "next_before": id | null}``; ``?limit=`` and ``?before=`` page."""
        limit = _int_argument(self.query_argument("limit"), "limit", 50)
        if not 1 <= limit <= MAX_PAGE:
            raise field_error(400, "parameter_invalid", "limit", f"must be 1 to {MAX_PAGE}")
        text = self.query_argument("before")
        before = None if text is None else _int_argument(text, "before", 0)
        tenant = self.tenant

        def read() -> list[dict[str, Any]]:
            with self.api.services.rds.connection() as conn:
                return list_quarantined(conn, tenant, limit=limit, before=before)

        rows = await self.run_blocking(read)
        last = rows[-1]["quarantine_id"] if len(rows) == limit else None
        self.write_json({"quarantined": rows, "next_before": last})


def _int_argument(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise field_error(400, "parameter_invalid", name, "must be an integer") from None


def quarantine_openapi() -> tuple[dict[str, Any], dict[str, Any]]:
    """OpenAPI path and schema of ``GET /v1/punches/quarantine``."""
    text = {"type": ["string", "null"]}
    when = {"type": "string", "format": "date-time"}
    entry = {
        "type": "object",
        "required": [
            "quarantine_id",
            "stage",
            "reason",
            "message",
            "payload",
            "received_at",
            "quarantined_at",
        ],
        "properties": {
            "quarantine_id": {"type": "integer"},
            "stage": {"enum": ["intake", "record"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "punch_id": text,
            "rep": text,
            "collector": text,
            "user_agent": {"type": "string"},
            "remote_addr": {"type": "string"},
            "payload": {"description": "The punch exactly as received."},
            "received_at": when,
            "quarantined_at": when,
            "job_id": text,
        },
    }
    page = {
        "type": "object",
        "required": ["quarantined", "next_before"],
        "properties": {
            "quarantined": {"type": "array", "items": {"$ref": "#/components/schemas/QuarantinedPunch"}},
            "next_before": {"type": ["integer", "null"]},
        },
    }
    integer = {"type": "integer"}
    operation = {
        "summary": "Punches refused for good (kept raw with their reason), newest first",
        "operationId": "listQuarantinedPunches",
        "parameters": [
            {"name": "limit", "in": "query", "schema": integer | {"minimum": 1, "maximum": MAX_PAGE}},
            {"name": "before", "in": "query", "schema": integer},
        ],
        "responses": {"200": {"description": "A page.", "content": {_JSON: {"schema": page}}}}
        | error_responses("400", "401", "429", "503"),
    }
    return {"/v1/punches/quarantine": {"get": operation}}, {"QuarantinedPunch": entry}
