"""``tornado ponto verify-receipt`` and ``tornado ponto receipt-token``: receipts and employees' access."""

from __future__ import annotations

import json
from pathlib import Path

import click
from cryptography import x509

from tornado_core.extend import command_services


def _trust_roots(paths: tuple[Path, ...]) -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for path in paths:
        try:
            roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except ValueError as exc:
            raise click.ClickException(f"{path}: not PEM certificates ({exc})") from None
    return roots


@click.command("verify-receipt")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--trust",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="PEM of a trusted root (e.g. ICP-Brasil's AC Raiz); repeatable.",
)
@click.option("--ledger", is_flag=True, help="Also compare every field with the ledger (the ERP database).")
def verify_receipt_command(file: Path, trust: tuple[Path, ...], ledger: bool) -> None:
    """Check a receipt (comprovante) PDF: its PAdES signature, its fields, and with --ledger the ARP's row."""
    from .receipt_pdf import verify_receipt, verify_receipt_with_ledger

    data, roots = file.read_bytes(), _trust_roots(trust)
    if ledger:
        with command_services() as services, services.rds.connection() as conn:
            check = verify_receipt_with_ledger(conn, data, trust_roots=roots)
    else:
        check = verify_receipt(data, trust_roots=roots)
    fields = check.fields
    if fields:
        employee = fields.get("employee", {})
        click.echo(
            f"{file.name}: NSR {fields.get('nsr')} on REP {fields.get('rep', {}).get('id')},"
            f" CPF {employee.get('cpf')}, marcação {fields.get('marked_at')}, hash {fields.get('hash')}"
        )
    if check.signer:
        trusted = (
            "trusted" if check.trusted else "not checked against a trust root" if not trust else "UNTRUSTED"
        )
        click.echo(f"  signature: PAdES by {check.signer}, signed {check.signed_at}; {trusted}")
    if fields and check.test:
        click.echo("  TEST receipt: its REP-P is not registered at INPI; the signature has no legal value")
    problems = list(check.problems)
    if trust and check.signer and not check.trusted:
        problems.append("signature: the certificate does not chain to a --trust root")
    for problem in problems:
        click.echo(f"  PROBLEM {problem}", err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s): the receipt does not verify")
    click.echo("  OK" + (" (matches the ledger)" if ledger else ""))


@click.group("receipt-token")
def receipt_tokens() -> None:
    """Employees' tokens for their own receipts (GET /v1/employee/receipts)."""


@receipt_tokens.command("issue")
@click.option("--tenant", required=True, help="The employer.")
@click.option("--cpf", required=True, help="The employee.")
@click.option("--label", default="", help="A note (the device, the person).")
def issue(tenant: str, cpf: str, label: str) -> None:
    """Issue a token for one employee and print it (shown once; only its SHA-256 is kept)."""
    from .identity import cpf_problem, digits_only
    from .receipt_access import issue_token
    from .schema import ensure_schema

    problem = cpf_problem(cpf)
    if problem:
        raise click.BadParameter(problem, param_hint="--cpf")
    with command_services() as services, services.rds.connection() as conn:
        ensure_schema(conn)
        issued = issue_token(conn, tenant=tenant, cpf=digits_only(cpf), label=label)
    click.echo(issued.token)
    click.echo(f"token {issued.token_id} for CPF {issued.cpf} of {tenant}: hand it to the employee", err=True)


@receipt_tokens.command("revoke")
@click.argument("token_id", type=int)
@click.option("--tenant", required=True, help="The employer.")
def revoke(token_id: int, tenant: str) -> None:
    """Revoke a token (its next request is refused)."""
    from .receipt_access import revoke_token

    with command_services() as services, services.rds.connection() as conn:
        if not revoke_token(conn, tenant=tenant, token_id=token_id):
            raise click.ClickException(f"{tenant} has no live receipt token {token_id}")
    click.echo(f"token {token_id} revoked")


@receipt_tokens.command("list")
@click.option("--tenant", required=True, help="The employer.")
@click.option("--cpf", default=None, help="Only this employee's.")
def list_command(tenant: str, cpf: str | None) -> None:
    """The tenant's tokens (never their secrets), one JSON object a line."""
    from .identity import digits_only
    from .receipt_access import list_tokens

    with command_services() as services, services.rds.connection() as conn:
        rows = list_tokens(conn, tenant=tenant, cpf=digits_only(cpf) if cpf else None)
    for row in rows:
        click.echo(json.dumps(row, sort_keys=True))


def add_receipt_commands(group: click.Group) -> None:
    """Put ``verify-receipt`` and ``receipt-token`` on the ``tornado ponto`` group."""
    group.add_command(verify_receipt_command)
    group.add_command(receipt_tokens)
