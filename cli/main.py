"""``tornado``: run the API and workers, submit and inspect jobs, operate queues."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from tornado_core.commands import load_settings, reported_errors
from tornado_core.errors import TornadoError
from tornado_core.observability.logs import LOG_FORMATS, configure_logging
from tornado_core.plugins import COMMANDS_GROUP, Plugin, PluginError, discover
from tornado_core.services import Services
from tornado_core.settings import QUEUE_BACKENDS

if TYPE_CHECKING:
    from tornado_core.web.console.context import ConsoleParts
    from tornado_core.web.server import ApiParts


#: Commands defined in their own modules, imported only when used (a worker never loads the
#: release, image or scaffolding code, and ``tornado --help`` stays quick).
LAZY_COMMANDS = {
    "submit": "tornado_cli.jobs:submit",
    "jobs": "tornado_cli.jobs:jobs",
    "outbox": "tornado_cli.outbox:outbox",
    "intake": "tornado_cli.intake:intake",
    "dlq": "tornado_cli.operators:dlq",
    "tenants": "tornado_cli.tenants:tenants",
    "dev": "tornado_cli.dev:dev",
    "docker": "tornado_cli.images:docker_engine",
    "image": "tornado_cli.images:image",
    "newtask": "tornado_cli.newtask:newtask",
    "pipeline": "tornado_cli.pipeline:pipeline",
    "release": "tornado_cli.release:release",
    "supervise": "tornado_cli.release:supervise",
    "schedules": "tornado_cli.schedules:schedules",
    "scheduler": "tornado_cli.schedules:scheduler",
    "webhooks": "tornado_cli.webhooks:webhooks",
    "operators": "tornado_cli.operator_accounts:operators",
    "audit": "tornado_cli.operator_accounts:audit",
}


class LazyGroup(click.Group):
    """The ``tornado`` group: built-in commands load on first use, plugin commands come through
    the ``tornado.commands`` door (one entry point per command, named as the command)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, built-in and plugin, sorted."""
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS, *self._plugins()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module if it is a lazy or plugin one."""
        if cmd_name not in self.commands:
            if cmd_name in LAZY_COMMANDS:
                module_name, attribute = LAZY_COMMANDS[cmd_name].split(":")
                self.add_command(getattr(importlib.import_module(module_name), attribute), cmd_name)
            elif cmd_name in self._plugins():
                self.add_command(_plugin_command(self._plugins()[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)

    @staticmethod
    def _plugins() -> dict[str, Plugin]:
        """Installed plugin commands, by name (a built-in name wins over a plugin's)."""
        return {p.name: p for p in discover(COMMANDS_GROUP) if p.name not in LAZY_COMMANDS}


def _plugin_command(plugin: Plugin) -> click.Command:
    """The plugin's command, or a stand-in that reports why it cannot be loaded (exit 1)."""
    try:
        command = plugin.load()
    except PluginError as error:
        return _broken_command(plugin, str(error))
    if not isinstance(command, click.Command):
        kind = type(command).__name__
        return _broken_command(plugin, f"the {plugin.describe()} is a {kind}, not a click command")
    return command


def _broken_command(plugin: Plugin, reason: str) -> click.Command:
    def fail() -> None:
        raise click.ClickException(reason)

    return click.Command(
        plugin.name, callback=fail, help=f"(broken plugin from {plugin.package or plugin.target})",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )  # fmt: skip


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--log-level", default="INFO", show_default=True, envvar="TORNADO_LOG_LEVEL", help="Logging level."
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="auto",
    show_default=True,
    envvar="TORNADO_LOG_FORMAT",
    help="Log lines as JSON (one object per line) or text; auto: text in a terminal, JSON otherwise.",
)
def cli(log_level: str, log_format: str) -> None:
    """Tornado: heavy ERP background jobs off the request path."""
    configure_logging(log_format, log_level)
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


tasks_module_option = click.option(
    "--tasks-module",
    "tasks_modules",
    multiple=True,
    envvar="TORNADO_TASKS_MODULES",
    help="Also load the tasks of this module (repeatable; env TORNADO_TASKS_MODULES, space-separated).",
)


@contextmanager
def _services_with(tasks_modules: tuple[str, ...], *, engine: str | None = None) -> Iterator[Services]:
    """Like ``command_services``, with the tasks of extra modules besides the entry points, on
    ``engine`` (else TORNADO_QUEUE's)."""
    from tornado_core.bootstrap import services_from, task_registry

    settings = load_settings({"TORNADO_QUEUE": engine} if engine else None)
    with reported_errors(), services_from(settings, registry=task_registry(tasks_modules)) as services:
        yield services


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(0, 64),
    help="API processes sharing the port (0: one per CPU); HTTP parsing is CPU-bound.",
)
@click.option(
    "--console/--no-console",
    default=None,
    help="Serve the operations console at /console (default: TORNADO_CONSOLE, on).",
)
@tasks_module_option
def api(host: str, port: int, processes: int, console: bool | None, tasks_modules: tuple[str, ...]) -> None:
    """Serve the HTTP API (enqueue, status, health, OpenAPI) and the operations console."""
    from tornado_core.bootstrap import build_routing, provision_queues
    from tornado_core.web import serve

    with _services_with(tasks_modules) as services:
        try:
            provision_queues(services)
        except TornadoError as exc:  # start anyway: /readyz reports it, sends answer 503
            logging.getLogger("tornado.api").warning("could not create the task queues: %s", exc)
        click.echo(
            f"Tornado API listening on http://{host}:{port} ({processes or 'one per CPU'} process(es))",
            err=True,
        )
        with_console = services.settings.console if console is None else console
        if processes != 1:  # each process builds its own connections and route cache after the fork
            with reported_errors():
                factory = _api_parts_factory(tasks_modules, console=with_console)
                serve(factory, host=host, port=port, processes=processes)
            return
        routing, close_routing = build_routing(services, wait=2.0)
        try:
            serve(
                services, host=host, port=port, resolve_version=routing.resolve, catalog=routing.catalog,
                console=_console_of(services) if with_console else None,
            )  # fmt: skip
        finally:
            close_routing()


