"""Composition root: settings -> adapters. The only package that picks them.

Adapters are imported here lazily, so that a process only loads the
technologies its settings name. The console's parts are built in :mod:`.console`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tornado_core.errors import ConfigError, ReleaseError, RuntimeFailure
from tornado_core.job_ids import JobIds
from tornado_core.naming import intake_queue_spec, queue_spec
from tornado_core.ports.database import DatabasePort
from tornado_core.ports.queue import QueuePort
from tornado_core.ports.runtime import RuntimePort
from tornado_core.ports.webhooks import WebhookStorePort
from tornado_core.producer.submission import Submitter, VersionResolver
from tornado_core.registry import TaskRegistry
from tornado_core.routing import Router
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.versions import NewestVersions, VersionCatalog

if TYPE_CHECKING:
    from tornado_core.adapters.postgres import PostgresPool
    from tornado_core.observability.tracing import Tracing
    from tornado_core.releases.manager import ReleaseManager

#: Runtimes by name: (module, class). Each class takes ``(settings, ...)``.
RUNTIMES: dict[str, tuple[str, str]] = {
    "process": ("tornado_core.adapters.runtimes.process.runtime", "ProcessRuntime"),
    "docker": ("tornado_core.adapters.runtimes.docker.runtime", "DockerRuntime"),
    "ecs": ("tornado_core.adapters.runtimes.ecs.runtime", "EcsRuntime"),
    "lambda": ("tornado_core.adapters.runtimes.lambda_.runtime", "LambdaRuntime"),
}


@dataclass
class _Closers:
    callbacks: list[Callable[[], None]] = field(default_factory=list)

    def add(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)

    def close(self) -> None:
        for callback in reversed(self.callbacks):
            callback()


def build_services(
    settings: Settings, *, registry: TaskRegistry | None = None, pool_size: int = 16
) -> tuple[Services, Callable[[], None]]:
    """Wire the adapters the settings name.

    Args:
        settings: Loaded settings.
        registry: Known tasks; defaults to the ``tornado.tasks`` entry points.
        pool_size: Largest number of PostgreSQL connections per pool.

    Returns:
        The services and a function that closes their connections.
    """
    from tornado_core.adapters.aws.clients import make_client
    from tornado_core.adapters.aws.s3 import S3ObjectStore
    from tornado_core.adapters.postgres import (
        PostgresJobStore,
        PostgresLimiter,
        PostgresQueueAndJobs,
        PostgresTenantStore,
    )
    from tornado_core.adapters.postgres.limits import PostgresRateLimiter
    from tornado_core.adapters.postgres.schedules import PostgresSchedules
    from tornado_core.adapters.postgres.workflows import PostgresWorkflows

    closers = _Closers()
    tracing = build_tracing(settings)
    if tracing is not None:
        closers.add(tracing.close)  # closed last: the spans of the stop itself are exported too
    pool = _pool(
        settings.database_url, pool_size, closers, prepare_statements=settings.database_prepared_statements
    )
    rds: DatabasePort = (
        pool if not settings.erp_database_url else _pool(settings.erp_database_url, pool_size, closers)
    )
    redshift = _pool(settings.redshift_url, 4, closers) if settings.redshift_url else None
    s3 = make_client(
        "s3", region=settings.aws_region, endpoint_url=settings.aws_endpoint_url,
        read_timeout=settings.request_deadline,
    )  # fmt: skip
    queue = _queue(settings, pool, closers)
    limiter = PostgresLimiter(settings.database_url)
    closers.add(limiter.close)
    services = Services(
        settings=settings,
        registry=registry if registry is not None else TaskRegistry.from_entry_points(),
        queue=queue,
        objects=S3ObjectStore(s3, settings.bucket),
        jobs=PostgresJobStore(pool),
        schedules=PostgresSchedules(pool),
        workflows=PostgresWorkflows(pool),
        rates=PostgresRateLimiter(pool),
        limiter=limiter,
        tenants=PostgresTenantStore(pool),
        rds=rds,
        redshift=redshift,
        job_ids=JobIds(settings.secret_key),
        # The PostgreSQL queue shares the job store's pool: a success and its delete commit together.
        queue_and_jobs=PostgresQueueAndJobs(pool) if settings.queue_backend == "postgres" else None,
        tracing=tracing,
    )
    return services, closers.close


def build_tracing(settings: Settings) -> Tracing | None:
    """The process's traces, exported by OTLP/HTTP to ``settings.traces_endpoint``.

    Returns:
        ``None`` when no endpoint is configured: then no exporter exists and OpenTelemetry is not
        even imported.
    """
    endpoint = settings.traces_endpoint
    if endpoint is None:
        return None
    from tornado_core.observability.tracing import Tracing

    return Tracing.otlp(endpoint, service_name=settings.otel_service_name)


def _pool(dsn: str, size: int, closers: _Closers, *, prepare_statements: bool = True) -> PostgresPool:
    from tornado_core.adapters.postgres import PostgresPool

    pool = PostgresPool(dsn, min_size=0, max_size=size, prepare_statements=prepare_statements)
    closers.add(pool.close)
    return pool


def _queue(settings: Settings, pool: PostgresPool, closers: _Closers) -> QueuePort:
    if settings.queue_backend == "celery":
        from tornado_core.bootstrap.celery import build_celery_queue

        return build_celery_queue(settings, closers.add)
    if settings.queue_backend == "sqs":
        from tornado_core.adapters.aws.clients import make_client
        from tornado_core.adapters.aws.sqs import SqsQueue

        # Sends, deletes and visibility changes answer within the request deadline; long polls
        # (receives) wait up to 20 s, on a client of their own.
        region, endpoint = settings.aws_region, settings.aws_endpoint_url
        return SqsQueue(
            make_client("sqs", region=region, endpoint_url=endpoint, read_timeout=settings.request_deadline),
            poll_client=make_client("sqs", region=region, endpoint_url=endpoint),
        )
    from tornado_core.adapters.postgres import PostgresQueue

    queue = PostgresQueue(pool)
    closers.add(queue.close)  # its LISTEN thread and connection; closed before the pool (reverse order)
    return queue


@contextmanager
def services_from(settings: Settings, *, registry: TaskRegistry | None = None) -> Iterator[Services]:
    """``with services_from(settings) as services:`` builds and closes them."""
    services, close = build_services(settings, registry=registry)
    try:
        yield services
    finally:
        close()


def provision_queues(services: Services) -> list[str]:
    """Create the queue and DLQ of every registered task version (and on the Celery engine the
    intake's, which Celery apps send to before any intake may run); returns their names."""
    prefix = services.settings.queue_prefix
    specs = [queue_spec(prefix, spec) for spec in services.registry]
    if services.settings.queue_backend == "celery":
        specs.append(intake_queue_spec(prefix))
    for qspec in specs:
        services.queue.ensure_queue(qspec)
    return [qspec.name for qspec in specs]


def migrate(settings: Settings) -> list[str]:
    """Apply pending SQL migrations to the job-store database; returns their names."""
    from tornado_core.adapters.postgres import PostgresPool
    from tornado_core.adapters.postgres.migrations import apply_migrations

    pool = PostgresPool(settings.database_url, min_size=0, max_size=1)
    try:
        return apply_migrations(pool)
    finally:
        pool.close()


def task_registry(modules: Sequence[str] = ()) -> TaskRegistry:
    """The ``tornado.tasks`` entry points plus the tasks of ``modules`` (dotted module paths).

    Raises:
        ConfigError: A module cannot be imported, or declares a task wrongly (no version, say).
    """
    registry = TaskRegistry.from_entry_points()
    for module in modules:
        try:
            registry.register_module(importlib.import_module(module))
        except (ImportError, ValueError) as exc:
            raise ConfigError(f"tasks module {module!r}: {exc}") from exc
    return registry


@dataclass(frozen=True)
class Routing:
    """Version routing for producers: the resolver and the registered versions it may pick."""

    resolve: VersionResolver
    catalog: VersionCatalog


def build_routing(services: Services, *, wait: float = 5.0) -> tuple[Routing, Callable[[], None]]:
    """A route cache on the job-store database, kept fresh by LISTEN/NOTIFY.

    Args:
        services: The process's services (settings and registry).
        wait: Seconds to wait for the first load (PostgreSQL down: routing starts
            with the newest registered versions and catches up).

    Returns:
        The routing and a function that stops its thread and closes its connections.
    """
    from tornado_core.adapters.postgres import PostgresPool
    from tornado_core.adapters.postgres.routes import PostgresRouteCache

    pool = PostgresPool(services.settings.database_url, min_size=0, max_size=2)
    cache = PostgresRouteCache(pool)
    cache.start(wait=wait)
    router = Router(cache.route, NewestVersions(services.registry, cache))

    def close() -> None:
        cache.close()
        pool.close()

    return Routing(resolve=router, catalog=cache), close


def build_submitter(services: Services, routing: Routing) -> Submitter:
    """A routed :class:`Submitter` for in-process producers (the API builds its own the same way)."""
    return Submitter.for_services(services, resolve_version=routing.resolve, catalog=routing.catalog)


def build_runtime(
    name: str, settings: Settings, *, state_dir: Path, registry: TaskRegistry | None = None
) -> RuntimePort:
    """The worker runtime called ``name`` (``process``, ``docker``, ``ecs``, ``lambda``), imported on demand.

    Args:
        name: Runtime name.
        settings: Settings handed to the workers.
        state_dir: Where the process runtime keeps its pidfiles and logs.
        registry: Tasks with code here (the lambda runtime reads a task's global cap from it).

    Raises:
        ReleaseError: Unknown runtime name.
        RuntimeFailure: The runtime is not available in this installation.
    """
    if name not in RUNTIMES:
        raise ReleaseError(f"unknown runtime {name!r} (choose from {', '.join(RUNTIMES)})")
    module_name, class_name = RUNTIMES[name]
    try:
        runtime_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise RuntimeFailure(f"runtime {name!r} is not available in this installation: {exc}") from exc
    if name == "process":
        return runtime_class(settings, state_dir=state_dir)  # type: ignore[no-any-return]
    if name == "lambda":
        return runtime_class(settings, registry=registry)  # type: ignore[no-any-return]
    return runtime_class(settings)  # type: ignore[no-any-return]


def build_release_manager(
    services: Services, *, state_dir: Path
) -> tuple[ReleaseManager, Callable[[], None]]:
    """The release operations on the job-store database, with runtimes built on demand.

    Args:
        services: The process's services.
        state_dir: The process runtime's state folder (``.tornado/runtime``).

    Returns:
        The manager and a function that closes its connections.
    """
    from tornado_core.adapters.postgres import PostgresPool
    from tornado_core.adapters.postgres.releases import PostgresReleaseStore
    from tornado_core.releases.manager import ReleaseManager

    pool = PostgresPool(services.settings.database_url, min_size=0, max_size=2)
    store = PostgresReleaseStore(pool)
    manager = ReleaseManager(
        services,
        store,
        lambda name: build_runtime(name, services.settings, state_dir=state_dir, registry=services.registry),
    )
    return manager, pool.close


def build_webhook_store(settings: Settings, *, pool_size: int = 4) -> WebhookStorePort:
    """The webhook store on the job-store database (its ``close`` releases its connections).

    Args:
        settings: Loaded settings (``database_url``).
        pool_size: Largest number of PostgreSQL connections (a dispatcher needs about
            its concurrency, as each attempt records its outcome).
    """
    from tornado_core.adapters.postgres import PostgresPool
    from tornado_core.adapters.postgres.webhooks import PostgresWebhookStore

    pool = PostgresPool(settings.database_url, min_size=0, max_size=pool_size)
    return PostgresWebhookStore(pool, owns_pool=True)


# --- transactional enqueue (tornado_core/transactional) ----------------------------------------

if TYPE_CHECKING:
    from tornado_core.ports.transactional import OutboxStorePort
    from tornado_core.transactional import OutboxRelay, RelayOptions, TransactionalEnqueuer


def build_transactional_enqueuer(services: Services, routing: Routing) -> TransactionalEnqueuer:
    """Enqueue inside the caller's transaction, on the PostgreSQL queue of the caller's database.

    Raises:
        ConfigError: The queue backend is not PostgreSQL (use the outbox instead).
    """
    from tornado_core.adapters.postgres.in_transaction import PostgresCallerTransaction
    from tornado_core.errors import ConfigError
    from tornado_core.transactional import TransactionalEnqueuer
    from tornado_core.transactional.tenants import KnownTenants

    if services.settings.queue_backend != "postgres":
        raise ConfigError(
            f"enqueueing inside a transaction needs the PostgreSQL queue (TORNADO_QUEUE=postgres), not "
            f"{services.settings.queue_backend!r}: use the outbox (tornado_core.transactional.add_to_outbox)"
        )
    return TransactionalEnqueuer(
        submitter=build_submitter(services, routing),
        writes=PostgresCallerTransaction(),
        tenants=KnownTenants(services.tenants),
    )


def open_transactional_enqueuer(
    settings: Settings, *, registry: TaskRegistry | None = None
) -> tuple[TransactionalEnqueuer, Callable[[], None]]:
    """A :class:`TransactionalEnqueuer` on its own services and route cache, for an application process.

    Returns:
        The enqueuer (share it between threads) and a function that closes its connections.

    Raises:
        ConfigError: The queue backend is not PostgreSQL.
    """
    services, close_services = build_services(settings, registry=registry, pool_size=4)
    try:
        routing, close_routing = build_routing(services)
        enqueuer = build_transactional_enqueuer(services, routing)
    except BaseException:
        close_services()
        raise

    def close() -> None:
        close_routing()
        close_services()

    return enqueuer, close


def build_outbox(database_url: str) -> tuple[OutboxStorePort, Callable[[], None]]:
    """The outbox in the application's database (``tornado_outbox``), for its relay and operators.

    Returns:
        The store and a function that closes its connections.
    """
    from tornado_core.adapters.postgres import PostgresPool
    from tornado_core.adapters.postgres.outbox import PostgresOutbox

    pool = PostgresPool(database_url, min_size=0, max_size=2)
    outbox = PostgresOutbox(pool)

    def close() -> None:
        outbox.close()
        pool.close()

    return outbox, close


def build_outbox_relay(
    services: Services, routing: Routing, outbox: OutboxStorePort, options: RelayOptions | None = None
) -> OutboxRelay:
    """The relay from ``outbox`` to this process's queue, through the producer path (routing included)."""
    from tornado_core.producer.direct import JobSender
    from tornado_core.transactional import OutboxRelay
    from tornado_core.transactional.tenants import KnownTenants

    return OutboxRelay(
        outbox=outbox,
        submitter=build_submitter(services, routing),
        sender=JobSender(services),
        jobs=services.jobs,
        tenants=KnownTenants(services.tenants),
        options=options,
    )
