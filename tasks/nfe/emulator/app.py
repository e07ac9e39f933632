"""The emulator's tornado application: one SOAP 1.2 route per service, and the admin JSON API.

Services answer on ``/ws/<service lowercased>.asmx`` (SEFAZ-SP's paths, e.g.
``/ws/nfeautorizacao4.asmx``), ``POST`` only, ``Content-Type: application/soap+xml``. An
envelope that cannot be read, a SOAP action or body of another service, or another content
type is answered with a SOAP Fault ``Sender`` (HTTP 400, or 415 for the content type); those
requests are still logged. The admin API lives under ``/emulator/`` (see :mod:`.admin`).

Every handler runs on the IOLoop; the waits of ``slow`` and ``timeout`` are asyncio sleeps, so
one held request never delays another. The document checks (XSD, signature) run inline: they
take milliseconds for a lote, and keeping them on the loop thread keeps the state single-threaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import MappingProxyType
from typing import Any

import tornado.web

from ..soap import SERVICES, SoapError, action_of, fault, parse_xml, unwrap_request, wrap_result
from . import codes, facts
from .admin import admin_routes
from .answers import verdict
from .base import Context, Outcome, refuse
from .checks import Checks
from .scenarios import Behaviour, Scenario
from .services import process
from .state import MAX_KEPT_XML, EmulatorState, ReceivedRequest

LOG = logging.getLogger(__name__)
SOAP_CONTENT_TYPE = "application/soap+xml; charset=utf-8"
#: The largest request body the emulator's server reads (a lote above 500 KB is answered 214).
MAX_BODY = 5 * 1024 * 1024
_BY_PATH = MappingProxyType({service.name.lower(): service for service in SERVICES.values()})


def make_emulator_app(state: EmulatorState, checks: Checks | None = None) -> tornado.web.Application:
    """The emulator's application, over ``state`` (which the caller keeps, e.g. to inspect it).

    Args:
        state: What the emulator remembers; reset through the admin API or :meth:`~.EmulatorState.reset`.
        checks: The document checks; the project's XSD and signature checks by default.
    """
    emulator = {"state": state, "checks": checks or Checks()}
    routes: list[Any] = [(r"/ws/([A-Za-z0-9]+)\.asmx", ServiceHandler, emulator), *admin_routes(state)]
    return tornado.web.Application(routes)


class ServiceHandler(tornado.web.RequestHandler):
    """One NF-e web service: unwrap, pick the behaviour, answer (or not)."""

    def initialize(self, state: EmulatorState, checks: Checks) -> None:
        """Keep the emulator's state and checks (tornado calls this per request)."""
        self.state = state
        self.checks = checks
        self.closed = asyncio.Event()
        self.record: ReceivedRequest | None = None

    def on_connection_close(self) -> None:
        """The client went away: stop holding its request."""
        self.closed.set()

    def get(self, name: str) -> None:
        """Services take POST only (as SEFAZ's .asmx do for SOAP 1.2)."""
        self._plain(405 if name.lower() in _BY_PATH else 404)

    async def post(self, name: str) -> None:
        """Answer one SOAP request according to the next behaviour for it."""
        service = _BY_PATH.get(name.lower())
        if service is None:
            self._plain(404)
            return
        record = self.record = self.state.receive(self.request.path)
        record.service = service.name
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.lower().startswith("application/soap+xml"):
            self._fault(
                415, "Sender", f"Content-Type must be application/soap+xml (SOAP 1.2), got {content_type!r}"
            )
            return
        action = action_of(content_type)
        if action is not None and action != service.action:
            self._fault(400, "Sender", f"SOAP action {action!r} is not {service.action!r}")
            return
        try:
            named, payload = unwrap_request(self.request.body)
            root = parse_xml(payload)
        except SoapError as exc:
            self._fault(400, "Sender", str(exc))
            return
        if named != service.name:
            self._fault(400, "Sender", f"the envelope is for {named}, this endpoint is {service.name}")
            return
        record.payload = payload[:MAX_KEPT_XML]
        record.cnpj, record.keys = facts.about(service.name, root, self.state)
        behaviour = self.state.scenarios.next_for(service.name, record.cnpj)
        record.scenario = behaviour.scenario.value
        try:
            await self._behave(service.name, root, payload, behaviour)
        except Exception as exc:  # the emulator's own bug: say so in a SOAP Fault, not an HTML page
            LOG.exception("emulator failed on %s", service.name)
            self._fault(500, "Receiver", f"emulator error: {type(exc).__name__}: {exc}")

    async def _behave(self, service: str, root: Any, payload: bytes, behaviour: Behaviour) -> None:
        scenario = behaviour.scenario
        if scenario is Scenario.TIMEOUT:
            await self._hold(behaviour.delay)
            self._drop()
            return
        if scenario is Scenario.SERVER_ERROR:
            self._fault(500, "Receiver", "Erro interno do servidor (emulado)")
            return
        if scenario is Scenario.THROTTLE:
            self._answer(service, refuse(service, root, self.state, verdict(codes.THROTTLED)))
            return
        if scenario is Scenario.UNAVAILABLE:
            self._answer(service, refuse(service, root, self.state, verdict(behaviour.status)))
            return
        if scenario is Scenario.SLOW:
            await asyncio.sleep(behaviour.delay)
        context = Context(state=self.state, checks=self.checks, behaviour=behaviour)
        outcome = process(service, root, payload, context)
        if scenario is Scenario.LOST_ANSWER:
            self._keep(outcome)
            if behaviour.lost == "http_502":
                self._plain(502)
            else:
                self._drop()
            return
        self._answer(service, outcome)

    async def _hold(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the client disconnects first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), timeout=seconds)

    # --- answers -----------------------------------------------------------------------------------

    def _keep(self, outcome: Outcome) -> None:
        if self.record is not None:
            self.record.cstat = str(outcome.cstat)
            self.record.document_cstats = [str(c) for c in outcome.document_cstats]
            self.record.answer = outcome.answer[:MAX_KEPT_XML]

    def _answer(self, service: str, outcome: Outcome) -> None:
        self._keep(outcome)
        self._send(200, "answered", wrap_result(service, outcome.answer), SOAP_CONTENT_TYPE)

    def _fault(self, status: int, code: str, reason: str) -> None:
        self._send(status, "fault", fault(code, reason), SOAP_CONTENT_TYPE)

    def _plain(self, status: int) -> None:
        reason = {404: "Not Found", 405: "Method Not Allowed", 502: "Bad Gateway"}[status]
        outcome = "http_502" if status == 502 else "refused"
        page = f"<html><body><h1>{status} {reason}</h1></body></html>".encode()
        self._send(status, outcome, page, "text/html")

    def _send(self, status: int, outcome: str, body: bytes, content_type: str) -> None:
        if self.record is not None:
            self.record.outcome = "abandoned" if self.closed.is_set() else outcome
            self.record.http_status = status
        self.set_status(status)
        self.set_header("Content-Type", content_type)
        self.finish(body)

    def _drop(self) -> None:
        """Close the connection without a byte of answer."""
        if self.record is not None:
            self.record.outcome = "dropped"
        connection: Any = self.request.connection  # an HTTP1Connection; the interface has no close()
        connection.close()
        # tornado still finishes the handler; writes to a closed stream are discarded, and the
        # access log shows nginx's "no response" status instead of a 200 nobody received.
        self.set_status(444, "No Response")
