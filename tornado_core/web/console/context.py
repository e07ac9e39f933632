"""What the console's pages share: the console's services, built once per API process."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tornado_core.console.accounts import Accounts
    from tornado_core.console.bulk import BulkActions
    from tornado_core.console.dead_letters import DeadLetterBrowser
    from tornado_core.console.figures import ConsoleFigures
    from tornado_core.console.job_detail import JobDetails
    from tornado_core.console.search import JobSearch
    from tornado_core.releases.manager import ReleaseManager
    from tornado_core.services import Services


@dataclass(kw_only=True)
class ConsoleParts:
    """The console's services, built by the composition root (``bootstrap.console.build_console``).

    Attributes:
        services: The API process's services (the registry, the job store, the queue).
        accounts: Operators, sessions, CSRF tokens and the audit log.
        search: Job search over the whole store.
        details: One job with its payload, links and timeline.
        bulk: Actions over every job a filter matches, run server-side in batches.
        dead_letters: Dead-letter queues, looked at without consuming them.
        figures: Throughput, latency and error rates; queue counts now and over time.
        releases: The release operations (promote, ramp, pin, drain, rollback).
        executor: Runs the pages' blocking calls, and release actions that wait.
        secure_cookies: Mark the session cookie ``Secure`` even on plain HTTP (behind TLS
            termination); it is always ``Secure`` on HTTPS.
        close: Releases the parts' connections and threads.
    """

    services: Services
    accounts: Accounts
    search: JobSearch
    details: JobDetails
    bulk: BulkActions
    dead_letters: DeadLetterBrowser
    figures: ConsoleFigures
    releases: ReleaseManager
    executor: Executor
    secure_cookies: bool = False
    close: Callable[[], None] = field(default=lambda: None)
