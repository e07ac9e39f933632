"""The emulator's admin JSON API, for tests and operators (no authentication: serve it on loopback).

Routes (all JSON; errors answer ``{"error": "..."}`` with 400 or 404):

* ``GET /emulator/health``: ``{"status": "ok", "services": {"NFeAutorizacao4":
  "/ws/nfeautorizacao4.asmx", ...}}``.
* ``GET /emulator/scenario``: ``{"default": BEHAVIOUR, "scripts": [SCRIPT, ...]}``.
* ``PUT /emulator/scenario`` with a BEHAVIOUR: sets the default; answers like ``GET``.
* ``POST /emulator/scripts`` with a BEHAVIOUR plus ``"count"`` (default 1) and ``"cnpj"``
  and/or ``"service"``: queues ``count`` answers; 201 with ``{"scripts": [SCRIPT, ...]}``.
* ``DELETE /emulator/scripts``: forgets every script (the default stays).
* ``GET /emulator/requests``: ``{"requests": [REQUEST, ...]}``, oldest first, the last 1,000
  kept. Query: ``service=NAME``, ``since=SEQ`` (only ``seq > SEQ``), ``xml=1`` (adds ``payload``
  and ``answer``).
* ``GET /emulator/documents``: ``{"authorized": [...], "receipts": [...], "inutilized": [...]}``.
* ``GET|PUT /emulator/clock``: ``{"offset_seconds": 90000.0, "now": "2026-...-03:00"}``; ``PUT``
  takes ``{"offset_seconds": N}``.
* ``GET|PUT /emulator/settings``: ``{"cancel_window_seconds": 86400, "average_seconds": 1}``;
  ``PUT`` takes either or both.
* ``POST /emulator/reset``: forgets documents, scripts, requests, the clock offset and settings;
  the default scenario returns to the one the emulator started with.

Shapes: BEHAVIOUR is ``{"scenario": "authorize|async|throttle|unavailable|slow|timeout|
server_error|lost_answer", "delay": s, "polls": n, "status": 108|109, "lost": "drop|http_502"}``
(every key but ``scenario`` optional); SCRIPT is ``{"cnpj": ..., "service": ..., "pending":
[BEHAVIOUR, ...]}``; REQUEST is ``{"seq", "received_at", "path", "service", "cnpj", "keys",
"scenario", "outcome", "http_status", "cStat", "document_cStats"}`` (see
:class:`~.state.ReceivedRequest`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import tornado.web

from ..soap import SERVICES
from .scenarios import Behaviour, ScenarioBook, ScenarioInvalid
from .state import EmulatorState, sefaz_time

#: The longest clock offset and cancellation window accepted: ten years.
MAX_SECONDS = 10 * 366 * 86400.0


class AdminError(Exception):
    """A bad admin request; answered ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def admin_routes(state: EmulatorState) -> list[Any]:
    """The admin routes over ``state``, for :func:`~.app.make_emulator_app`."""
    handlers: list[tuple[str, type[AdminHandler]]] = [
        ("health", HealthHandler),
        ("scenario", ScenarioHandler),
        ("scripts", ScriptsHandler),
        ("requests", RequestsHandler),
        ("documents", DocumentsHandler),
        ("clock", ClockHandler),
        ("settings", SettingsHandler),
        ("reset", ResetHandler),
    ]
    return [(f"/emulator/{name}", handler, {"state": state}) for name, handler in handlers]


