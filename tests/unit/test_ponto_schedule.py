"""`tornado ponto schedule`: which --every values become a cron expression, which are refused (no I/O)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from tornado_tasks.ponto.cli import export_cron, ponto

from tornado_core.scheduling.occurrences import check_definition

#: An address nothing answers at: a command that reached the API here would fail differently.
NOWHERE = ("--api-url", "http://127.0.0.1:9", "--token", "tnd_unused")


@pytest.mark.parametrize(
    ("every", "cron"),
    [
        (10, "*/10 * * * * *"),
        (30, "*/30 * * * * *"),
        (60, "* * * * *"),
        (300, "*/5 * * * *"),
        (900, "*/15 * * * *"),
        (3600, "0 * * * *"),
        (7200, "0 */2 * * *"),
        (21_600, "0 */6 * * *"),
        (86_400, "0 0 * * *"),
    ],
)
def test_every_that_divides_a_minute_an_hour_or_a_day_becomes_a_cron_the_scheduler_accepts(
    every: int, cron: str
) -> None:
    assert export_cron(every) == cron
    check_definition("ponto-redshift-export", cron, "America/Sao_Paulo")


@pytest.mark.parametrize("every", [45, 90, 420, 5000, 36_000])
def test_every_that_no_cron_expression_repeats_evenly_is_refused(every: int) -> None:
    with pytest.raises(ValueError, match=f"--every {every} does not divide"):
        export_cron(every)


def test_the_command_refuses_such_an_every_before_calling_the_api() -> None:
    result = CliRunner().invoke(ponto, ["schedule", "--every", "90", *NOWHERE])
    assert result.exit_code == 2
    assert "--every 90 does not divide a minute, an hour or a day evenly" in result.output
    assert "--cron" in result.output


def test_cron_and_every_together_are_refused() -> None:
    result = CliRunner().invoke(ponto, ["schedule", "--every", "300", "--cron", "*/5 * * * *", *NOWHERE])
    assert result.exit_code == 2
    assert "give --cron or --every" in result.output
