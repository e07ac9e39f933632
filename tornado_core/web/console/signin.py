"""Signing in to the console and out of it: the session cookie, and CSRF on the sign-in form itself."""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from tornado.web import HTTPError

from tornado_core.web.console.base import PREFIX, SESSION_COOKIE, ConsoleHandler

#: The sign-in form's own CSRF token (double-submitted: cookie and field must match).
LOGIN_COOKIE = "tornado_console_login"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only, never another site."""
    if not target:
        return PREFIX
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX) or target.startswith("//"):
        return PREFIX
    return target


class SignInHandler(ConsoleHandler):
    """``/console/login``: the form, and the check of a name and password."""

    async def prepare(self) -> None:
        """Anyone may see the sign-in page; the post is checked against the form's own token."""
        if self.request.method == "POST":
            cookie = self.get_cookie(LOGIN_COOKIE) or ""
            given = self.get_body_argument("_csrf", "") or ""
            if not cookie or not hmac.compare_digest(cookie, given):
                raise HTTPError(403, reason="the sign-in form expired or did not come from this console")

    def _form(self, *, error: str = "", name: str = "", status: int = 200) -> None:
        token = secrets.token_urlsafe(24)
        self.set_cookie(
            LOGIN_COOKIE, token, path=f"{PREFIX}/login", httponly=True, samesite="Strict",
            secure=self._secure(),
        )  # fmt: skip
        self.set_status(status)
        self.render(
            "login.html", login_csrf=token, error=error, name=name,
            next_url=safe_next(self.get_argument("next", None)), page_title="Sign in",
        )  # fmt: skip

    def _secure(self) -> bool:
        return self.console.secure_cookies or self.request.protocol == "https"

    def get(self) -> None:
        """The sign-in form."""
        self._form()

    async def post(self) -> None:
        """Check the password; open a session and go on, or show the form again."""
        name = (self.get_body_argument("name", "") or "").strip()
        password = self.get_body_argument("password", "") or ""
        source = self.request.remote_ip or "?"
        signed_in = await self.blocking(self.accounts.sign_in, name, password, source=source)
        if signed_in is None:
            self._form(error="Wrong name or password, or the account is disabled.", name=name, status=401)
            return
        self.clear_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
        self.set_cookie(
            SESSION_COOKIE, signed_in.token, path=PREFIX, httponly=True, samesite="Strict",
            secure=self._secure(), expires=signed_in.expires_at,
        )  # fmt: skip
        self.redirect(safe_next(self.get_body_argument("next", None)), status=303)

    def get_template_namespace(self) -> dict[str, Any]:
        """The sign-in page has no operator yet."""
        namespace = super().get_template_namespace()
        namespace.update(csrf="")
        return namespace


class SignOutHandler(ConsoleHandler):
    """``POST /console/logout``: end the session (any role may)."""

    act_permission = ConsoleHandler.permission

    async def post(self) -> None:
        """Close the session, forget the cookie, back to the sign-in page."""
        if self.session_token:
            await self.blocking(self.accounts.sign_out, self.session_token, actor=self.actor())
        self.clear_cookie(SESSION_COOKIE, path=PREFIX)
        self.redirect(f"{PREFIX}/login", status=303)
