"""The console's handler base: the operator's session, the role a page needs, CSRF on every post."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlencode

from tornado.web import HTTPError, RequestHandler

from tornado_core.console.accounts import Accounts, Permission, allowed
from tornado_core.ports.operators import Operator
from tornado_core.web.console.context import ConsoleParts

_T = TypeVar("_T")

#: The session cookie: a random token, HttpOnly, SameSite=Strict, scoped to the console.
SESSION_COOKIE = "tornado_console"
#: Where the console lives.
PREFIX = "/console"
TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")

_SECURITY_HEADERS = {
    # Nothing is fetched from anywhere but the console itself; no page can be framed.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_VERBS = {"view": "view the console", "act": "act on jobs or releases", "administer": "manage operators"}


@functools.cache
def static_version() -> str:
    """A short digest of the console's static files, so browsers fetch them again after an upgrade."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.glob("*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def format_seconds(value: float | None) -> str:
    """A duration for a table cell: ``-``, ``850 ms``, ``12.3 s``, ``4.2 min``."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def format_percent(value: float | None) -> str:
    """A fraction (0..1) as a percentage, or ``-``."""
    return "-" if value is None else f"{100 * value:.1f}%"


def format_when(value: datetime | None) -> str:
    """A moment in UTC, to the second, or ``-``."""
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class ConsoleHandler(RequestHandler):
    """A console page: only a signed-in operator whose role allows :attr:`permission` gets it.

    A request without a live session (a tenant's bearer token is no session) is sent to the
    sign-in page (GET) or refused 401 (anything else); a role that does not allow the page is
    refused 403; a POST whose ``_csrf`` field does not match the session is refused 403.
    """

    #: What GET needs; POST needs :attr:`act_permission`.
    permission: ClassVar[Permission] = Permission.VIEW
    act_permission: ClassVar[Permission] = Permission.ACT

    def initialize(self, console: ConsoleParts) -> None:
        """Keep the console's parts."""
        self.console = console
        self.operator: Operator | None = None
        self.session_token: str | None = None

    def set_default_headers(self) -> None:
        """Security headers on every answer, refusals included."""
        for name, value in _SECURITY_HEADERS.items():
            self.set_header(name, value)

    def get_template_path(self) -> str:
        """The console's own templates."""
        return str(TEMPLATES)

    @property
    def accounts(self) -> Accounts:
        """Operators, sessions and the audit log."""
        return self.console.accounts

    async def blocking(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a blocking call (a store, a queue) on the console's executor."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.console.executor, functools.partial(func, *args, **kwargs))

    async def prepare(self) -> None:
        """Find the operator; refuse a missing session, a role too low, or a post without CSRF."""
        token = self.get_cookie(SESSION_COOKIE)
        if token:
            self.operator = await self.blocking(self.accounts.session, token)
            self.session_token = token if self.operator else None
        if self.operator is None:
            self._refuse_anonymous()
            return
        needed = self.permission if self.request.method in ("GET", "HEAD") else self.act_permission
        if not allowed(self.operator.role, needed):
            raise HTTPError(
                403, reason=f"the {self.operator.role} role cannot {_VERBS.get(str(needed), 'do this')}"
            )
        if self.request.method not in ("GET", "HEAD"):
            given = self.get_body_argument("_csrf", None)
            if not Accounts.csrf_ok(self.session_token or "", given):
                raise HTTPError(403, reason="the form did not come from this console session (CSRF check)")

    def _refuse_anonymous(self) -> None:
        if self.request.method in ("GET", "HEAD"):
            self.redirect(f"{PREFIX}/login?" + urlencode({"next": self.request.uri or PREFIX}))
            return
        raise HTTPError(401, reason="sign in to the console first")

    def can(self, permission: Permission) -> bool:
        """Whether the signed-in operator may do this (pages hide what they may not)."""
        return self.operator is not None and allowed(self.operator.role, permission)

    def get_template_namespace(self) -> dict[str, Any]:
        """What every template sees: the operator, the CSRF field, the permissions, links."""
        namespace = super().get_template_namespace()
        token = self.session_token or ""
        namespace.update(
            operator=self.operator,
            csrf=Accounts.csrf_token(token) if token else "",
            can_act=self.can(Permission.ACT),
            can_administer=self.can(Permission.ADMINISTER),
            prefix=PREFIX,
            static=lambda name: f"{PREFIX}/static/{name}?v={static_version()}",
            query=lambda **kw: urlencode({k: v for k, v in kw.items() if v not in (None, "")}),
            page_title="",
            seconds=format_seconds,
            percent=format_percent,
            when=format_when,
        )
        return namespace

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """An error page in the console's layout, never a traceback."""
        reason = self._reason or "something went wrong"
        if status_code >= 500:
            reason = "the console could not complete this request; the server log has the details"
        self.render("error.html", status=status_code, reason=reason, page_title=f"{status_code}")

    def audit(self, action: str, target: str | None = None, **detail: Any) -> Any:
        """Record an action of the signed-in operator in the audit log (blocking: use :meth:`blocking`)."""
        actor = self.operator.name if self.operator else "anonymous"
        return self.accounts.record(actor, action, target, detail)

    def actor(self) -> str:
        """The signed-in operator's name (for actions that record who did them)."""
        assert self.operator is not None  # prepare() refused anyone else
        return self.operator.name

    def form(self, name: str, default: str | None = None) -> str | None:
        """A form field, stripped; ``default`` when absent or empty."""
        return _stripped(self.get_body_argument(name, None)) or default

    def arg(self, name: str, default: str | None = None) -> str | None:
        """A query-string argument, stripped; ``default`` when absent or empty."""
        return _stripped(self.get_query_argument(name, None)) or default


def _stripped(value: str | None) -> str | None:
    return value.strip() if value is not None else None


class StaticHandler(RequestHandler):
    """The console's own CSS and script (vendored: nothing comes from the internet)."""

    def set_default_headers(self) -> None:
        """Static files may be cached: their URLs carry their digest."""
        self.set_header("X-Content-Type-Options", "nosniff")

    def get(self, name: str) -> None:
        """One file of ``static/``, or 404."""
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise HTTPError(404)
        kinds = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
        self.set_header(
            "Content-Type", kinds.get(path.suffix, "application/octet-stream") + "; charset=utf-8"
        )
        self.set_header("Cache-Control", "public, max-age=86400")
        self.write(path.read_bytes())
