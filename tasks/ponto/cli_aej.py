"""``tornado ponto work-schedule ...``, ``tornado ponto aej`` and ``tornado ponto verify-aej``.

Registered on the ``tornado ponto`` group by :func:`add_aej_commands`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from tornado_core import ApiError, TornadoClient
from tornado_core.extend import api_url_option, command_services, token_option

from .cli_reports import echo_verdict, refuse_test_certificate

AEJ_TASK = "ponto.aej"


def _in_erp(action: Any) -> Any:
    """Run ``action(conn)`` in one ERP transaction, the ponto tables ensured; bad input is one error line."""
    from .schema import ensure_schema

    with command_services() as services:
        try:
            with services.rds.connection() as conn:
                ensure_schema(conn)
                return action(conn)
        except (ValueError, LookupError) as exc:
            raise click.ClickException(str(exc)) from None


@click.group("work-schedule")
def work_schedule_group() -> None:
    """Contractual work schedules (horário contratual) and which employee follows which."""


@work_schedule_group.command("add")
@click.argument("code")
@click.option("--tenant", required=True, help="Tenant owning it.")
@click.option(
    "--period",
    "periods",
    multiple=True,
    required=True,
    help="Entry-exit, e.g. 08:00-12:00 (repeat, in order).",
)
@click.option("--duration", type=int, default=None, help="Minutes (default: the minutes inside the periods).")
def add_work_schedule_command(code: str, tenant: str, periods: tuple[str, ...], duration: int | None) -> None:
    """Define work schedule CODE (its times never change: a new contract gets a new code)."""
    from .work_schedule import add_work_schedule, parse_period, work_schedule

    try:
        schedule = work_schedule(code, [parse_period(p) for p in periods], duration)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    created = _in_erp(lambda conn: add_work_schedule(conn, tenant, schedule))
    click.echo(
        f"work schedule {code}: {' '.join(schedule.hhmm())}, {schedule.duration} min"
        f" ({'defined' if created else 'already defined'})"
    )


@work_schedule_group.command("assign")
@click.option("--tenant", required=True)
@click.option("--cpf", required=True, help="The employee.")
@click.option("--schedule", "code", required=True, help="Work schedule code.")
@click.option("--from", "valid_from", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day.")
def assign_work_schedule_command(tenant: str, cpf: str, code: str, valid_from: datetime) -> None:
    """Make an employee follow a work schedule from a date on (a later call for that date corrects it)."""
    from .work_schedule import assign_work_schedule

    day = valid_from.date()
    changed = _in_erp(
        lambda conn: assign_work_schedule(conn, tenant=tenant, cpf=cpf, code=code, valid_from=day)
    )
    click.echo(f"{cpf} follows {code} from {day}{'' if changed else ' (already)'}")


@work_schedule_group.command("list")
@click.option("--tenant", required=True)
def list_work_schedules_command(tenant: str) -> None:
    """Print the tenant's work schedules, one JSON object a line."""
    from .work_schedule import load_work_schedules

    for schedule in _in_erp(lambda conn: load_work_schedules(conn, tenant)).values():
        line = {"code": schedule.code, "duration": schedule.duration, "times": schedule.hhmm()}
        click.echo(json.dumps(line))


@click.command("aej")
@click.argument("establishment")
@click.option("--start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (local).")
@click.option("--end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day (local), inclusive.")
@click.option("--wait", "wait_seconds", type=float, default=None, help="Wait up to this many seconds for it.")
@api_url_option
@token_option
def request_aej(
    establishment: str, start: datetime, end: datetime, wait_seconds: float | None, api_url: str, token: str
) -> None:
    """Queue ponto.aej: the signed AEJ of ESTABLISHMENT for a period, written to the object store."""
    payload = {
        "establishment": establishment,
        "start": start.date().isoformat(),
        "end": end.date().isoformat(),
    }
    client = TornadoClient(api_url, token)
    try:
        job = client.submit(AEJ_TASK, payload)
        click.echo(f"{AEJ_TASK} job {job['id']} ({job['status']})")
        if wait_seconds is not None:
            job = client.wait(job["id"], timeout=wait_seconds)
    except (ApiError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from None
    if wait_seconds is not None:
        if job.get("status") != "succeeded":
            raise click.ClickException(f"job {job['id']} {job.get('status')}: {job.get('error')}")
        click.echo(json.dumps(job.get("result"), sort_keys=True))


@click.command("verify-aej")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--p7s",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The detached signature (default: FILE with .p7s next to it).",
)
@click.option("--no-signature", is_flag=True, help="Do not require or check a .p7s.")
@click.option("--require-icp-brasil", is_flag=True, help="A test (not ICP-Brasil) certificate is a problem.")
def verify_aej_command(file: Path, p7s: Path | None, no_signature: bool, require_icp_brasil: bool) -> None:
    """Check an AEJ: each record's fields, order, references, period, trailer counts, CAdES signature."""
    from .aej_verify import verify_aej

    beside = file.with_suffix(".p7s")  # where the job writes it
    p7s_path = None if no_signature else (p7s or (beside if beside.exists() else None))
    report = verify_aej(file.read_bytes(), p7s_path.read_bytes() if p7s_path else None)
    if not no_signature and p7s_path is None:
        report.add(0, f"signature: no .p7s next to {file.name} (pass --p7s or --no-signature)")
    refuse_test_certificate(report, require_icp_brasil)
    counts = ", ".join(f"{kind}: {n}" for kind, n in report.counts.items() if n)
    period = f"{report.period[0]}..{report.period[1]}" if report.period else "no period"
    click.echo(f"{file.name}: {period}; {counts or 'no records'}")
    if report.signature is not None:
        kind = "CAdES-BES" if report.signature.cades else "CMS"
        click.echo(f"  signature: valid {kind}, signer {report.signature.subject}")
    echo_verdict(report, "AEJ")


def add_aej_commands(group: click.Group) -> None:
    """Put ``work-schedule``, ``aej`` and ``verify-aej`` on ``group`` (``tornado ponto``)."""
    for command in (work_schedule_group, request_aej, verify_aej_command):
        group.add_command(command)
