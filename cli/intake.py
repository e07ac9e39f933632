"""``tornado intake``: Celery ``tornado.submit`` messages (Django's send_task, celery beat) become jobs."""

from __future__ import annotations

import logging

import click
from tornado_cli.main import tasks_module_option

from tornado_core.commands import load_settings, reported_errors, stop_on_signals

_log = logging.getLogger("tornado.intake")


@click.command()
@click.option(
    "--poll-wait", default=5.0, show_default=True, type=click.FloatRange(0, 20), help="Long-poll seconds."
)
@tasks_module_option
def intake(poll_wait: float, tasks_modules: tuple[str, ...]) -> None:
    """Submit every tornado.submit message on the Celery broker as a job, until SIGTERM.

    A Celery app sends app.send_task("tornado.submit", args=[task, payload], kwargs={"tenant":
    ...}, queue="<prefix>-submit"); each message becomes one job, routed and validated as the API
    would (docs/celery.md).
    """
    from tornado_core.bootstrap import build_routing, services_from, task_registry
    from tornado_core.bootstrap.intake import build_celery_intake
    from tornado_core.intake import IntakeOptions

    settings = load_settings()
    with reported_errors(), services_from(settings, registry=task_registry(tasks_modules)) as services:
        routing, close_routing = build_routing(services, wait=2.0)
        try:
            taker = build_celery_intake(services, routing, IntakeOptions(poll_wait=poll_wait))
            stop = stop_on_signals(_log)
            click.echo(f"Tornado intake reading {taker.queue_name} on the Celery broker", err=True)
            taker.run(stop)
        finally:
            close_routing()
