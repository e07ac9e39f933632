"""``tornado sped``: SPED EFD ICMS/IPI files; ``validate FILE`` runs the structural validator.

Added to ``tornado`` through the commands door (entry point ``tornado.commands``). The exit
status is 0 for a valid file, 1 when it has problems, 2 when the file cannot be read (a usage
error, as click reports it).
"""

from __future__ import annotations

from pathlib import Path

import click

from .seed_cli import seed_erp_command

DEFAULT_MAX_PROBLEMS = 200


@click.group()
def sped() -> None:
    """SPED EFD ICMS/IPI: check a file before the PVA."""


@sped.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option(
    "--max-problems",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_PROBLEMS,
    show_default=True,
    help="Print at most this many problems, then how many more there are.",
)
@click.pass_context
def validate_command(ctx: click.Context, file: Path, max_problems: int) -> None:
    """Check FILE: encoding, layout, hierarchy, counts, check digits and totals.

    Each problem prints as ``line N, RECORD.FIELD: message``, then a summary line.
    """
    from .validator import validate_file

    try:
        report = validate_file(file, keep=max_problems)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {file}: {exc.strerror or exc}", param_hint="FILE") from None
    for problem in report.problems:
        click.echo(str(problem))
    rest = report.problem_count - len(report.problems)
    if rest:
        click.echo(f"... and {rest} more problem(s)")
    if report.ok:
        click.echo(f"{file.name}: valid, {report.line_count} lines")
        return
    click.echo(f"{file.name}: {report.problem_count} problem(s) in {report.line_count} lines")
    ctx.exit(1)


sped.add_command(seed_erp_command)
