"""``tornado webhooks``: tenants' completion-webhook endpoints, their deliveries, and the dispatcher."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click

from tornado_core.commands import load_settings, reported_errors
from tornado_core.ports.webhooks import Delivery, DeliveryStatus, RedeliverOutcome, WebhookStorePort
from tornado_core.webhooks.errors import WebhookUrlInvalid
from tornado_core.webhooks.registration import check_url, description_problem, new_secret

_log = logging.getLogger("tornado.webhooks")


@contextmanager
def _store() -> Iterator[WebhookStorePort]:
    """The webhook store of the configured database; Tornado errors become one line and exit 1."""
    from tornado_core.bootstrap import build_webhook_store

    settings = load_settings()
    with reported_errors():
        store = build_webhook_store(settings)
        try:
            yield store
        finally:
            store.close()


@click.group()
def webhooks() -> None:
    """Completion webhooks: endpoints, deliveries, the dead-letter list and the dispatcher."""


@webhooks.command("add")
@click.option("--tenant", required=True, help="The tenant whose finished jobs the endpoint hears of.")
@click.option("--description", default="", help="Free text shown in listings.")
@click.argument("url")
def add(tenant: str, description: str, url: str) -> None:
    """Register URL for TENANT; prints the endpoint id and its signing secret (shown once)."""
    try:
        check_url(url)
    except WebhookUrlInvalid as exc:
        raise click.BadParameter(exc.reason, param_hint="URL") from None
    problem = description_problem(description)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--description")
    secret = new_secret()
    with _store() as store:
        endpoint = store.add_endpoint(tenant=tenant, url=url, description=description, secret=secret)
    click.echo(f"{endpoint.endpoint_id}\t{secret}")
    click.echo("keep the secret: it signs every delivery and is not shown again", err=True)


@webhooks.command("list")
@click.option("--tenant", default=None, help="Only this tenant's endpoints.")
def list_endpoints(tenant: str | None) -> None:
    """List active endpoints: id, tenant, URL, secret prefix, description."""
    with _store() as store:
        endpoints = store.list_endpoints(tenant=tenant)
    for e in endpoints:
        click.echo(f"{e.endpoint_id}\t{e.tenant}\t{e.url}\t{e.secret_prefix}…\t{e.description}")


@webhooks.command("remove")
@click.argument("endpoint_id")
@click.option("--tenant", default=None, help="Refuse unless the endpoint is this tenant's.")
def remove(endpoint_id: str, tenant: str | None) -> None:
    """Remove endpoint ENDPOINT_ID; its pending deliveries end dead. Exits 1 if unknown."""
    with _store() as store:
        removed = store.remove_endpoint(endpoint_id, tenant=tenant)
    if not removed:
        raise click.ClickException(f"no webhook endpoint {endpoint_id!r}")
    click.echo(f"removed {endpoint_id}")


@webhooks.command("deliveries")
@click.option("--tenant", default=None, help="Only this tenant's deliveries.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in DeliveryStatus]),
    default=None,
    help="Only pending, delivered or dead (the dead-letter list).",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
def deliveries(tenant: str | None, status: str | None, limit: int) -> None:
    """List deliveries, newest first: id, status, event, job, attempts, last result, URL."""
    chosen = DeliveryStatus(status) if status else None
    with _store() as store:
        found = store.list_deliveries(tenant=tenant, status=chosen, limit=limit)
    for delivery in found:
        click.echo(_delivery_line(delivery))


def _delivery_line(d: Delivery) -> str:
    last = d.last_error or (f"HTTP {d.last_status_code}" if d.last_status_code else "-")
    return f"{d.delivery_id}\t{d.status}\t{d.event}\t{d.job_id}\tattempts={d.attempts}\t{last}\t{d.url}"


@webhooks.command("redeliver")
@click.argument("delivery_id")
@click.option("--tenant", default=None, help="Refuse unless the delivery is this tenant's.")
def redeliver(delivery_id: str, tenant: str | None) -> None:
    """Deliver a delivered or dead delivery again, under the same id. Exits 1 if it cannot be."""
    with _store() as store:
        outcome = store.redeliver(delivery_id, tenant=tenant)
    if outcome is RedeliverOutcome.UNKNOWN:
        raise click.ClickException(f"no webhook delivery {delivery_id!r}")
    if outcome is RedeliverOutcome.PENDING:
        raise click.ClickException(f"delivery {delivery_id} is still pending; nothing changed")
    if outcome is RedeliverOutcome.ENDPOINT_REMOVED:
        raise click.ClickException(f"the endpoint of delivery {delivery_id} was removed; nothing changed")
    click.echo(f"scheduled {delivery_id}")


@webhooks.command("deliver")
@click.option(
    "--concurrency", default=8, show_default=True, type=click.IntRange(1, 256), help="POSTs at once."
)
@click.option(
    "--attempts", default=8, show_default=True, type=click.IntRange(1, 100), help="Attempts before dead."
)
@click.option(
    "--backoff-base",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="Seconds before the second attempt; doubled for each further one (with jitter).",
)
@click.option(
    "--backoff-max", default=3600.0, show_default=True, type=click.FloatRange(0), help="Longest wait."
)
@click.option(
    "--timeout", default=10.0, show_default=True, type=click.FloatRange(0.1, 300), help="Seconds per POST."
)
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 60),
    help="Longest sleep between looks at the store (new deliveries wake it at once).",
)
def deliver(
    concurrency: int,
    attempts: int,
    backoff_base: float,
    backoff_max: float,
    timeout: float,
    poll_interval: float,
) -> None:
    """Run the dispatcher: POST due deliveries until SIGTERM (several may run at once)."""
    from tornado_core.webhooks.dispatcher import Dispatcher, DispatchOptions

    options = DispatchOptions(
        concurrency=concurrency, max_attempts=attempts, backoff_base=backoff_base, backoff_max=backoff_max,
        timeout=timeout, poll_interval=poll_interval,
    )  # fmt: skip
    with _store() as store:
        dispatcher = Dispatcher(store, options)

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            _log.info("%s: finishing the attempts under way", signal.Signals(signum).name)
            dispatcher.stop()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        _log.info("webhook dispatcher started (concurrency %d, %d attempts)", concurrency, attempts)
        dispatcher.run()
