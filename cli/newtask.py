"""``tornado newtask``: a new task project from an archetype, ready to test and release."""

from __future__ import annotations

from pathlib import Path

import click

from tornado_core.toolchain.scaffold import ScaffoldError, plan_project, write_project


@click.command()
@click.argument("name")
@click.option(
    "--archetype",
    default="worker",
    show_default=True,
    help="Project template: worker (one job, one ERP document), batch (records in chunks) or "
    "file-report (a file in S3).",
)
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to create (must not exist) [default: ./<project-name>].",
)
@click.option("--dry-run", is_flag=True, help="List the files that would be written; write nothing.")
def newtask(name: str, archetype: str, dest: Path | None, dry_run: bool) -> None:
    """Create a task project NAME (e.g. nfe.cancel) with tests, Dockerfile and Jenkinsfile.

    NAME is a dotted lower-case task name such as nfe.cancel (or the project
    name nfe-cancel): two or more parts of a-z, 0-9 and _, each starting with a
    letter. The project gets its own git repository and first commit; its tests
    pass at once against the local stack, and `tornado pipeline run --local`
    releases it.
    """
    try:
        plan = plan_project(name, archetype, dest)
        if dry_run:
            click.echo(f"would create {plan.destination} ({plan.names.task}, {archetype} archetype):")
            for item in plan.files:
                click.echo(f"  {item.path}")
            return
        folder = write_project(plan)
    except ScaffoldError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Created {folder}: task {plan.names.task} ({archetype} archetype), {len(plan.files)} files")
    click.echo("Next:")
    click.echo(f"  cd {folder}")
    click.echo("  python -m pytest                 # the task's tests, against the local stack")
    click.echo("  tornado pipeline run --local     # test, build, deploy and promote it on this machine")
