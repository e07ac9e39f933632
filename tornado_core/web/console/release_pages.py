"""A task's page: its versions, routes and release history, and the release actions with confirmation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from tornado.web import HTTPError

from tornado_core.errors import TornadoError
from tornado_core.releases.manager import ReleaseManager
from tornado_core.web.console.base import PREFIX, ConsoleHandler

_log = logging.getLogger(__name__)

#: Seconds a drain or rollback started from the console may wait for the version's queue to empty.
WAIT_LIMIT = 600.0


@dataclass(frozen=True)
class ReleaseAction:
    """One release action the console offers: its question, and whether it waits on a queue."""

    title: str
    question: str
    waits: bool = False


ACTIONS = {
    "promote": ReleaseAction("Promote", "Route every new job of {task} (pinned tenants aside) to {version}?"),
    "ramp": ReleaseAction("Ramp", "Send {percent}% of new jobs of {task} to {version}?"),
    "pin": ReleaseAction("Pin a tenant", "Route every new job of tenant {tenant} for {task} to {version}?"),
    "unpin": ReleaseAction(
        "Unpin a tenant", "Route tenant {tenant}'s jobs for {task} like everyone's again?"
    ),
    "rollback": ReleaseAction(
        "Roll back", "Route {task} back from {version} and move its queued jobs to the version before?", True
    ),
    "drain": ReleaseAction(
        "Drain", "Wait until {version} of {task} has no job left, then stop its workers?", True
    ),
}

#: The audit log's actions of releases: started, and how the waiting ones ended.
_AUDITED = [f"release.{name}{end}" for name in ACTIONS for end in ("", ".done", ".failed")]


def _percent(raw: str | None) -> int:
    try:
        value = int(raw or "")
    except ValueError:
        raise HTTPError(400, reason="percent: a whole number from 0 to 100") from None
    if not 0 <= value <= 100:
        raise HTTPError(400, reason="percent: a whole number from 0 to 100")
    return value


def _operation(manager: ReleaseManager, action: str, task: str, fields: dict[str, str]) -> Callable[[], Any]:
    version, tenant = fields.get("version", ""), fields.get("tenant", "")
    operations: dict[str, Callable[[], Any]] = {
        "promote": lambda: manager.promote(task, version),
        "ramp": lambda: manager.ramp(task, version, _percent(fields.get("percent"))),
        "pin": lambda: manager.pin(task, tenant, version),
        "unpin": lambda: manager.pin(task, tenant, None),
        "rollback": lambda: manager.rollback(task, version=version or None, timeout=WAIT_LIMIT),
        "drain": lambda: manager.drain(task, version, timeout=WAIT_LIMIT),
    }
    return operations[action]


class TaskPage(ConsoleHandler):
    """A page about one task: installed here, or known to the release store (released elsewhere)."""

    async def require_known(self, task: str) -> None:
        """404 for a task neither installed nor ever released."""
        if self.console.services.registry.knows(task):
            return
        if not await self.blocking(self.console.releases.store.releases, task):
            raise HTTPError(404, reason=f"no task named {task!r}")


class TaskHandler(TaskPage):
    """``/console/tasks/{task}``: versions with their health, routes, the release history."""

    async def get(self, task: str) -> None:
        """The task's page."""
        await self.require_known(task)
        try:
            versions = await self.blocking(self.console.releases.status, task)
            problem = None
        except TornadoError as exc:
            versions, problem = [], str(exc)
        route = await self.blocking(self.console.releases.store.route, task)
        events = await self.blocking(self.console.releases.store.events, task, limit=30)
        audit = await self.blocking(self.accounts.audit_entries, limit=20, actions=_AUDITED)
        self.render(
            "task.html", task=task, versions=versions, route=route, events=events, problem=problem,
            audit=[entry for entry in audit if (entry.target or "").startswith(f"{task} ")],
            notice=self.arg("notice"), page_title=task,
        )  # fmt: skip


class ReleaseActionHandler(TaskPage):
    """``/console/tasks/{task}/release``: asks first (GET), then acts (POST, ``confirmed=yes``).

    Quick actions (promote, ramp, pin) are done before the answer; a drain or a rollback waits on
    the version's queue, so it runs in the background and the task's page shows how it ended.
    """

    def _fields(self, source: Callable[[str], str | None]) -> tuple[str, dict[str, str]]:
        action = source("action") or ""
        if action not in ACTIONS:
            raise HTTPError(400, reason=f"action: one of {', '.join(ACTIONS)}")
        fields = {name: source(name) or "" for name in ("version", "percent", "tenant")}
        if action != "rollback" and not fields["version"] and action != "unpin":
            raise HTTPError(400, reason="version: which version to act on")
        if action in ("pin", "unpin") and not fields["tenant"]:
            raise HTTPError(400, reason="tenant: which tenant to pin or unpin")
        if action == "ramp":
            _percent(fields["percent"])
        return action, fields

    async def get(self, task: str) -> None:
        """The confirmation page (needs the right to act, since it only leads to acting)."""
        if not self.can(self.act_permission):
            raise HTTPError(403, reason=f"the {self.operator.role if self.operator else '?'} role cannot act")
        action, fields = self._fields(self.arg)
        self._confirm(task, action, fields)

    def _confirm(self, task: str, action: str, fields: dict[str, str]) -> None:
        described = ACTIONS[action]
        question = described.question.format(
            task=task, **{k: v or "the ramping or current one" for k, v in fields.items()}
        )
        background = "It runs in the background; the task's page shows how it ends."
        self.render(
            "confirm.html", title=f"{described.title}: {task}", question=question,
            warning=background if described.waits else "",
            action_url=f"{PREFIX}/tasks/{task}/release", fields=[("action", action), *fields.items()],
            button=described.title, back_url=f"{PREFIX}/tasks/{task}", page_title=described.title,
        )  # fmt: skip

    async def post(self, task: str) -> None:
        """Do the action, recording it in the audit log; the task's page says how it went."""
        await self.require_known(task)
        action, fields = self._fields(self.form)
        if self.form("confirmed") != "yes":
            self._confirm(task, action, fields)
            return
        operation = _operation(self.console.releases, action, task, fields)
        target = f"{task} {fields['version'] or '-'}"
        detail = {k: v for k, v in fields.items() if v}
        await self.blocking(self.audit, f"release.{action}", target, **detail)
        if ACTIONS[action].waits:
            self.console.executor.submit(self._in_background, operation, action, target, detail)
            notice = f"{ACTIONS[action].title} started; this page shows when it ends."
        else:
            try:
                await self.blocking(operation)
                notice = f"{ACTIONS[action].title} done."
            except TornadoError as exc:
                await self.blocking(self.audit, f"release.{action}.failed", target, error=str(exc), **detail)
                notice = f"{ACTIONS[action].title} refused: {exc}"
        self.redirect(f"{PREFIX}/tasks/{task}?" + urlencode({"notice": notice}), status=303)

    def _in_background(
        self, operation: Callable[[], Any], action: str, target: str, detail: dict[str, str]
    ) -> None:
        try:
            operation()
        except Exception as exc:  # recorded for the operator; the console keeps serving
            _log.warning("console %s of %s failed: %s", action, target, exc)
            self.audit(f"release.{action}.failed", target, error=str(exc), **detail)
            return
        self.audit(f"release.{action}.done", target, **detail)
