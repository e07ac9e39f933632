"""The REP-P's two clocks on PostgreSQL: this host's and the API hosts' skew against the database's."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from tornado_tasks.ponto.cli import ponto
from tornado_tasks.ponto.clocks import measure_clocks
from tornado_tasks.ponto.handlers import record
from tornado_tasks.ponto.models import QueuedPunch, RecordPayload

from tests.integration.ponto_fixtures import Erp, erp_fixture, erp_pool_fixture, make_erp  # noqa: F401
from tests.integration.test_ponto_ledger import punch
from tests.integration.test_ponto_rendered_times import task_context


def received_ahead(rep: str, lead: timedelta) -> QueuedPunch:
    """A punch as an API host whose clock runs ``lead`` ahead of the database's would queue it."""
    sent = punch(rep)
    return sent.model_copy(update={"received_at": sent.received_at + lead, "time": sent.time + lead})


def lead(text: str, pattern: str) -> float:
    """The seconds of lead a message reports (600 s less the punch's trip to the database)."""
    found = re.search(pattern, text)
    assert found, text
    return float(found.group(1))


def clocks(erp: Erp, url: str, env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(ponto, ["clocks", *args], env={**env, "TORNADO_ERP_DATABASE_URL": url})
    return result.exit_code, result.output


def test_clocks_in_step_are_reported_ok(erp: Erp, fresh_database_url: str, stack_env: dict[str, str]) -> None:
    record.handler(task_context(erp, "ponto.record"), RecordPayload(punches=[punch(erp.reps[0])]))
    code, output = clocks(erp, fresh_database_url, stack_env, "--tenant", erp.tenant)
    assert code == 0, output
    assert "this host minus database: " in output and "API hosts minus database: at least " in output
    assert "over 1 punch(es) of the last 1 h" in output and output.rstrip().endswith("OK (within ±30 s)")


def test_an_api_clock_ten_minutes_ahead_is_logged_when_recording_and_fails_the_check(
    erp: Erp, fresh_database_url: str, stack_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    batch = RecordPayload(punches=[received_ahead(erp.reps[1], timedelta(minutes=10))])
    with caplog.at_level(logging.WARNING, logger="tests.ponto"):
        result = record.handler(task_context(erp, "ponto.record"), batch)
    assert result["recorded"] == 1
    [warning] = [r for r in caplog.records if r.name == "tests.ponto"]
    assert lead(warning.getMessage(), r"clock is at least ([\d.]+) s ahead") > 300
    code, output = clocks(erp, fresh_database_url, stack_env, "--tenant", erp.tenant)
    assert code == 1
    assert lead(output, r"PROBLEM an API host's clock ran at least \+([\d.]+) s ahead") > 300
    assert "check NTP" in output


def test_the_api_clocks_are_read_off_the_tenants_recent_punches_only(erp: Erp) -> None:
    other = make_erp(erp.pool, reps=1)
    ahead = received_ahead(other.reps[0], timedelta(minutes=10))
    record.handler(task_context(other, "ponto.record"), RecordPayload(punches=[ahead]))
    mine_punches = RecordPayload(punches=[punch(erp.reps[0]), punch(erp.reps[1])])
    record.handler(task_context(erp, "ponto.record"), mine_punches)
    with erp.pool.connection() as conn:
        mine = measure_clocks(conn, tenant=erp.tenant)
        everyone = measure_clocks(conn)
        none = measure_clocks(conn, tenant="nobody")
    assert mine.punches == 2 and mine.api_lead is not None and mine.api_lead < timedelta(minutes=5)
    assert everyone.api_lead is not None and everyone.api_lead > timedelta(minutes=5)
    assert none.punches == 0 and none.api_lead is None
    assert not mine.problems()  # this host and the test database share a clock
