"""``tornado outbox``: the transactional outbox in an application's database (install, relay, status, retry).

An application adds rows with :func:`tornado_core.transactional.add_to_outbox` inside its own
transactions; ``tornado outbox relay`` turns every committed row into exactly one job, on any
queue backend (docs/transactional-enqueue.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click

from tornado_core.commands import load_settings, reported_errors, stop_on_signals
from tornado_core.ports.transactional import OutboxStatus, OutboxStorePort

_log = logging.getLogger("tornado.outbox")

database_option = click.option(
    "--database",
    "database_url",
    envvar="TORNADO_OUTBOX_DATABASE_URL",
    required=True,
    help="The application's database, which holds tornado_outbox (env TORNADO_OUTBOX_DATABASE_URL).",
)


@contextmanager
def _outbox(database_url: str) -> Iterator[OutboxStorePort]:
    from tornado_core.bootstrap import build_outbox

    with reported_errors():
        store, close = build_outbox(database_url)
        try:
            yield store
        finally:
            close()


@click.group()
def outbox() -> None:
    """The transactional outbox: jobs added in an application's transactions, queued after commit."""


@outbox.command("install")
@database_option
def outbox_install(database_url: str) -> None:
    """Create the tornado_outbox table in the application's database (idempotent)."""
    with _outbox(database_url) as store:
        created = store.install()
    click.echo("tornado_outbox created" if created else "tornado_outbox is already installed")


@outbox.command("relay")
@database_option
@click.option(
    "--batch-size", default=100, show_default=True, type=click.IntRange(1, 1000), help="Rows per claim."
)
@click.option(
    "--idle-wait",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01, 60),
    help="Longest wait for new rows when the outbox is empty (a commit wakes the relay at once).",
)
@click.option(
    "--tasks-module",
    "tasks_modules",
    multiple=True,
    envvar="TORNADO_TASKS_MODULES",
    help="Also load the tasks of this module (repeatable; env TORNADO_TASKS_MODULES, space-separated).",
)
def outbox_relay(
    database_url: str, batch_size: int, idle_wait: float, tasks_modules: tuple[str, ...]
) -> None:
    """Queue every committed outbox row as exactly one job, until SIGTERM."""
    from tornado_core.bootstrap import (
        build_outbox_relay,
        build_routing,
        provision_queues,
        services_from,
        task_registry,
    )
    from tornado_core.errors import TornadoError
    from tornado_core.transactional import RelayOptions

    settings = load_settings()
    registry = task_registry(tasks_modules)
    with (
        reported_errors(),
        services_from(settings, registry=registry) as services,
        _outbox(database_url) as store,
    ):
        try:
            provision_queues(services)
        except TornadoError as exc:  # the relay retries its batches until the queues exist
            _log.warning("could not create the task queues: %s", exc)
        routing, close_routing = build_routing(services, wait=2.0)
        try:
            relay = build_outbox_relay(
                services, routing, store, RelayOptions(batch_size=batch_size, idle_wait=idle_wait)
            )
            stop = stop_on_signals(_log)
            click.echo(f"Tornado outbox relay started ({settings.queue_backend} queue)", err=True)
            relay.run(stop)
        finally:
            close_routing()


@outbox.command("status")
@database_option
@click.option(
    "--failures", default=20, show_default=True, type=click.IntRange(0, 1000), help="Failed rows shown."
)
def outbox_status(database_url: str, failures: int) -> None:
    """Pending and failed rows, and why the most recent failed rows were refused."""
    with _outbox(database_url) as store:
        status = store.status(failures=failures)
    for line in _status_lines(status):
        click.echo(line)


def _status_lines(status: OutboxStatus) -> list[str]:
    age = f"{status.oldest_pending_age:.1f}s" if status.oldest_pending_age is not None else "-"
    lines = [f"pending: {status.pending}", f"failed: {status.failed}", f"oldest pending: {age}"]
    for row in status.failures:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row.failed_at))
        lines.append(f"row {row.row_id}\t{row.tenant}\t{row.task}\t{when}\t{row.error}")
    return lines


@outbox.command("retry")
@database_option
def outbox_retry(database_url: str) -> None:
    """Make the failed rows pending again (once the cause, e.g. a missing tenant or task, is fixed)."""
    with _outbox(database_url) as store:
        count = store.retry_failed()
    click.echo(f"{count} failed row(s) pending again")
