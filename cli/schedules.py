"""``tornado schedules`` (periodic schedules, for operators) and ``tornado scheduler`` (fires them)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from tornado_core.commands import reported_errors, stop_on_signals
from tornado_core.errors import ConfigError
from tornado_core.ports.schedules import MissedPolicy, Schedule

if TYPE_CHECKING:
    from tornado_core.scheduling.book import ScheduleBook
    from tornado_core.services import Services

_log = logging.getLogger("tornado.scheduler")

tenant_option = click.option("--tenant", required=True, help="The tenant whose schedule it is.")


@contextmanager
def _book() -> Iterator[ScheduleBook]:
    from tornado_cli.main import _services_with

    from tornado_core.bootstrap import build_routing, build_submitter
    from tornado_core.scheduling.book import ScheduleBook

    with _services_with(()) as services:
        routing, close = build_routing(services, wait=2.0)
        try:
            yield ScheduleBook(_schedules_of(services), build_submitter(services, routing))
        finally:
            close()


def _schedules_of(services: Services) -> Any:
    if services.schedules is None:
        raise ConfigError("these services keep no schedules")
    return services.schedules


def _show(schedule: Schedule) -> str:
    state = "paused" if schedule.paused else f"next {schedule.next_run_at.astimezone(UTC).isoformat()}"
    return (
        f"{schedule.tenant}/{schedule.name}: {schedule.task} at '{schedule.cron}' {schedule.timezone}"
        f" (missed: {schedule.missed}; {state})"
    )


@click.group()
def schedules() -> None:
    """Periodic schedules: one job of a task per cron occurrence, in a time zone."""


@schedules.command("list")
@click.option("--tenant", default=None, help="Only this tenant's (default: every tenant's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_schedules(tenant: str | None, as_json: bool) -> None:
    """List schedules, by tenant and name."""
    with _book() as book:
        found = book.list(tenant)
    if as_json:
        click.echo(json.dumps([{"tenant": s.tenant, **s.to_json()} for s in found], indent=2))
        return
    for schedule in found:
        click.echo(_show(schedule))
    if not found:
        click.echo("no schedules")


@schedules.command("add")
@click.argument("name")
@click.argument("task")
@click.argument("payload", default="{}")
@tenant_option
@click.option("--cron", required=True, help="Five fields (m h dom mon dow), or six with seconds first.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone, e.g. America/Sao_Paulo.")
@click.option(
    "--missed",
    type=click.Choice([m.value for m in MissedPolicy]),
    default="skip",
    show_default=True,
    help="Occurrences missed while no scheduler ran: skipped, or each run (catch_up).",
)
@click.option("--replace", is_flag=True, help="Replace the tenant's schedule of that name if it exists.")
def add(
    name: str, task: str, payload: str, tenant: str, cron: str, timezone: str, missed: str, replace: bool
) -> None:
    """Create schedule NAME queueing TASK with a JSON PAYLOAD at every occurrence."""
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise click.UsageError(f"PAYLOAD is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise click.UsageError("PAYLOAD must be a JSON object")
    with _book() as book:
        stored = book.add(
            tenant=tenant, name=name, task=task, payload=data, cron=cron, timezone=timezone,
            missed=MissedPolicy(missed), replace=replace,
        )  # fmt: skip
    click.echo(_show(stored))


def _change(verb: str, action: Callable[[ScheduleBook], Callable[[str, str], Any]]) -> click.Command:
    @click.argument("name")
    @tenant_option
    def command(name: str, tenant: str) -> None:
        with _book() as book:
            changed = action(book)(tenant, name)
        click.echo(_show(changed) if isinstance(changed, Schedule) else f"{tenant}/{name}: removed")

    command.__doc__ = f"{verb.capitalize()} the tenant's schedule NAME."
    return schedules.command(verb)(command)


_change("pause", lambda book: book.pause)
_change("resume", lambda book: book.resume)
_change("remove", lambda book: book.remove)


@click.command()
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.05, 60), help="Seconds.")
@click.option("--once", is_flag=True, help="One pass, then exit (to run from cron).")
@click.option("--clock-offset", default=0.0, type=float, hidden=True, help="Seconds ahead of the real clock.")
def scheduler(interval: float, once: bool, clock_offset: float) -> None:
    """Queue parked jobs when due, fire periodic schedules (installing those tasks declare for every
    tenant) and advance workflows, until SIGTERM (run one or more)."""
    from tornado_cli.main import _services_with

    from tornado_core.bootstrap import build_routing, build_submitter
    from tornado_core.producer.direct import DirectSubmitter
    from tornado_core.scheduling.book import ScheduleBook
    from tornado_core.scheduling.declared import DeclaredSchedules
    from tornado_core.scheduling.scheduler import Scheduler
    from tornado_core.workflows.advancer import WorkflowAdvancer

    def clock() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=clock_offset)

    with _services_with(()) as services:
        routing, close = build_routing(services, wait=2.0)
        try:
            submitter = build_submitter(services, routing)
            direct = DirectSubmitter(services, submitter)
            schedules = _schedules_of(services)
            book = ScheduleBook(schedules, submitter, clock=clock)
            passes = [DeclaredSchedules(services.registry, services.tenants, schedules, book).run_due]
            if services.workflows is not None:
                passes.append(WorkflowAdvancer(services, services.workflows, direct=direct).tick)
            runner = Scheduler(services, schedules, direct=direct, clock=clock, passes=passes)
            with reported_errors():
                if once:
                    report = runner.tick()
                    click.echo(f"{report.released} parked jobs queued, {report.fired} schedules fired")
                    return
                stop = stop_on_signals(_log)
                click.echo("Tornado scheduler running", err=True)
                runner.run(stop, interval=interval)
        finally:
            close()
