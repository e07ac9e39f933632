"""``tornado operators`` and ``tornado audit``: the console's operator accounts, and the audit log.

Operators are people who sign in to the operations console, separate from tenants and their API
tokens. Passwords are read from a hidden prompt (or standard input) and stored only as Argon2id
hashes. Every change is written to the audit log as ``cli:<os user>``.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from tornado_core.commands import load_settings, reported_errors
from tornado_core.console.accounts import Accounts, check_name
from tornado_core.errors import OperatorInvalid
from tornado_core.ports.operators import AuditEntry, Operator, Role

_ROLE = click.Choice([str(role) for role in Role])


@contextmanager
def _accounts() -> Iterator[Accounts]:
    """The accounts service of the configured database; a refused name, role or password exits 2,
    any other Tornado error 1, each as one line."""
    from tornado_core.bootstrap.console import build_console_accounts

    settings = load_settings()
    with reported_errors():
        accounts, close = build_console_accounts(settings)
        try:
            yield accounts
        except OperatorInvalid as exc:
            raise click.BadParameter(exc.message, param_hint=exc.field) from None
        finally:
            close()


def _actor() -> str:
    """``cli:<os user>``, as the audit log names whoever ran the command."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


def _check_name(name: str) -> None:
    """Refuse a bad NAME before the password is asked for."""
    try:
        check_name(name)
    except OperatorInvalid as exc:
        raise click.BadParameter(exc.message, param_hint="NAME") from None


def _password(from_stdin: bool) -> str:
    """The new password: standard input's first line, or typed twice at a hidden prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _show(operator: Operator) -> str:
    state = "disabled" if operator.disabled else "enabled"
    return f"{operator.name}\t{operator.role}\t{state}\t{operator.created_at.isoformat(timespec='seconds')}"


password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input's first line (scripts)."
)


@click.group()
def operators() -> None:
    """Operator accounts of the console (people, not tenants): roles viewer, operator, admin."""


@operators.command("create")
@click.argument("name")
@click.option(
    "--role", type=_ROLE, required=True, help="viewer looks; operator also acts; admin also manages."
)
@password_stdin_option
def create(name: str, role: str, password_stdin: bool) -> None:
    """Create operator NAME, asking for its password (at least 12 characters).

    NAME is 1-64 lower-case letters, digits, '.', '_', '@' or '-'.
    """
    _check_name(name)
    password = _password(password_stdin)
    with _accounts() as accounts:
        operator = accounts.create_operator(name, Role(role), password, actor=_actor())
    click.echo(f"operator {operator.name!r} created ({operator.role})")


@operators.command("list")
def list_operators() -> None:
    """List operator accounts: name, role, enabled or disabled, creation."""
    with _accounts() as accounts:
        found = accounts.operators()
    for operator in found:
        click.echo(_show(operator))
    if not found:
        click.echo("no operators; create one with `tornado operators create NAME --role admin`", err=True)


def _update(
    name: str,
    done: str,
    *,
    role: Role | None = None,
    password: str | None = None,
    disabled: bool | None = None,
) -> None:
    """Apply one change to NAME, audited as this command's user, and say it is ``done``."""
    with _accounts() as accounts:
        accounts.update_operator(name, actor=_actor(), role=role, password=password, disabled=disabled)
    click.echo(f"operator {name!r} {done}")


@operators.command("set-role")
@click.argument("name")
@click.argument("role", type=_ROLE)
def set_role(name: str, role: str) -> None:
    """Give operator NAME the role ROLE (viewer, operator or admin); it applies to open sessions too."""
    _update(name, f"is now {role}", role=Role(role))


@operators.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Refuse NAME's sign-ins from now on and end its open sessions."""
    _update(name, "disabled; its sessions ended", disabled=True)


@operators.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Let NAME sign in again."""
    _update(name, "enabled", disabled=False)


@operators.command("reset-password")
@click.argument("name")
@password_stdin_option
def reset_password(name: str, password_stdin: bool) -> None:
    """Set a new password for NAME; its open sessions end."""
    _check_name(name)
    _update(name, "has a new password; its sessions ended", password=_password(password_stdin))


@click.group()
def audit() -> None:
    """The audit log: who did what in the console and with these commands."""


def _entry_json(entry: AuditEntry) -> dict[str, object]:
    return {
        "id": entry.id, "at": entry.at.isoformat(), "actor": entry.actor, "action": entry.action,
        "target": entry.target, "detail": dict(entry.detail),
    }  # fmt: skip


@audit.command("list")
@click.option("--actor", default=None, help="Only this actor's entries (an operator, or cli:<user>).")
@click.option("--action", "actions", multiple=True, help="Only this action, e.g. login_failed (repeatable).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--before-id", type=int, default=None, help="Only entries older than this id (the next page).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_list(
    actor: str | None, actions: tuple[str, ...], limit: int, before_id: int | None, as_json: bool
) -> None:
    """List audit entries, newest first: id, time, actor, action, target, detail."""
    with _accounts() as accounts:
        entries = accounts.audit_entries(limit=limit, before_id=before_id, actor=actor, actions=actions)
    if as_json:
        click.echo(json.dumps([_entry_json(e) for e in entries], indent=2, ensure_ascii=False))
        return
    for e in entries:
        detail = json.dumps(dict(e.detail), ensure_ascii=False, sort_keys=True)
        at = e.at.isoformat(timespec="seconds")
        click.echo(f"{e.id}\t{at}\t{e.actor}\t{e.action}\t{e.target or '-'}\t{detail}")
    if not entries:
        click.echo("no audit entries", err=True)
