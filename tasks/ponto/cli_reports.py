"""How the ``verify-*`` commands end: the test-certificate rule, warnings, problems, exit status."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # the commands import the verifiers only when they run
    from .verify import FileReport


def refuse_test_certificate(report: FileReport, required: bool) -> None:
    """With ``--require-icp-brasil``, a test (not ICP-Brasil) certificate is one of the file's problems."""
    if required and report.test_certificate:
        report.add(0, f"signature: the certificate is not ICP-Brasil ({report.test_certificate})")


def echo_verdict(report: FileReport, kind: str) -> None:
    """Print the warnings and problems, then ``OK``.

    Raises:
        click.ClickException: The file has problems (exit status 1).
    """
    for warning in report.warnings:
        click.echo(f"  WARNING {warning}")
    for problem in report.problems:
        click.echo(f"  PROBLEM {problem}", err=True)
    if not report.ok:
        raise click.ClickException(f"{len(report.problems)} problem(s): the {kind} does not verify")
    click.echo("  OK")