def _console_of(services: Services) -> ConsoleParts:
    """The operations console's parts for this API process (its release actions use the runtimes'
    state folder of ``tornado release``)."""
    from tornado_cli.release import runtime_state_dir

    from tornado_core.bootstrap.console import build_console

    return build_console(services, state_dir=runtime_state_dir())


def _api_parts_factory(tasks_modules: tuple[str, ...], *, console: bool) -> Callable[[], ApiParts]:
    from tornado_core.bootstrap import build_routing, build_services, task_registry
    from tornado_core.web.server import ApiParts

    settings = load_settings()

    def build() -> ApiParts:
        services, _close = build_services(settings, registry=task_registry(tasks_modules))
        routing, _close_routing = build_routing(services, wait=2.0)  # the process exit closes both
        return ApiParts(
            services, routing.resolve, routing.catalog, _console_of(services) if console else None
        )

    return build


@cli.command()
@click.option("--task", "task_name", required=True, help="Task to serve, e.g. demo.echo.")
@click.option("--version", "version", default=None, help="Task version (default: the newest installed).")
@click.option(
    "--concurrency", default=4, show_default=True, type=click.IntRange(1, 256), help="Jobs at once."
)
@click.option(
    "--grace-period", default=30.0, show_default=True, type=float, help="Seconds to finish on SIGTERM."
)
@click.option(
    "--poll-wait", default=5.0, show_default=True, type=click.FloatRange(0, 20), help="Long-poll seconds."
)
@click.option(
    "--health-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File touched at every poll (for liveness probes and readiness checks).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus /metrics on this port (default: TORNADO_METRICS_PORT; 0: off).",
)
@click.option(
    "--engine",
    type=click.Choice(QUEUE_BACKENDS),
    default=None,
    help="Queue engine (default: TORNADO_QUEUE, else postgres); celery: the Celery broker at "
    "TORNADO_BROKER_URL (redis:// or amqp://, docs/celery.md).",
)
@tasks_module_option
def worker(
    task_name: str,
    version: str | None,
    concurrency: int,
    grace_period: float,
    poll_wait: float,
    health_file: Path | None,
    metrics_port: int | None,
    engine: str | None,
    tasks_modules: tuple[str, ...],
) -> None:
    """Pull and run the jobs of one task version until SIGTERM."""
    from tornado_core.adapters.runtimes.ecs.protection import protection_from_env
    from tornado_core.observability.metrics import WorkerMetrics
    from tornado_core.observability.metrics_server import metrics_served
    from tornado_core.process_tuning import settle_long_running_process
    from tornado_core.worker.loop import Worker, WorkerOptions

    with _services_with(tasks_modules, engine=engine) as services:
        spec = services.registry.get(task_name, version)
        options = WorkerOptions(
            concurrency=concurrency, grace_period=grace_period, poll_wait=poll_wait, health_file=health_file,
            on_busy_change=protection_from_env(os.environ),  # ECS task scale-in protection, on ECS only
        )  # fmt: skip
        metrics = WorkerMetrics(spec.name, spec.version)
        runner = Worker(services, spec, options, metrics=metrics)

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            logging.getLogger("tornado.worker").info("%s: draining", signal.Signals(signum).name)
            runner.stop()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        settings = services.settings
        port = settings.metrics_port if metrics_port is None else metrics_port
        token = settings.metrics_token
        with metrics_served(metrics.registry, host=settings.metrics_host, port=port, token=token):
            settle_long_running_process()  # startup is over: tasks imported, services built
            runner.run()


@cli.command()
def migrate() -> None:
    """Apply pending database migrations to the job store."""
    from tornado_core.bootstrap import migrate as apply

    with reported_errors():
        applied = apply(load_settings())
    click.echo("applied: " + ", ".join(applied) if applied else "database is up to date")


@cli.command()
@click.option("--jobs", "job_count", default=300, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--queue",
    "queue_backend",
    type=click.Choice(["postgres", "sqs"]),
    default=None,
    help="Queue backend (default: TORNADO_QUEUE or postgres).",
)
def showcase(job_count: int, queue_backend: str | None) -> None:
    """Start the local stack, API and workers; submit jobs over HTTP; print a summary."""
    from tornado_cli.showcase import run_showcase

    with reported_errors():
        run_showcase(job_count=job_count, queue_backend=queue_backend)


def main() -> None:
    """Entry point of the ``tornado`` command."""
    cli(prog_name="tornado")


def newtask_shortcut() -> None:
    """Entry point of the ``newtask`` command (same as ``tornado newtask``)."""
    cli(prog_name="tornado", args=["newtask", *sys.argv[1:]])
