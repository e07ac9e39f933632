"""``tornado tenants``: tenants, their API tokens (create, rotate, revoke, expire) and quotas.

Tokens are printed once and stored hashed. Every change reaches every API process at once (the
store notifies their token caches); a revoked token is refused from then on.
"""

from __future__ import annotations

import re
import time

import click

from tornado_core.commands import command_services
from tornado_core.tokens import hash_token, new_token

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Duration(click.ParamType):
    """``90s``, ``15m``, ``24h``, ``30d``: a number of seconds."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """Seconds, or a usage error naming the expected form."""
        if isinstance(value, float):
            return value
        match = _DURATION.match(str(value).strip())
        if not match or float(match.group(1)) <= 0:
            self.fail(f"{value!r} is not a duration such as 90s, 15m, 24h or 30d", param, ctx)
        return float(match.group(1)) * _UNIT[match.group(2)]


def _check_name(name: str) -> None:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise click.BadParameter("use 1-64 letters, digits, '-', '_' or '.'", param_hint="NAME")


def _until(seconds: float | None) -> float | None:
    return time.time() + seconds if seconds is not None else None


def _print_token(token: str, note: str) -> None:
    click.echo(token)
    click.echo(f"{note}; keep this token, it is not shown again", err=True)


expires_option = click.option(
    "--expires-in", type=Duration(), default=None, help="The token stops working after this long (e.g. 90d)."
)


@click.group()
def tenants() -> None:
    """Manage tenants, their API tokens and their request quotas."""


@tenants.command("create")
@click.argument("name")
@expires_option
def tenants_create(name: str, expires_in: float | None) -> None:
    """Create tenant NAME and print its token (shown once; stored hashed)."""
    _check_name(name)
    token = new_token()
    with command_services() as services:
        services.tenants.create(name, hash_token(token), expires_at=_until(expires_in))
    _print_token(token, f"tenant {name!r} created")


@tenants.command("list")
def tenants_list() -> None:
    """List tenants (name, creation, request quota)."""
    with command_services() as services:
        for tenant in services.tenants.list():
            quota = f"{tenant.requests_per_second:g}/s" if tenant.requests_per_second else "default quota"
            click.echo(f"{tenant.name}\t{tenant.created_at.isoformat(timespec='seconds')}\t{quota}")


@tenants.command("rotate")
@click.argument("name")
@click.option(
    "--overlap", type=Duration(), default="24h", show_default=True,
    help="How long the tenant's current tokens keep working beside the new one.",
)  # fmt: skip
@expires_option
def tenants_rotate(name: str, overlap: float, expires_in: float | None) -> None:
    """Print a new token for NAME; its current tokens expire after --overlap."""
    token = new_token()
    digest = hash_token(token)
    with command_services() as services:
        services.tenants.add_token(name, digest, expires_at=_until(expires_in))
        ending = services.tenants.expire_tokens(name, at=time.time() + overlap, keep=digest)
    _print_token(token, f"new token for {name!r}; {ending} older token(s) stop working in {overlap:g} s")


@tenants.command("revoke")
@click.argument("name")
@click.option("--token", "token", default=None, help="Revoke only this token (default: all of NAME's).")
def tenants_revoke(name: str, token: str | None) -> None:
    """Refuse NAME's tokens from now on, on every API process."""
    with command_services() as services:
        count = services.tenants.revoke(name, token_hash=hash_token(token) if token else None)
    if count == 0:
        raise click.ClickException(f"no valid token of {name!r} to revoke")
    click.echo(f"revoked {count} token(s) of {name!r}")


@tenants.command("quota")
@click.argument("name")
@click.option(
    "--requests-per-second", "rate", type=click.FloatRange(min=0, min_open=False), required=True,
    help="The tenant's API requests per second across the API (0 removes its own quota).",
)  # fmt: skip
def tenants_quota(name: str, rate: float) -> None:
    """Set NAME's request quota; requests over it get 429 with Retry-After."""
    with command_services() as services:
        services.tenants.set_quota(name, rate or None)
    click.echo(f"{name!r}: " + (f"{rate:g} requests per second" if rate else "the default quota"))
