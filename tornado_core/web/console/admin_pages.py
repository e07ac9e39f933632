"""The audit log (every role reads it) and operator accounts (admins only)."""

from __future__ import annotations

from urllib.parse import urlencode

from tornado.web import HTTPError

from tornado_core.console.accounts import Permission
from tornado_core.errors import OperatorExists, OperatorInvalid, OperatorNotFound
from tornado_core.ports.operators import Role
from tornado_core.web.console.base import PREFIX, ConsoleHandler

#: Audit entries per page.
AUDIT_PAGE = 100


class AuditHandler(ConsoleHandler):
    """``/console/audit``: who did what, newest first, by actor or action."""

    async def get(self) -> None:
        """A page of the audit log."""
        actor, action, before = self.arg("actor"), self.arg("action"), self.arg("before")
        if before is not None and not before.isdigit():
            raise HTTPError(400, reason="before: an entry number")
        entries = await self.blocking(
            self.accounts.audit_entries, limit=AUDIT_PAGE, actor=actor,
            actions=[action] if action else [], before_id=int(before) if before else None,
        )  # fmt: skip
        older = entries[-1].id if len(entries) == AUDIT_PAGE else None
        self.render(
            "audit.html",
            entries=entries,
            actor=actor or "",
            action=action or "",
            older=older,
            page_title="Audit log",
        )


class OperatorsHandler(ConsoleHandler):
    """``/console/operators``: accounts (GET), a new one (POST); admins only."""

    permission = Permission.ADMINISTER
    act_permission = Permission.ADMINISTER

    async def get(self) -> None:
        """Every account and the form for a new one."""
        await self._page()

    async def _page(self, *, error: str = "", status: int = 200) -> None:
        operators = await self.blocking(self.console.accounts.operators)
        self.set_status(status)
        self.render(
            "operators.html", operators=operators, roles=list(Role), error=error, notice=self.arg("notice"),
            page_title="Operators",
        )  # fmt: skip

    async def post(self) -> None:
        """Create an account; a bad name, role or password is shown on the form."""
        name, role, password = self.form("name") or "", self.form("role") or "", self.form("password") or ""
        try:
            await self.blocking(self.accounts.create_operator, name, Role(role), password, actor=self.actor())
        except ValueError:
            await self._page(error=f"role: one of {', '.join(Role)}", status=400)
            return
        except (OperatorInvalid, OperatorExists) as exc:
            await self._page(error=str(exc), status=400 if isinstance(exc, OperatorInvalid) else 409)
            return
        self.redirect(f"{PREFIX}/operators?" + urlencode({"notice": f"{name} can sign in now."}), status=303)


class OperatorHandler(OperatorsHandler):
    """``POST /console/operators/{name}``: change a role, disable or enable an account."""

    async def post(self, name: str) -> None:  # type: ignore[override]
        """Apply the change; the audit log records it."""
        change = self.form("change")
        try:
            if change == "role":
                role = Role(self.form("role") or "")
                await self.blocking(self.accounts.update_operator, name, actor=self.actor(), role=role)
            elif change in ("disable", "enable"):
                disabled = change == "disable"
                await self.blocking(
                    self.accounts.update_operator, name, actor=self.actor(), disabled=disabled
                )
            else:
                raise HTTPError(400, reason="change: role, disable or enable")
        except ValueError:
            raise HTTPError(400, reason=f"role: one of {', '.join(Role)}") from None
        except OperatorInvalid as exc:
            await self._page(error=f"{name}: {exc}", status=400)
            return
        except OperatorNotFound:
            raise HTTPError(404, reason=f"no operator named {name!r}") from None
        self.redirect(f"{PREFIX}/operators?" + urlencode({"notice": f"{name}: {change} done."}), status=303)
