"""``tornado ponto``: time-clock setup, AFD verification and the Redshift export's periodic schedule.

Added to ``tornado`` through the commands door (entry point ``tornado.commands``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from tornado_core import ApiError, TornadoClient
from tornado_core.extend import api_url_option, command_services, token_option

from .cli_aej import add_aej_commands
from .cli_reports import echo_verdict, refuse_test_certificate
from .receipt_cli import add_receipt_commands

EXPORT_TASK = "ponto.export_redshift"
#: The periodic schedule ``tornado ponto schedule`` keeps, and how it runs by default.
SCHEDULE_NAME = "ponto-redshift-export"
DEFAULT_EVERY = 300
DEFAULT_TIMEZONE = "America/Sao_Paulo"


@click.group()
def ponto() -> None:
    """Time-clock punches (Portaria 671): REPs, employees, AFD checks, Redshift schedule."""


add_aej_commands(ponto)  # work-schedule, aej, verify-aej (cli_aej.py)
add_receipt_commands(ponto)  # verify-receipt, receipt-token (receipt_cli.py)


def _signature_path(afd: Path) -> Path | None:
    for candidate in (afd.with_suffix(".p7s"), afd.with_name(afd.name + ".p7s")):
        if candidate.exists():
            return candidate
    return None


@ponto.command("verify-afd")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--signature",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The detached .p7s (default: FILE with .p7s next to it).",
)
@click.option("--no-signature", is_flag=True, help="Do not require or check a .p7s.")
@click.option("--previous-hash", default=None, help="Type-7 hash before the file's first punch, if known.")
@click.option(
    "--require-icp-brasil", is_flag=True, help="A test (not ICP-Brasil) certificate fails the file."
)
def verify_afd_command(
    file: Path,
    signature: Path | None,
    no_signature: bool,
    previous_hash: str | None,
    require_icp_brasil: bool,
) -> None:
    """Check an AFD: layout, CRC-16, NSR order, dates, hash chain, trailer counts, CAdES signature."""
    from .verify import policy_name, verify_afd

    p7s_path = None if no_signature else (signature or _signature_path(file))
    p7s = p7s_path.read_bytes() if p7s_path else None
    report = verify_afd(file.read_bytes(), p7s, previous_hash=previous_hash)
    if not no_signature and p7s is None:
        report.add(0, f"signature: no .p7s next to {file.name} (pass --signature or --no-signature)")
    refuse_test_certificate(report, require_icp_brasil)
    counts = ", ".join(f"type {k}: {v}" for k, v in report.counts.items() if v)
    click.echo(f"{file.name}: NSR {report.first_nsr}..{report.last_nsr}; {counts or 'no records'}")
    click.echo(
        f"  hash chain: {report.chain_checked} link(s) recomputed"
        + (
            f", anchored on the first punch's hash {report.chain_anchor[:12]}..."
            if report.chain_anchor
            else ""
        )
    )
    if report.signature is not None:
        kind = "CAdES-BES" if report.signature.cades else "CMS"
        click.echo(f"  signature: valid {kind}, signer {report.signature.subject}")
        certificate = "TEST (not ICP-Brasil)" if report.test_certificate else "ICP-Brasil"
        click.echo(f"  certificate: {certificate}; policy: {policy_name(report.signature)}")
    echo_verdict(report, "AFD")


@ponto.command("audit")
@click.argument("reps", nargs=-1, required=True)
def audit(reps: tuple[str, ...]) -> None:
    """Re-verify what REPS recorded: NSRs 1..n without a gap and the whole SHA-256 chain."""
    from .audit import audit_rep

    failed = 0
    with command_services() as services, services.rds.connection() as conn:
        for rep in reps:
            try:
                report = audit_rep(conn, rep)
            except LookupError as exc:
                raise click.ClickException(str(exc)) from None
            click.echo(
                f"{rep}: NSR {report.first_nsr}..{report.last_nsr}, {report.chain_checked} chain link(s)"
                f" {'OK' if report.ok else 'FAILED'}"
            )
            for problem in report.problems:
                click.echo(f"  PROBLEM {problem}", err=True)
            failed += not report.ok
    if failed:
        raise click.ClickException(f"{failed} REP(s) do not verify")


@ponto.group("quarantine")
def quarantine_group() -> None:
    """Punches refused for good (too old, too far ahead, malformed, unknown REP), kept raw."""


@quarantine_group.command("list")
@click.option("--tenant", required=True, help="Whose refused punches.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--before", default=None, type=int, help="Only entries older than this quarantine id.")
def quarantine_list(tenant: str, limit: int, before: int | None) -> None:
    """Print the tenant's quarantined punches, newest first, one JSON object a line."""
    from .quarantine import list_quarantined

    with command_services() as services, services.rds.connection() as conn:
        rows = list_quarantined(conn, tenant, limit=limit, before=before)
    for row in rows:
        click.echo(json.dumps(row, ensure_ascii=False, sort_keys=True))


