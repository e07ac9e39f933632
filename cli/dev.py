"""``tornado dev``: start, stop and inspect the local PostgreSQL + SQS/S3 stack."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from tornado_core.devstack import DevStack, DevStackError, StackStatus, default_state_dir
from tornado_core.errors import TornadoError
from tornado_core.local_machine import LocalProcessError

#: Exit code of ``status`` when a service is not running (as LSB init scripts do).
NOT_RUNNING = 3


@contextmanager
def _errors() -> Iterator[None]:
    """Any stack failure becomes one ``Error: ...`` line and exit code 1."""
    try:
        yield
    except (DevStackError, LocalProcessError) as exc:
        raise click.ClickException(str(exc).splitlines()[0] + _log_hint(str(exc))) from None
    except TornadoError as exc:
        raise click.ClickException(str(exc)) from None


def _log_hint(message: str) -> str:
    for line in message.splitlines()[1:]:
        if line.startswith("--- ") and line.endswith(" ---"):
            return f" (see {line[4:-4]})"
    return ""


@click.group()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TORNADO_STATE_DIR",
    default=None,
    help="Where the stack keeps data, logs and state [default: $TORNADO_STATE_DIR or ./.tornado].",
)
@click.pass_context
def dev(ctx: click.Context, state_dir: Path | None) -> None:
    """Run a real PostgreSQL and SQS/S3 endpoint on this machine (loopback only)."""
    ctx.obj = DevStack(state_dir or default_state_dir())


@dev.command()
@click.pass_obj
def up(stack: DevStack) -> None:
    """Start the stack in the background (idempotent: restarts only what died)."""
    with _errors():
        info = stack.up()
        status = stack.status()
    click.echo(f"Local stack is up (state in {stack.state_dir})")
    _echo_services(status)
    click.echo("Settings:")
    for key, value in info.env().items():
        shown = "(hidden; see `tornado dev env`)" if key == "TORNADO_SECRET_KEY" else value
        click.echo(f"  {key}={shown}")
    click.echo('Use them in this shell:  eval "$(tornado dev env)"')


@dev.command()
@click.pass_obj
def down(stack: DevStack) -> None:
    """Stop the stack; data, ports and the secret key are kept for the next `up`."""
    with _errors():
        stack.down()
    click.echo(f"Local stack is stopped (data kept in {stack.state_dir})")


@dev.command()
@click.pass_obj
def status(stack: DevStack) -> None:
    """Show what runs; exits 3 unless every service runs."""
    with _errors():
        current = stack.status()
    if not current.initialized:
        click.echo(f"No local stack in {stack.state_dir}; start one with `tornado dev up`")
        raise SystemExit(NOT_RUNNING)
    click.echo(f"Local stack in {stack.state_dir}")
    _echo_services(current)
    if not current.running:
        raise SystemExit(NOT_RUNNING)


@dev.command()
@click.pass_obj
def env(stack: DevStack) -> None:
    """Print `export` lines for the stack's settings: eval "$(tornado dev env)"."""
    with _errors():
        values = stack.env()
    for key, value in values.items():
        click.echo(f"export {key}={shlex.quote(value)}")


def _echo_services(status: StackStatus) -> None:
    pg = f"pid {status.postgres_pid}" if status.postgres_running else "stopped"
    moto = f"pid {status.moto_pid}" if status.moto_running else "stopped"
    click.echo(f"  PostgreSQL  127.0.0.1:{status.postgres_port}  {pg}")
    click.echo(f"  SQS/S3      http://127.0.0.1:{status.moto_port}  {moto}")
