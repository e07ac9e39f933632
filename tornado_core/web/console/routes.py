"""The console's routes, served by the API process under ``/console``."""

from __future__ import annotations

from typing import Any

from tornado_core.web.console.admin_pages import AuditHandler, OperatorHandler, OperatorsHandler
from tornado_core.web.console.base import PREFIX, StaticHandler
from tornado_core.web.console.context import ConsoleParts
from tornado_core.web.console.dead_letter_pages import DeadLetterHandler, DeadLettersHandler
from tornado_core.web.console.job_pages import (
    BulkConfirmHandler,
    BulkListHandler,
    BulkProgressHandler,
    JobDetailHandler,
    JobSearchHandler,
)
from tornado_core.web.console.overview_pages import FiguresHandler, OverviewHandler, QueuesHandler
from tornado_core.web.console.release_pages import ReleaseActionHandler, TaskHandler
from tornado_core.web.console.signin import SignInHandler, SignOutHandler

#: Each page's path under the prefix, and its handler.
PAGES: list[tuple[str, Any]] = [
    (r"/?", OverviewHandler),
    (r"/login", SignInHandler),
    (r"/logout", SignOutHandler),
    (r"/queues", QueuesHandler),
    (r"/figures", FiguresHandler),
    (r"/tasks/([^/]+)", TaskHandler),
    (r"/tasks/([^/]+)/release", ReleaseActionHandler),
    (r"/jobs", JobSearchHandler),
    (r"/jobs/([^/]+)", JobDetailHandler),
    (r"/bulk", BulkListHandler),
    (r"/bulk/new", BulkConfirmHandler),
    (r"/bulk/(\d+)", BulkProgressHandler),
    (r"/dead-letters", DeadLettersHandler),
    (r"/dead-letters/message", DeadLetterHandler),
    (r"/audit", AuditHandler),
    (r"/operators", OperatorsHandler),
    (r"/operators/([^/]+)", OperatorHandler),
]


def console_routes(console: ConsoleParts) -> list[tuple[str, Any, dict[str, Any]]]:
    """The console's routes for the API's application (its static files need no session)."""
    args = {"console": console}
    return [
        (PREFIX + r"/static/([^/]+)", StaticHandler, {}),
        *((PREFIX + path, handler, args) for path, handler in PAGES),
    ]