@ponto.command("init-db")
def init_db() -> None:
    """Create the ponto tables in the ERP database (TORNADO_ERP_DATABASE_URL)."""
    from .schema import ensure_schema

    with command_services() as services, services.rds.connection() as conn:
        ensure_schema(conn)
    click.echo("ponto tables are ready")


@ponto.command("add-establishment")
@click.argument("establishment_id")
@click.option("--tenant", required=True, help="Tenant owning it.")
@click.option("--cnpj", default=None, help="Employer CNPJ (or use --cpf).")
@click.option("--cpf", "employer_cpf", default=None, help="Employer CPF, for an individual employer.")
@click.option("--name", required=True, help="Razão social.")
@click.option("--site", required=True, help="Local de prestação de serviços.")
@click.option("--time-zone", required=True, help="IANA zone, e.g. America/Sao_Paulo, America/Rio_Branco.")
@click.option("--cno-caepf", default="", help="CNO or CAEPF, if any.")
def add_establishment_command(
    establishment_id: str,
    tenant: str,
    cnpj: str | None,
    employer_cpf: str | None,
    name: str,
    site: str,
    time_zone: str,
    cno_caepf: str,
) -> None:
    """Register an establishment (employer data of the AFD and its time zone)."""
    from .admin import Establishment, add_establishment

    if bool(cnpj) == bool(employer_cpf):
        raise click.UsageError("give exactly one of --cnpj and --cpf")
    est = Establishment(
        establishment_id=establishment_id,
        tenant=tenant,
        employer_type=1 if cnpj else 2,
        employer_id=cnpj or employer_cpf or "",
        company_name=name,
        work_site=site,
        time_zone=time_zone,
        cno_caepf=cno_caepf,
    )
    _admin(lambda conn: add_establishment(conn, est))
    click.echo(f"establishment {establishment_id} registered")


@ponto.command("add-rep")
@click.argument("rep_id")
@click.option("--establishment", required=True, help="Establishment id.")
@click.option("--inpi", required=True, help="REP-P registration number at INPI (BR 51 AAAA NNNNNN-D).")
@click.option("--developer-cnpj", required=True, help="CNPJ of the REP-P developer.")
@click.option("--responsible-cpf", required=True, help="CPF of whoever registers it (type-2 record).")
@click.option(
    "--registered",
    is_flag=True,
    help="Production: the REP-P is registered at INPI under --inpi (checked); its files need an"
    " ICP-Brasil signer. Without it the REP signs test signatures only.",
)
def add_rep_command(
    rep_id: str, establishment: str, inpi: str, developer_cnpj: str, responsible_cpf: str, registered: bool
) -> None:
    """Register a REP-P (its NSR sequence starts with the employer record, NSR 1)."""
    from .admin import Rep, add_rep

    rep = Rep(
        rep_id=rep_id,
        establishment_id=establishment,
        inpi_number=inpi,
        developer_type=1,
        developer_id=developer_cnpj,
        responsible_cpf=responsible_cpf,
        registered=registered,
    )
    created = _admin(lambda conn: add_rep(conn, rep))
    mode = "registered at INPI" if registered else "NOT registered at INPI: test signatures only"
    click.echo(f"REP {rep_id} created ({mode})" if created else f"REP {rep_id} already exists (unchanged)")


