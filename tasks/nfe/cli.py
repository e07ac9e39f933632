"""``tornado nfe``: A1 certificates, contingency per UF and series numbering, for operators.

Added to ``tornado`` through the commands door (entry point ``tornado.commands``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from tornado_core.extend import command_services, reported_errors

from . import authorities, certificate_store, numbering
from .certificates import TestAuthority
from .config import NfeConfig
from .endpoints import EndpointTable
from .schema import ensure_schema


@click.group()
def nfe() -> None:
    """NF-e: tenants' A1 certificates, contingency per UF, series numbering."""


@nfe.group()
def certificate() -> None:
    """The tenants' A1 certificates (sealed in the object store)."""


@certificate.command("import")
@click.option("--tenant", required=True, help="The tenant the certificate signs for.")
@click.option(
    "--password-env", default="NFE_A1_PASSWORD", show_default=True, help="Variable with its password."
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_certificate(tenant: str, password_env: str, file: Path) -> None:
    """Seal and store an A1 (PKCS#12 FILE) for TENANT under the CNPJ it names."""
    password = os.environ.get(password_env)
    if password is None:
        raise click.ClickException(
            f"set the certificate's password in ${password_env} (never on the command line)"
        )
    with command_services() as services:
        key = NfeConfig.from_environment(os.environ).require_master_key()
        opened = certificate_store.store_certificate(
            services.objects, key, tenant, file.read_bytes(), password
        )
    click.echo(f"stored the A1 of CNPJ {opened.cnpj} for tenant {tenant}: {opened.subject}")
    click.echo(f"  valid until {opened.not_after:%Y-%m-%d} ({opened.problem(datetime.now(UTC)) or 'ok'})")


@certificate.command("issue-test")
@click.option("--tenant", required=True)
@click.option("--cnpj", required=True, help="The issuer's CNPJ.")
@click.option("--name", default="EMPRESA TESTE LTDA", show_default=True, help="The company name.")
@click.option("--days", default=365, show_default=True, help="Days of validity.")
def issue_test(tenant: str, cnpj: str, name: str, days: int) -> None:
    """Issue and store a TEST A1 from the local stack's test authority (never valid at SEFAZ)."""
    path = os.environ.get("TORNADO_NFE_TEST_AUTHORITY")
    if not path:
        raise click.ClickException(
            "no TORNADO_NFE_TEST_AUTHORITY: this only works on the local stack (`tornado dev`)"
        )
    authority = TestAuthority.from_pem(Path(path).read_bytes())
    password = os.urandom(12).hex()
    pkcs12 = authority.issue_a1(cnpj, name, password=password, days=days)
    with command_services() as services:
        key = NfeConfig.from_environment(os.environ).require_master_key()
        opened = certificate_store.store_certificate(services.objects, key, tenant, pkcs12, password)
    click.echo(
        f"issued a TEST A1 for CNPJ {opened.cnpj} (tenant {tenant}), valid until {opened.not_after:%Y-%m-%d}"
    )


@certificate.command("list")
def list_certificates() -> None:
    """Every stored certificate, soonest expiry first; exits 1 if one is expired or expires within 30 days."""
    with command_services() as services:
        key = NfeConfig.from_environment(os.environ).require_master_key()
        found = certificate_store.list_certificates(services.objects, key, datetime.now(UTC))
    for item in found:
        until = "?" if item.subject == "?" else f"{item.not_after:%Y-%m-%d}"
        click.echo(f"{item.tenant}\t{item.cnpj}\t{until}\t{item.problem or 'ok'}\t{item.subject}")
    troubled = [item for item in found if item.problem]
    if troubled:
        raise click.ClickException(f"{len(troubled)} certificate(s) need attention")


@nfe.command()
@click.argument("uf", required=False)
@click.option("--on", "switch_on", is_flag=True, help="Send the UF's new NF-e to its SVC.")
@click.option("--off", "switch_off", is_flag=True, help="Back to the UF's own SEFAZ.")
@click.option("--reason", default=None, help="Why (15 characters or more; printed in the NF-e as xJust).")
def contingency(uf: str | None, switch_on: bool, switch_off: bool, reason: str | None) -> None:
    """Show or switch the contingency of UF (without arguments: every UF with a state)."""
    with command_services() as services, services.rds.connection() as conn:
        environment = NfeConfig.from_environment(os.environ).environment
        ensure_schema(conn)
        if uf is None or not (switch_on or switch_off):
            states = authorities.all_authority_states(conn)
            if uf is not None:
                states = [authorities.authority_state(conn, uf.upper(), environment)]
            for state in states:
                where = state.contingency or "own SEFAZ"
                note = state.reason or ""
                click.echo(f"{state.uf}\tenv {state.environment}\t{where}\tfailures {state.failures}\t{note}")
            return
        if switch_on and (reason is None or len(reason.strip()) < 15):
            raise click.ClickException("--on needs --reason of at least 15 characters")
        with reported_errors():
            svc = EndpointTable.bundled().authority_for(uf, contingency=True) if switch_on else None
        state = authorities.set_contingency(conn, uf.upper(), environment, svc, reason or "back to normal")
    click.echo(f"{state.uf}: new NF-e go to {state.contingency or 'its own SEFAZ'}")


@nfe.command("series")
@click.option("--cnpj", required=True)
@click.option("--series", "series_number", required=True, type=int)
@click.option("--model", default=55, show_default=True, type=int)
@click.option("--first-number", required=True, type=int, help="The first number the series hands out.")
def configure_series(cnpj: str, series_number: int, model: int, first_number: int) -> None:
    """Start a series at FIRST-NUMBER (a series moved from another ERP); refused once it has numbers."""
    with command_services() as services, services.rds.connection() as conn:
        ensure_schema(conn)
        numbering.configure_series(
            conn, cnpj=cnpj, model=model, series=series_number, first_number=first_number
        )
    click.echo(f"series {series_number} (model {model}) of {cnpj} starts at {first_number}")