class AdminHandler(tornado.web.RequestHandler):
    """Common JSON plumbing."""

    def initialize(self, state: EmulatorState) -> None:
        """Keep the emulator's state."""
        self.state = state

    def reply(self, data: Any, status: int = 200) -> None:
        """Answer ``data`` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, ensure_ascii=False))

    def body(self) -> dict[str, Any]:
        """The request's JSON object (an empty body is ``{}``)."""
        if not self.request.body.strip():
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError as exc:
            raise AdminError(f"the body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise AdminError("the body must be a JSON object")
        return data

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors as ``{"error": ...}``, with the admin error's own status."""
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, AdminError | ScenarioInvalid):
            status = error.status if isinstance(error, AdminError) else 400
            self.clear()
            self.reply({"error": str(error)}, status)
            return
        self.clear()
        self.reply({"error": self._reason or "internal error"}, status_code)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Admin mistakes are the caller's, not the emulator's: no traceback for them."""
        if not isinstance(value, AdminError | ScenarioInvalid):
            super().log_exception(typ, value, tb)


def _scenario_json(book: ScenarioBook) -> dict[str, Any]:
    return {"default": book.default.to_json(), "scripts": book.scripts()}


class HealthHandler(AdminHandler):
    """``GET /emulator/health``."""

    def get(self) -> None:
        """Alive, and where each service is."""
        self.reply({"status": "ok", "services": {name: s.path for name, s in SERVICES.items()}})


class ScenarioHandler(AdminHandler):
    """``GET|PUT /emulator/scenario``: the default behaviour."""

    def get(self) -> None:
        """The default and the pending scripts."""
        self.reply(_scenario_json(self.state.scenarios))

    def put(self) -> None:
        """Set the default behaviour."""
        data = self.body()
        for target in ("count", "cnpj", "service"):
            if target in data:
                raise AdminError(f"{target!r} belongs to POST /emulator/scripts, not to the default scenario")
        self.state.scenarios.default = Behaviour.from_json(data)
        self.reply(_scenario_json(self.state.scenarios))


class ScriptsHandler(AdminHandler):
    """``POST|DELETE /emulator/scripts``: the next answers for a CNPJ and/or a service."""

    def post(self) -> None:
        """Queue ``count`` answers of a behaviour."""
        data = self.body()
        behaviour = Behaviour.from_json(data)
        cnpj, service = data.get("cnpj"), data.get("service")
        if cnpj is not None and not isinstance(cnpj, str):
            raise AdminError("cnpj must be a string")
        self.state.scenarios.script(behaviour, data.get("count", 1), cnpj=cnpj, service=service)
        self.reply({"scripts": self.state.scenarios.scripts()}, 201)

    def delete(self) -> None:
        """Forget every script."""
        self.state.scenarios.clear(self.state.scenarios.default)
        self.reply({"scripts": []})


class RequestsHandler(AdminHandler):
    """``GET /emulator/requests``: what was received, and answered."""

    def get(self) -> None:
        """The kept requests, filtered by ``service`` and ``since``."""
        service = self.get_query_argument("service", None)
        since_text = self.get_query_argument("since", "0")
        if not since_text.isdigit():
            raise AdminError(f"since must be a request seq (an integer), got {since_text!r}")
        since = int(since_text)
        with_xml = self.get_query_argument("xml", "0") in ("1", "true", "yes")
        kept = [
            r.to_json(with_xml=with_xml)
            for r in self.state.history
            if r.seq > since and (service is None or r.service == service)
        ]
        self.reply({"requests": kept})


class DocumentsHandler(AdminHandler):
    """``GET /emulator/documents``: authorised NF-e, receipts, inutilised ranges."""

    def get(self) -> None:
        """Everything the emulated SEFAZ holds."""
        self.reply(self.state.documents_json())


def _seconds(data: dict[str, Any], name: str, low: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= MAX_SECONDS:
        raise AdminError(f"{name} must be a number from {low:g} to {MAX_SECONDS:g}, got {value!r}")
    return float(value)


class ClockHandler(AdminHandler):
    """``GET|PUT /emulator/clock``: the offset of the emulator's clock."""

    def get(self) -> None:
        """The offset and the emulator's time."""
        offset = self.state.clock_offset.total_seconds()
        self.reply({"offset_seconds": offset, "now": sefaz_time(self.state.now())})

    def put(self) -> None:
        """Set the offset (seconds, may be negative)."""
        offset = _seconds(self.body(), "offset_seconds", -MAX_SECONDS)
        if offset is None:
            raise AdminError("offset_seconds is required")
        self.state.clock_offset = timedelta(seconds=offset)
        self.get()


class SettingsHandler(AdminHandler):
    """``GET|PUT /emulator/settings``: cancellation window and tMed."""

    def get(self) -> None:
        """The current settings."""
        window = self.state.cancel_window.total_seconds()
        self.reply({"cancel_window_seconds": window, "average_seconds": self.state.average_seconds})

    def put(self) -> None:
        """Change either setting."""
        data = self.body()
        unknown = set(data) - {"cancel_window_seconds", "average_seconds"}
        if unknown:
            raise AdminError(f"unknown setting(s) {sorted(unknown)}")
        window = _seconds(data, "cancel_window_seconds", 0)
        average = _seconds(data, "average_seconds", 0)
        if average is not None and (not average.is_integer() or average > 9999):
            raise AdminError("average_seconds is tMed: an integer from 0 to 9999")
        if window is not None:
            self.state.cancel_window = timedelta(seconds=window)
        if average is not None:
            self.state.average_seconds = int(average)
        self.get()


class ResetHandler(AdminHandler):
    """``POST /emulator/reset``."""

    def post(self) -> None:
        """Back to the state the emulator started in."""
        self.state.reset()
        self.reply({"reset": True})