@ponto.command("add-employee")
@click.option("--rep", "rep_id", required=True)
@click.option("--cpf", required=True)
@click.option("--name", required=True)
@click.option("--responsible-cpf", required=True)
def add_employee_command(rep_id: str, cpf: str, name: str, responsible_cpf: str) -> None:
    """Include an employee on a REP (type-5 record)."""
    from .admin import add_employee

    nsr = _admin(
        lambda conn: add_employee(conn, rep_id=rep_id, cpf=cpf, name=name, responsible_cpf=responsible_cpf)
    )
    click.echo(f"employee included on {rep_id} with NSR {nsr}")


def _admin(action: Any) -> Any:
    with command_services() as services:
        try:
            with services.rds.connection() as conn:
                return action(conn)
        except (ValueError, LookupError) as exc:
            raise click.ClickException(str(exc)) from None


@ponto.command("outage")
@click.argument("reps", nargs=-1)
@click.option("--tenant", default=None, help="Every REP of this tenant (instead of REPS).")
@click.option("--start", required=True, help="When the service became unavailable (ISO 8601 with offset).")
@click.option("--end", required=True, help="When it was available again (ISO 8601 with offset).")
@click.option("--reason", default="", help="Kept with the records (not written in the AFD).")
def outage(reps: tuple[str, ...], tenant: str | None, start: str, end: str, reason: str) -> None:
    """Record an outage window: type-6 events 08 (unavailable) at --start and 07 (available) at --end."""
    from .events import parse_instant, record_outage, tenant_reps
    from .schema import ensure_schema

    if bool(reps) == bool(tenant):
        raise click.UsageError("give REPS or --tenant, not both")

    def action(conn: Any) -> Any:
        ensure_schema(conn)
        targets = list(reps) or tenant_reps(conn, tenant or "")
        window = {"start": parse_instant(start), "end": parse_instant(end)}
        return record_outage(conn, targets, **window, reason=reason)

    for event in _admin(action):
        again = "" if event.created else " (recorded before)"
        click.echo(f"{event.rep_id}: NSR {event.nsr}, event {event.code} at {event.at.isoformat()}{again}")


