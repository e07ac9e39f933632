"""The console's part of the composition root: accounts, figures, job tools and the whole console.

Each public builder opens its own small pool (for a command or a test); :func:`build_console`
builds every part of the API's console on one shared pool.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.versions import newest_version

if TYPE_CHECKING:
    from tornado_core.adapters.postgres import PostgresPool
    from tornado_core.console.accounts import Accounts
    from tornado_core.console.bulk import BulkOptions
    from tornado_core.console.figures import ConsoleFigures
    from tornado_core.console.search import ConsoleJobs
    from tornado_core.web.console.context import ConsoleParts

#: Connections of the console's shared pool: two bulk actions, the pages, the sampler, the watch.
CONSOLE_POOL = 8
#: Threads running the console's blocking calls (and the release actions that wait).
CONSOLE_THREADS = 8


def _own_pool(database_url: str, size: int) -> PostgresPool:
    from tornado_core.adapters.postgres import PostgresPool

    return PostgresPool(database_url, min_size=0, max_size=size)


def accounts_on(pool: PostgresPool) -> Accounts:
    """Operator accounts, sessions and the audit log on ``pool``'s database."""
    from tornado_core.adapters.postgres.audit import PostgresAuditLog
    from tornado_core.adapters.postgres.operators import PostgresOperatorStore
    from tornado_core.console.accounts import Accounts

    return Accounts(PostgresOperatorStore(pool), PostgresAuditLog(pool))


def figures_on(pool: PostgresPool, services: Services) -> ConsoleFigures:
    """Throughput, latencies, error rates and queue samples on ``pool``'s database."""
    from tornado_core.adapters.postgres.insights import PostgresJobFigures
    from tornado_core.adapters.postgres.queue_samples import PostgresQueueSamples
    from tornado_core.console.figures import ConsoleFigures

    return ConsoleFigures(services, PostgresJobFigures(pool), PostgresQueueSamples(pool))


def jobs_on(
    pool: PostgresPool, services: Services, *, options: BulkOptions | None = None, watch: bool = True
) -> ConsoleJobs:
    """Job search, job detail, bulk actions and the dead-letter browser on ``pool``'s database.

    Bulk actions run in this process's threads; with ``watch`` it also adopts the actions of stopped
    processes. Dead letters are moved in SQL on the PostgreSQL queue, swept through the queue on SQS.
    Stop the bulk actions (``.bulk.close()``) before closing the pool.
    """
    from tornado_core.adapters.postgres.audit import PostgresAuditLog
    from tornado_core.adapters.postgres.bulk_actions import PostgresBulkActions
    from tornado_core.adapters.postgres.dead_letter_moves import PostgresDeadLetters
    from tornado_core.adapters.postgres.job_search import PostgresJobSearch
    from tornado_core.adapters.postgres.releases import PostgresReleaseStore
    from tornado_core.console.bulk import BulkActions
    from tornado_core.console.dead_letters import DeadLetterBrowser, DeadLetterRoutes, ScannedDeadLetters
    from tornado_core.console.job_detail import JobDetails
    from tornado_core.console.search import ConsoleJobs, JobSearch
    from tornado_core.errors import TaskNotFound
    from tornado_core.ports.console_jobs import DeadLetterStorePort

    settings = services.settings
    releases = PostgresReleaseStore(pool)

    def current_version(task: str) -> str | None:
        route = releases.route(task)
        if route is not None:
            return route.current
        try:
            return newest_version(services.registry, releases, task)
        except TaskNotFound:
            return None

    in_store = settings.queue_backend == "postgres"  # its dead letters are rows of this database
    letters: DeadLetterStorePort = (
        PostgresDeadLetters(pool) if in_store else ScannedDeadLetters(services.queue)
    )
    search = PostgresJobSearch(pool)
    routes = DeadLetterRoutes(settings.queue_prefix, current_version)
    bulk = BulkActions(
        store=PostgresBulkActions(pool), search=search, queue=services.queue, audit=PostgresAuditLog(pool),
        routes=routes, letters_in_store=in_store, options=options,
    )  # fmt: skip
    if watch:
        bulk.watch()
    details = JobDetails(
        jobs=services.jobs, search=search, letters=letters, objects=services.objects, routes=routes
    )
    return ConsoleJobs(JobSearch(search), details, bulk, DeadLetterBrowser(letters, search, routes))


def build_console_accounts(settings: Settings) -> tuple[Accounts, Callable[[], None]]:
    """Operator accounts, sessions and the audit log, on a pool of their own (``tornado operators``).

    Returns:
        The accounts service and a function that closes its connections.
    """
    pool = _own_pool(settings.database_url, 2)
    return accounts_on(pool), pool.close


def build_console_jobs(
    services: Services, *, options: BulkOptions | None = None, watch: bool = True
) -> tuple[ConsoleJobs, Callable[[], None]]:
    """The console's job tools (:func:`jobs_on`) on a pool of their own.

    Returns:
        The tools and a function that stops the bulk actions' threads (each gives its action back
        after its batch) and closes the connections.
    """
    pool = _own_pool(services.settings.database_url, 6)
    tools = jobs_on(pool, services, options=options, watch=watch)

    def close() -> None:
        tools.bulk.close()
        pool.close()

    return tools, close


def build_console(services: Services, *, state_dir: Path, sample: bool = True) -> ConsoleParts:
    """Every part of the API's operations console, on one pool; its queue sampler started.

    Args:
        services: The API process's services.
        state_dir: The process runtime's state folder (release actions find its workers there).
        sample: Sample the queues into PostgreSQL every 30 s (one process samples per turn).

    Returns:
        The parts; their ``close`` stops the sampler and the bulk actions and closes the connections.
    """
    from tornado_core.bootstrap import build_release_manager
    from tornado_core.console.sampler import QueueSampler
    from tornado_core.web.console.context import ConsoleParts

    pool = _own_pool(services.settings.database_url, CONSOLE_POOL)
    figures = figures_on(pool, services)
    jobs = jobs_on(pool, services)
    releases, close_releases = build_release_manager(services, state_dir=state_dir)
    sampler = QueueSampler(figures, figures.samples)
    executor = ThreadPoolExecutor(CONSOLE_THREADS, thread_name_prefix="tornado-console")
    if sample:
        sampler.start()

    def close() -> None:
        sampler.stop()
        jobs.bulk.close()
        executor.shutdown(wait=False, cancel_futures=True)
        close_releases()
        pool.close()

    return ConsoleParts(
        services=services, accounts=accounts_on(pool), search=jobs.search, details=jobs.details,
        bulk=jobs.bulk, dead_letters=jobs.dead_letters, figures=figures, releases=releases,
        executor=executor, secure_cookies=services.settings.console_secure_cookies, close=close,
    )  # fmt: skip
