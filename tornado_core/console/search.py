"""Job search for the console: any filter over every tenant's jobs, newest first, and how many match."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tornado_core.console.filters import JobFilter
from tornado_core.errors import FilterInvalid
from tornado_core.ports.console_jobs import JobSearchPort
from tornado_core.ports.jobs import JobPage

if TYPE_CHECKING:
    from tornado_core.console.bulk import BulkActions
    from tornado_core.console.dead_letters import DeadLetterBrowser
    from tornado_core.console.job_detail import JobDetails

#: Most rows one page of a search holds.
MAX_PAGE = 500
#: Longest cursor a search takes back (a job id).
MAX_CURSOR = 200
#: Default bound of a count: beyond it the console says "100,000+".
COUNT_CAP = 100_000


class JobSearch:
    """Searches the whole job store (every tenant) for the console.

    Args:
        port: The job store's search.
    """

    def __init__(self, port: JobSearchPort) -> None:
        self._port = port

    def search(self, job_filter: JobFilter, *, limit: int = 50, cursor: str | None = None) -> JobPage:
        """One page of the matching jobs, newest first; pass ``next_cursor`` back for the next one.

        Raises:
            FilterInvalid: ``limit`` or ``cursor`` is out of bounds (fields ``limit``, ``cursor``).
        """
        if not 1 <= limit <= MAX_PAGE:
            raise FilterInvalid("limit", f"between 1 and {MAX_PAGE}")
        if cursor is not None and len(cursor) > MAX_CURSOR:
            raise FilterInvalid("cursor", "not a cursor of this search")
        return self._port.search(job_filter, limit=limit, cursor=cursor or None)

    def count(self, job_filter: JobFilter, *, cap: int = COUNT_CAP) -> tuple[int, bool]:
        """How many jobs match, counting at most ``cap``; the flag says there are more."""
        return self._port.count(job_filter, cap=max(cap, 0))


@dataclass(frozen=True)
class ConsoleJobs:
    """The console's job tools, built together by ``bootstrap.console.build_console_jobs``.

    Attributes:
        search: Job search over the whole store.
        details: One job with its payload, links and timeline.
        bulk: Actions over every job a filter matches, run server-side in batches.
        dead_letters: Dead-letter queues, looked at without consuming them.
    """

    search: JobSearch
    details: JobDetails
    bulk: BulkActions
    dead_letters: DeadLetterBrowser