@ponto.command("install-signer")
@click.argument("pem", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", default=None, hidden=True)
def install_signer(pem: Path, tenant: str | None) -> None:
    """Store the REP-P developer's signing key and certificate (one PEM): it signs every REP's files."""
    from .rep_signer import REP_SIGNER_KEY, SignerError, install_rep_signer, is_icp_brasil

    if tenant is not None:
        raise click.UsageError("there is no per-tenant signer any more: the REP-P developer signs every AFD")
    with command_services() as services:
        try:
            signer = install_rep_signer(services.objects, pem.read_bytes())
        except SignerError as exc:
            raise click.ClickException(f"{pem}: {exc}") from None
    click.echo(f"signer {signer.certificate.subject.rfc4514_string()} stored at {REP_SIGNER_KEY}")
    if not is_icp_brasil(signer.certificate):
        click.echo("not ICP-Brasil: REPs registered at INPI will refuse it (test signatures only)", err=True)


@ponto.command("clocks")
@click.option("--tenant", default=None, help="Read the API clocks off this tenant's punches only.")
@click.option("--window", default=3600, show_default=True, type=click.IntRange(60), help="Seconds back.")
def clocks(tenant: str | None, window: int) -> None:
    """Skew of this host's and the API hosts' clocks against the database's; exit 1 over 30 s (Anexo IX)."""
    from .clocks import describe, measure_clocks

    with command_services() as services, services.rds.connection() as conn:
        report = measure_clocks(conn, tenant=tenant, window=timedelta(seconds=window))
    for line in describe(report):
        click.echo(line)
    problems = report.problems()
    for problem in problems:
        click.echo(f"  PROBLEM {problem}", err=True)
    if problems:
        raise click.ClickException("clocks are more than 30 s apart: check NTP (Hora Legal Brasileira)")
    click.echo("OK (within ±30 s)")


def window_key(now: datetime, every: int) -> str:
    """The idempotency key of the schedule window containing ``now`` (``--once``)."""
    start = int(now.timestamp()) // every * every
    return "ponto-export-" + datetime.fromtimestamp(start, UTC).strftime("%Y%m%dT%H%M%SZ")


def export_cron(every: int) -> str:
    """The cron expression firing every ``every`` seconds, aligned on the minute, hour or day.

    Divisors of a minute become six fields with seconds first (``*/30 * * * * *``), whole minutes
    dividing an hour five fields (``*/5 * * * *``), whole hours dividing a day ``0 */N * * *``.

    Raises:
        ValueError: ``every`` is none of those (a cron expression cannot repeat it evenly).
    """
    if 0 < every < 60 and 60 % every == 0:
        return f"*/{every} * * * * *"
    if every % 60 == 0 and 3600 % every == 0:
        minutes = every // 60
        return "* * * * *" if minutes == 1 else "0 * * * *" if minutes == 60 else f"*/{minutes} * * * *"
    if every % 3600 == 0 and 86_400 % every == 0:
        hours = every // 3600
        return "0 0 * * *" if hours == 24 else f"0 */{hours} * * *"
    raise ValueError(
        f"--every {every} does not divide a minute, an hour or a day evenly: use a divisor of 60 seconds"
        " (10, 12, 15, 20, 30), whole minutes dividing 60 (60, 120, 300, 600, 900, 1800, 3600...),"
        " whole hours dividing 24 (7200, 21600, 86400...), or give --cron"
    )


@ponto.command("schedule")
@click.option(
    "--every",
    default=None,
    type=click.IntRange(10, 86_400),
    help="Seconds between exports (default 300): a divisor of a minute, an hour or a day.",
)
@click.option(
    "--cron", default=None, help="A cron expression instead of --every (5 fields, or 6 with seconds)."
)
@click.option("--timezone", default=DEFAULT_TIMEZONE, show_default=True, help="IANA zone the cron runs in.")
@click.option("--name", default=SCHEDULE_NAME, show_default=True, help="The schedule's name.")
@click.option(
    "--once", is_flag=True, help="Submit the current --every window's export now and exit; no schedule."
)
@click.option("--iam-role", default=None, help="IAM role ARN for COPY (real Redshift).")
@click.option("--region", default=None, help="Bucket region for COPY (real Redshift).")
@api_url_option
@token_option
def schedule(
    every: int | None,
    cron: str | None,
    timezone: str,
    name: str,
    once: bool,
    iam_role: str | None,
    region: str | None,
    api_url: str,
    token: str,
) -> None:
    """Create or replace the periodic schedule of ponto.export_redshift; `tornado scheduler` fires it.

    Each occurrence is one job with an id of its own, so each window is exported once however
    many schedulers run; missed occurrences are caught up (the watermark decides what is new).
    """
    if cron is not None and (every is not None or once):
        raise click.UsageError("give --cron or --every (with --once), not both")
    payload: dict[str, Any] = {k: v for k, v in {"iam_role": iam_role, "region": region}.items() if v}
    client = TornadoClient(api_url, token)
    if once:
        _submit_window(client, every or DEFAULT_EVERY, payload)
        return
    if cron is None:
        try:
            cron = export_cron(every or DEFAULT_EVERY)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    try:
        stored = client.put_schedule(
            name, EXPORT_TASK, payload, cron=cron, timezone=timezone, missed="catch_up"
        )
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    state = "paused" if stored.get("paused") else f"next {stored['next_run_at']}"
    click.echo(
        f"{stored['name']}: {stored['task']} at '{stored['cron']}' {stored['timezone']}"
        f" (missed: {stored['missed']}; {state}); payload {json.dumps(stored['payload'], sort_keys=True)}"
    )
    click.echo("`tornado scheduler` queues its jobs", err=True)


def _submit_window(client: TornadoClient, every: int, payload: dict[str, Any]) -> None:
    """Submit the export of the current window, keyed by it (duplicates collapse)."""
    key = window_key(datetime.now(UTC), every)
    try:
        job = client.submit(EXPORT_TASK, {**payload, "window": key}, idempotency_key=key)
    except ApiError as exc:
        raise click.ClickException(f"{key}: {exc}") from None
    click.echo(f"{key}: job {job['id']}")
