"""The dead-letter browser: each version's DLQ, one message inspected, redriven or purged."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from tornado.web import HTTPError

from tornado_core.web.console.base import PREFIX, ConsoleHandler

#: Dead letters listed per page (they are looked at without being consumed).
LIST_LIMIT = 100
_ONE_MESSAGE_ACTIONS = {
    "redrive": ("Redrive", "Send this dead letter back to its version's queue, to run again?"),
    "purge": ("Purge", "Delete this dead letter for good? Its job becomes failed."),
}


class DeadLettersHandler(ConsoleHandler):
    """``/console/dead-letters``: every version's DLQ size; the letters of one version."""

    async def get(self) -> None:
        """The DLQs, and the chosen version's letters with their jobs' errors."""
        task, version = self.arg("task"), self.arg("version")
        queues = await self.blocking(self.console.figures.queues)
        letters = None
        if task and version:
            self._known(task)
            letters = await self.blocking(self.console.dead_letters.list, task, version, limit=LIST_LIMIT)
        self.render(
            "dead_letters.html", queues=queues, task=task or "", version=version or "", letters=letters,
            limit=LIST_LIMIT, notice=self.arg("notice"), page_title="Dead letters",
        )  # fmt: skip

    def _known(self, task: str) -> None:
        if not self.console.services.registry.knows(task):
            raise HTTPError(404, reason=f"no task named {task!r}")


class DeadLetterHandler(DeadLettersHandler):
    """``/console/dead-letters/message``: one dead letter (GET); redrive or purge it (POST, confirmed)."""

    async def get(self) -> None:
        """The letter: its job, its error, its body."""
        task, version, message_id = self._ids(self.arg)
        letter = await self.blocking(self.console.dead_letters.inspect, task, version, message_id)
        if letter is None:
            raise HTTPError(404, reason="no such dead letter (redriven, purged, or never there)")
        self.render("dead_letter.html", letter=letter, task=task, version=version, page_title="Dead letter")

    def _ids(self, read: Callable[[str], str | None]) -> tuple[str, str, str]:
        """The letter's task, version and message id, from the query (GET) or the form (POST)."""
        names = ("task", "version", "message_id")
        values = [read(name) or "" for name in names]
        for name, value in zip(names, values, strict=True):
            if not value:
                raise HTTPError(400, reason=f"{name}: required")
        self._known(values[0])
        return values[0], values[1], values[2]

    async def post(self) -> None:
        """Redrive or purge one letter, after the confirmation page."""
        task, version, message_id = self._ids(self.form)
        action = self.form("action") or ""
        if action not in _ONE_MESSAGE_ACTIONS:
            raise HTTPError(400, reason="action: redrive or purge")
        title, question = _ONE_MESSAGE_ACTIONS[action]
        back = f"{PREFIX}/dead-letters?" + urlencode({"task": task, "version": version})
        if self.form("confirmed") != "yes":
            fields = [("task", task), ("version", version), ("message_id", message_id), ("action", action)]
            self.render(
                "confirm.html", title=f"{title} one dead letter", question=question, warning="",
                action_url=f"{PREFIX}/dead-letters/message", fields=fields, button=title, back_url=back,
                page_title=title,
            )  # fmt: skip
            return
        browser = self.console.dead_letters
        act = browser.redrive_one if action == "redrive" else browser.purge_one
        job_id = await self.blocking(act, task, version, message_id)
        if job_id is None:
            notice = "That dead letter is no longer in the queue: nothing was done."
        else:
            await self.blocking(self.audit, f"dead_letter.{action}", job_id, task=task, version=version)
            notice = f"{title} done for job {job_id}."
        self.redirect(back + "&" + urlencode({"notice": notice}), status=303)
