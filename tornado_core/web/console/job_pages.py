"""Jobs in the console: search over the whole store, one job's detail, bulk actions over a filter."""

from __future__ import annotations

from urllib.parse import urlencode

from tornado.web import HTTPError

from tornado_core.console.bulk import BulkActionKind
from tornado_core.console.filters import JobFilter
from tornado_core.errors import FilterInvalid
from tornado_core.ports.jobs import FINISHED_STATUSES, JobStatus
from tornado_core.web.console.base import PREFIX, ConsoleHandler

#: Rows per page of a search.
PAGE_SIZE = 50
#: What each bulk action does, as the confirmation page says it.
BULK_MEANINGS = {
    BulkActionKind.CANCEL: "cancel every matching waiting job, and ask the workers of running ones to stop",
    BulkActionKind.REDRIVE: "send every matching dead job from its version's DLQ back to its version's queue",
    BulkActionKind.RETRY: "run every matching dead job again on its task's current version",
    BulkActionKind.PURGE: "delete every matching dead job's message for good (the jobs become failed)",
}


def _query_args(handler: ConsoleHandler) -> dict[str, str]:
    """The request's query string as single values (the filter's fields)."""
    return {name: handler.get_query_argument(name) for name in handler.request.query_arguments}


def _filter_of(args: dict[str, str]) -> tuple[JobFilter, FilterInvalid | None]:
    try:
        return JobFilter.from_query(args), None
    except FilterInvalid as exc:
        return JobFilter(), exc


class JobSearchHandler(ConsoleHandler):
    """``/console/jobs``: every job matching a filter, newest first, with the bulk actions on all of them."""

    async def get(self) -> None:
        """The search form, a page of results, how many match in all."""
        args = _query_args(self)
        job_filter, problem = _filter_of(args)
        page = matched = None
        if problem is None:
            page = await self.blocking(
                self.console.search.search, job_filter, limit=PAGE_SIZE, cursor=self.arg("cursor")
            )
            matched = await self.blocking(self.console.search.count, job_filter)
        else:
            self.set_status(400)
        self.render(
            "jobs.html", args=args, job_filter=job_filter, problem=problem, page=page, matched=matched,
            statuses=list(JobStatus), actions=list(BulkActionKind), page_title="Jobs",
        )  # fmt: skip


class JobDetailHandler(ConsoleHandler):
    """``/console/jobs/{id}``: status, progress, attempts, timeline, error, payload and result.

    While the job is not finished the page marks itself live, and the console's script refreshes it.
    """

    async def get(self, job_id: str) -> None:
        """One job."""
        detail = await self.blocking(self.console.details.get, job_id)
        if detail is None:
            raise HTTPError(404, reason=f"no job {job_id}")
        live = detail.job.status not in FINISHED_STATUSES
        self.render("job.html", detail=detail, job=detail.job, live=live, page_title=f"Job {job_id[:12]}…")


class BulkListHandler(ConsoleHandler):
    """``/console/bulk``: recent bulk actions (GET); start one (POST, after its confirmation)."""

    async def get(self) -> None:
        """Recent bulk actions with their progress."""
        actions = await self.blocking(self.console.bulk.recent, 50)
        live = any(action.status == "running" for action in actions)
        self.render("bulk_list.html", actions=actions, live=live, page_title="Bulk actions")

    async def post(self) -> None:
        """Start the action over every job the filter matches; its progress page follows."""
        action = _action_of(self.form("action"))
        args = {name: value for name, value in self._filter_fields().items() if value}
        job_filter, problem = _filter_of(args)
        if problem is not None:
            raise HTTPError(400, reason=f"{problem.field}: {problem}")
        if self.form("confirmed") != "yes":
            await self._confirm(action, job_filter)
            return
        started = await self.blocking(self.console.bulk.start, action, job_filter, actor=self.actor())
        self.redirect(f"{PREFIX}/bulk/{started.id}", status=303)

    def _filter_fields(self) -> dict[str, str]:
        return {
            name: self.get_body_argument(name, "") or ""
            for name in self.request.body_arguments
            if name not in ("_csrf", "action", "confirmed")
        }

    async def _confirm(self, action: BulkActionKind, job_filter: JobFilter) -> None:
        matched, capped = await self.blocking(self.console.search.count, job_filter)
        fields = [("action", str(action)), *job_filter.to_query().items()]
        count = f"{matched:,}{'+' if capped else ''}"
        question = (
            f"This will {BULK_MEANINGS[action]}: {matched:,}{' or more' if capped else ''} jobs match "
            f"{job_filter.describe() or 'every job'}."
        )
        self.render(
            "confirm.html", title=f"Bulk {action}", button=f"{str(action).capitalize()} {count} jobs",
            question=question,
            warning="It runs on the server in batches, over every matching job, not only the rows on screen.",
            action_url=f"{PREFIX}/bulk", fields=fields, back_url=f"{PREFIX}/jobs?" + _encode(job_filter),
            page_title=f"Bulk {action}",
        )  # fmt: skip


class BulkConfirmHandler(BulkListHandler):
    """``/console/bulk/new?action=...&<filter>``: the confirmation page of a bulk action (GET)."""

    async def get(self) -> None:
        """Ask before acting, with the number of jobs that match."""
        if not self.can(self.act_permission):
            raise HTTPError(403, reason=f"the {self.operator.role if self.operator else '?'} role cannot act")
        action = _action_of(self.arg("action"))
        args = {k: v for k, v in _query_args(self).items() if k != "action"}
        job_filter, problem = _filter_of(args)
        if problem is not None:
            raise HTTPError(400, reason=f"{problem.field}: {problem}")
        await self._confirm(action, job_filter)


class BulkProgressHandler(ConsoleHandler):
    """``/console/bulk/{id}``: one bulk action's progress bar (live while it runs) and totals."""

    async def get(self, action_id: str) -> None:
        """The action's progress."""
        if not action_id.isdigit():
            raise HTTPError(404, reason="no such bulk action")
        action = await self.blocking(self.console.bulk.get, int(action_id))
        if action is None:
            raise HTTPError(404, reason="no such bulk action")
        self.render(
            "bulk.html", action=action, live=action.status == "running", page_title=f"Bulk action {action.id}"
        )


def _action_of(raw: str | None) -> BulkActionKind:
    try:
        return BulkActionKind(raw or "")
    except ValueError:
        names = ", ".join(str(kind) for kind in BulkActionKind)
        raise HTTPError(400, reason=f"action: one of {names}") from None


def _encode(job_filter: JobFilter) -> str:
    return urlencode(job_filter.to_query())
