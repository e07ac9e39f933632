"""Work schedules in the ERP database: defined once, assigned from a date, corrected later, append-only."""

from __future__ import annotations

from datetime import date

import psycopg2
import pytest
from click.testing import CliRunner
from tornado_tasks.ponto.cli import ponto
from tornado_tasks.ponto.work_schedule import (
    add_work_schedule,
    assign_work_schedule,
    assignment_history,
    load_work_schedules,
    parse_period,
    work_schedule,
)

from tests.integration.ponto_fixtures import Erp, erp_fixture, erp_pool_fixture  # noqa: F401

JOSE = "12345678909"
ADM = work_schedule("ADM", [parse_period("08:00-12:00"), parse_period("13:00-17:00")])
MEIO = work_schedule("MEIO", [parse_period("08:00-12:00")])


def test_a_definition_is_kept_once_and_never_changes(erp: Erp) -> None:
    with erp.pool.connection() as conn:
        created = add_work_schedule(conn, erp.tenant, ADM)
        again = add_work_schedule(conn, erp.tenant, ADM)
        with pytest.raises(ValueError, match="definitions never change"):
            add_work_schedule(conn, erp.tenant, work_schedule("ADM", [parse_period("07:00-16:00")]))
    with erp.pool.connection() as conn:
        stored = load_work_schedules(conn, erp.tenant)
        elsewhere = load_work_schedules(conn, f"{erp.tenant}-other")

    assert (created, again) == (True, False)
    assert stored == {"ADM": ADM} and elsewhere == {}


def test_the_assignment_in_force_is_the_latest_row_for_its_date(erp: Erp) -> None:
    with erp.pool.connection() as conn:
        add_work_schedule(conn, erp.tenant, ADM)
        add_work_schedule(conn, erp.tenant, MEIO)
        steps = [
            assign_work_schedule(conn, tenant=erp.tenant, cpf="123.456.789-09", code="ADM", valid_from=day)
            for day in (date(2025, 3, 1), date(2025, 3, 1))
        ]
        corrected = assign_work_schedule(
            conn, tenant=erp.tenant, cpf=JOSE, code="MEIO", valid_from=date(2025, 3, 1)
        )
        later = assign_work_schedule(
            conn, tenant=erp.tenant, cpf=JOSE, code="ADM", valid_from=date(2025, 4, 1)
        )
    with erp.pool.connection() as conn:
        march = assignment_history(conn, erp.tenant, [JOSE], until=date(2025, 3, 31))
        april = assignment_history(conn, erp.tenant, [JOSE], until=date(2025, 4, 30))

    assert steps == [True, False] and corrected and later
    assert march == {JOSE: [(date(2025, 3, 1), "MEIO")]}
    assert april == {JOSE: [(date(2025, 3, 1), "MEIO"), (date(2025, 4, 1), "ADM")]}


def test_assigning_an_unknown_code_or_a_bad_cpf_is_refused(erp: Erp) -> None:
    with erp.pool.connection() as conn:
        add_work_schedule(conn, erp.tenant, ADM)
        with pytest.raises(LookupError, match="no work schedule 'NOPE'"):
            assign_work_schedule(conn, tenant=erp.tenant, cpf=JOSE, code="NOPE", valid_from=date(2025, 3, 1))
        with pytest.raises(ValueError, match="CPF"):
            assign_work_schedule(
                conn, tenant=erp.tenant, cpf="12345678900", code="ADM", valid_from=date(2025, 3, 1)
            )


@pytest.mark.parametrize("table", ["ponto_work_schedule", "ponto_work_schedule_assignment"])
def test_work_schedule_tables_are_append_only(erp: Erp, table: str) -> None:
    with erp.pool.connection() as conn:
        add_work_schedule(conn, erp.tenant, ADM)
        assign_work_schedule(conn, tenant=erp.tenant, cpf=JOSE, code="ADM", valid_from=date(2025, 3, 1))
    for statement in (f"UPDATE {table} SET code = 'X'", f"DELETE FROM {table}", f"TRUNCATE {table} CASCADE"):
        with (
            pytest.raises(psycopg2.Error, match="append-only"),
            erp.pool.connection() as conn,
            conn.cursor() as cur,
        ):
            cur.execute(statement)


def test_the_work_schedule_commands(erp: Erp, fresh_database_url: str, stack_env: dict[str, str]) -> None:
    env = {**stack_env, "TORNADO_ERP_DATABASE_URL": fresh_database_url}
    tenant = ["--tenant", erp.tenant]

    def run(*arguments: str) -> str:
        result = CliRunner().invoke(ponto, ["work-schedule", *arguments], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    added = run("add", "ADM", *tenant, "--period", "08:00-12:00", "--period", "13:00-17:00")
    assigned = run("assign", *tenant, "--cpf", "123.456.789-09", "--schedule", "ADM", "--from", "2025-03-01")
    listed = run("list", *tenant)
    bad = CliRunner().invoke(
        ponto, ["work-schedule", "add", "X", *tenant, "--period", "17:00-17:00"], env=env
    )

    assert added == "work schedule ADM: 0800 1200 1300 1700, 480 min (defined)\n"
    assert assigned == "123.456.789-09 follows ADM from 2025-03-01\n"
    assert listed == '{"code": "ADM", "duration": 480, "times": ["0800", "1200", "1300", "1700"]}\n'
    assert bad.exit_code == 2 and "must come after" in bad.output
