"""Operator commands: dead-letter queues."""

from __future__ import annotations

import click

from tornado_core.commands import command_services
from tornado_core.naming import dead_letter_name, queue_name
from tornado_core.services import Services
from tornado_core.worker.dead_letters import DeadLetterQueue


def _dead_letter_queue(services: Services, task: str, version: str | None) -> DeadLetterQueue:
    spec = services.registry.get(task, version)
    source = queue_name(services.settings.queue_prefix, spec.name, spec.version)
    return DeadLetterQueue(
        services.queue, services.jobs, dead_letter_name=dead_letter_name(source), source_name=source
    )


task_option = click.option("--task", required=True, help="Task name, e.g. demo.fail.")
version_option = click.option("--version", default=None, help="Task version (default: newest installed).")


@click.group()
def dlq() -> None:
    """Inspect, redrive or discard dead-lettered jobs."""


@dlq.command("list")
@task_option
@version_option
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
def dlq_list(task: str, version: str | None, limit: int) -> None:
    """List dead letters (they stay in the queue)."""
    with command_services() as services:
        letters = _dead_letter_queue(services, task, version).peek(limit)
    for letter in letters:
        click.echo(f"{letter.job_id or '?':<36} {letter.task or '?':<20} tenant={letter.tenant or '?'}")
    click.echo(f"{len(letters)} dead letter(s)", err=True)


@dlq.command("redrive")
@task_option
@version_option
@click.option("--limit", default=None, type=click.IntRange(1), help="At most this many (default: all).")
def dlq_redrive(task: str, version: str | None, limit: int | None) -> None:
    """Move dead letters back to their work queue for another round of attempts."""
    with command_services() as services:
        moved = _dead_letter_queue(services, task, version).redrive(limit)
    click.echo(f"redrove {moved} job(s)")


@dlq.command("discard")
@task_option
@version_option
@click.option("--limit", default=None, type=click.IntRange(1), help="At most this many (default: all).")
@click.confirmation_option(prompt="Delete these dead letters for good?")
def dlq_discard(task: str, version: str | None, limit: int | None) -> None:
    """Delete dead letters for good (their jobs become failed)."""
    with command_services() as services:
        dropped = _dead_letter_queue(services, task, version).discard(limit)
    click.echo(f"discarded {dropped} job(s)")
